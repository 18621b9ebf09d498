"""Faults survived, with real processes: a Redis and a MariaDB of the test's own are stopped
and started again (the shared ones stay up), a worker is killed while clients send, and a
proxy of the test's own cuts a server off from Redis or MariaDB without closing anything (a
silent partition) or delays what crosses it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from test_scale import Server, free_port
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClosedError

from clients import ApiClient, Reply, WsClient, eventually
from conftest import MYSQL_PORT, cronchat_env, ensure_migrated, missing_service

pytestmark = pytest.mark.gen_test(timeout=120)


def readiness(url: str, timeout: float = 3) -> int:
    """The status of ``/readyz``, 0 when it does not answer within ``timeout``."""
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=timeout) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


class OwnRedis:
    """A redis-server of this test, on its own port: ``await OwnRedis(directory).start()``."""

    def __init__(self, directory: Path) -> None:
        if shutil.which("redis-server") is None:
            missing_service("redis-server is not installed")
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> OwnRedis:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await eventually(self._answers, 10, "redis to start")
        return self

    def _answers(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                probe.sendall(b"PING\r\n")
                return probe.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class OwnMariaDB:
    """A mariadbd of this test, with its own data dir and port (no grant tables)."""

    def __init__(self, directory: Path) -> None:
        if shutil.which("mariadb-install-db") is None or not Path("/usr/sbin/mariadbd").exists():
            missing_service("MariaDB server binaries are not installed")
        self.port = free_port()
        self.directory = directory
        self.datadir = directory / "mysql"
        self.socket = directory / "mysqld.sock"
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    async def started(cls, directory: Path) -> OwnMariaDB:
        """A fresh server, started, with an empty ``cronchat`` database."""
        mariadb = cls(directory)
        await mariadb.start()
        connection = pymysql.connect(host="127.0.0.1", port=mariadb.port, user="root")
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE cronchat CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        connection.close()
        return mariadb

    @property
    def url(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/cronchat"

    async def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "/usr/sbin/mariadbd",
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.socket}",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=32M",
                "--skip-name-resolve",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await eventually(self._answers, 60, "mariadb to start")

    def _answers(self) -> bool:
        try:
            pymysql.connect(
                host="127.0.0.1", port=self.port, user="root", connect_timeout=1
            ).close()
            return True
        except pymysql.err.MySQLError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)


@pytest.fixture
def client(io_loop: Any) -> Iterator[AsyncHTTPClient]:
    instance = AsyncHTTPClient(force_instance=True)
    yield instance
    instance.close()


@pytest.fixture
def own_redis(tmp_path: Path, io_loop: Any) -> Iterator[OwnRedis]:
    redis = io_loop.run_sync(OwnRedis(tmp_path).start)
    yield redis
    redis.stop()


async def test_redis_stopped_and_started_under_load(
    own_redis: OwnRedis, mysql_url: str, tmp_path: Path, client: AsyncHTTPClient
) -> None:
    ensure_migrated(mysql_url, tmp_path)
    env = cronchat_env(mysql_url, tmp_path / "data", CRONCHAT_REDIS_URL=own_redis.url)
    first, second = await Server.start(env, free_port()), await Server.start(env, free_port())
    try:
        api = ApiClient(client, first.url)
        alice, bob = await api.register(), await api.register()
        room = await api.direct(alice, bob)
        bob_ws = await WsClient.connect(second.url, bob["token"])
        (seen,) = [await api.send(alice, room["id"], "before")]
        (live,) = await bob_ws.events(room["id"], 1)
        assert live["data"]["id"] == seen["id"]

        own_redis.stop()
        await eventually(lambda: readiness(first.url) == 503, what="readyz 503")
        missed = [await api.send(alice, room["id"], f"while redis is down {n}") for n in range(10)]
        await own_redis.start()
        await eventually(
            lambda: readiness(first.url) == 200 and readiness(second.url) == 200,
            what="readyz 200 again",
        )
        await bob_ws.expect("resync", timeout=15)
        resumed = await bob_ws.request({"type": "resume", "rooms": {room["id"]: live["seq"]}})
        assert resumed["result"] == {"rooms": {room["id"]: "ok"}}
        caught_up = await bob_ws.events(room["id"], 10)
        assert [e["data"]["id"] for e in caught_up] == [m["id"] for m in missed]

        after = await api.send(alice, room["id"], "after")
        (again,) = await bob_ws.events(room["id"], 1)
        assert again["data"]["id"] == after["id"]
        bob_ws.close()
    finally:
        first.stop()
        second.stop()


async def test_mariadb_stopped_and_started(tmp_path: Path, client: AsyncHTTPClient) -> None:
    mariadb = await OwnMariaDB.started(tmp_path / "db")
    server = None
    try:
        ensure_migrated(mariadb.url, tmp_path)
        server = await Server.start(cronchat_env(mariadb.url, tmp_path / "data"), free_port())
        api = ApiClient(client, server.url)
        alice, bob = await api.register(), await api.register()
        room = await api.group(alice, bob)
        await api.send(alice, room["id"], "before")

        mariadb.stop()
        down = await api.post(
            f"/api/v1/rooms/{room['id']}/messages",
            {"client_msg_id": "down", "text": "x"},
            alice["token"],
        )
        assert down.status == 503 and down.error_code == "unavailable", down.body
        assert (await api.get("/api/v1/users/me", alice["token"])).status == 503
        assert readiness(server.url) == 503

        await mariadb.start()
        await eventually(lambda: readiness(server.url) == 200, what="service back")
        history = await api.get(f"/api/v1/rooms/{room['id']}/messages", bob["token"])
        assert history.status == 200, history.body
        assert [m["text"] for m in history.body["messages"]] == ["before"]  # no partial write
        resent = await api.post(
            f"/api/v1/rooms/{room['id']}/messages",
            {"client_msg_id": "down", "text": "x"},
            alice["token"],
        )
        assert resent.status == 201
    finally:
        if server is not None:
            server.stop()
        mariadb.stop()


async def test_killed_worker_loses_no_acknowledged_message(
    mysql_url: str, tmp_path: Path, client: AsyncHTTPClient
) -> None:
    if shutil.which("redis-server") is None:
        missing_service("redis-server is not installed")
    redis = await OwnRedis(tmp_path).start()
    ensure_migrated(mysql_url, tmp_path)
    server = await Server.start(
        cronchat_env(mysql_url, tmp_path / "data", CRONCHAT_REDIS_URL=redis.url),
        free_port(),
        "--workers",
        "2",
    )
    try:
        api = ApiClient(client, server.url)
        users = [await api.register() for _ in range(4)]
        room = await api.group(users[0], *users[1:])
        acked: list[str] = []

        async def sender(user: dict, index: int) -> None:
            ws = await WsClient.connect(server.url, user["token"])
            for n in range(40):
                frame = {
                    "type": "message.send",
                    "room_id": room["id"],
                    "client_msg_id": f"k{index}-{n}",
                    "text": f"{index}:{n}",
                }
                try:
                    answer = await ws.request(frame, timeout=5)
                except (AssertionError, WebSocketClosedError):
                    # The socket's worker died (seen waiting, or on writing): reconnect, send
                    # again with the same client_msg_id.
                    ws = await WsClient.connect(server.url, user["token"])
                    answer = await ws.request(frame, timeout=5)
                assert answer["type"] == "ack", answer
                acked.append(answer["result"]["message"]["id"])
            ws.close()

        tasks = [asyncio.ensure_future(sender(user, i)) for i, user in enumerate(users)]
        await asyncio.sleep(0.3)
        workers = subprocess.run(
            ["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True
        ).stdout.split()
        os.kill(int(workers[0]), signal.SIGKILL)
        await asyncio.gather(*tasks)

        assert len(acked) == len(set(acked)) == 160
        stored, after = [], room["last_seq"]
        while True:
            page = await api.get(
                f"/api/v1/rooms/{room['id']}/events?after_seq={after}&limit=500", users[1]["token"]
            )
            stored += page.body["events"]
            if not page.body["has_more"]:
                break
            after = page.body["events"][-1]["seq"]
        created = [e["data"]["id"] for e in stored if e["type"] == "message.created"]
        assert sorted(created) == sorted(acked)  # every acknowledged message, none twice
        assert [e["seq"] for e in stored] == list(
            range(room["last_seq"] + 1, room["last_seq"] + 1 + len(stored))
        )
    finally:
        server.stop()
        redis.stop()


class _Link:
    """One proxied connection: the client's side and the target's."""

    def __init__(self, cut: bool) -> None:
        self.cut = cut  # opened or caught in a cut: dropped when the cut heals
        self.writers: list[asyncio.StreamWriter] = []

    def drop(self) -> None:
        for writer in self.writers:
            writer.transport.abort()


class Proxy:
    """A TCP proxy of the test's own, in a thread of its own (the test's loop blocks on
    urllib): it forwards to ``target_port``, delays each chunk by ``delay`` seconds, and
    ``cut()`` stops forwarding without closing anything, as a partition that drops packets.
    When it heals, the connections of the cut are dropped (as after a partition longer than
    TCP keeps trying, so no stale bytes arrive late) and new ones work."""

    def __init__(self, target_port: int, delay: float = 0.0) -> None:
        self.target_port = target_port
        self.delay = delay
        self._loop = asyncio.new_event_loop()
        self._links: set[_Link] = set()
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self._thread.start()
        assert started.wait(10), "proxy did not start"

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        started.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def cut(self) -> None:
        self._call(self._cut())

    def heal(self) -> None:
        self._call(self._heal())

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self._stop())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    async def _cut(self) -> None:
        self._flowing.clear()
        for link in self._links:
            link.cut = True

    async def _heal(self) -> None:
        for link in [link for link in self._links if link.cut]:
            link.drop()
        self._flowing.set()

    async def _stop(self) -> None:
        self._server.close()
        for link in list(self._links):
            link.drop()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(cut=not self._flowing.is_set())
        link.writers.append(writer)
        try:
            target_reader, target_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            link.drop()
            return
        link.writers.append(target_writer)
        self._links.add(link)
        try:
            await asyncio.gather(
                self._pump(link, reader, target_writer),
                self._pump(link, target_reader, writer),
                return_exceptions=True,
            )
        finally:
            self._links.discard(link)
            link.drop()

    async def _pump(
        self, link: _Link, source: asyncio.StreamReader, destination: asyncio.StreamWriter
    ) -> None:
        """One direction: chunks leave ``delay`` after they came, in order, while flowing."""
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def read() -> None:
            while True:
                data = await source.read(65536)
                chunks.put_nowait((loop.time(), data))
                if not data:
                    return

        reading = asyncio.ensure_future(read())
        try:
            while True:
                arrived, data = await chunks.get()
                wait = arrived + self.delay - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._flowing.wait()
                if link.cut or not data:
                    return
                destination.write(data)
                await destination.drain()
        finally:
            reading.cancel()
            link.drop()


@pytest.fixture
def redis_proxy(own_redis: OwnRedis) -> Iterator[Proxy]:
    proxy = Proxy(own_redis.port)
    yield proxy
    proxy.stop()


def via(url: str, proxy: Proxy) -> str:
    """The same service URL, through the proxy."""
    scheme, rest = url.split("://", 1)
    address, _, path = rest.partition("/")
    host = address.rsplit("@", 1)
    credentials = host[0] + "@" if len(host) == 2 else ""
    return f"{scheme}://{credentials}127.0.0.1:{proxy.port}/{path}"


async def post_within(
    client: AsyncHTTPClient, url: str, path: str, body: dict, token: str, seconds: float
) -> Reply:
    """A POST that gives up after ``seconds`` (status 599 then): a bound, not a timing."""
    request = HTTPRequest(
        url + path,
        method="POST",
        body=json.dumps(body),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        request_timeout=seconds,
    )
    response = await client.fetch(request, raise_error=False)
    parsed = json.loads(response.body) if response.body else None
    return Reply(response.code, parsed, response.headers)


def send_frame(room_id: str, client_msg_id: str, text: str) -> dict[str, Any]:
    return {
        "type": "message.send",
        "room_id": room_id,
        "client_msg_id": client_msg_id,
        "text": text,
    }


def stderr_of(server: Server) -> str:
    """What a stopped server wrote to stderr (its log)."""
    assert server.process.stderr is not None
    return server.process.stderr.read().decode(errors="replace")


async def test_silent_redis_partition_keeps_sends_acked_and_delivered_locally(
    own_redis: OwnRedis, redis_proxy: Proxy, mysql_url: str, tmp_path: Path, client: Any
) -> None:
    ensure_migrated(mysql_url, tmp_path)
    cut_off = await Server.start(
        cronchat_env(
            mysql_url,
            tmp_path / "data",
            CRONCHAT_REDIS_URL=via(own_redis.url, redis_proxy),
            CRONCHAT_REDIS_TIMEOUT="1",
        ),
        free_port(),
    )
    other = await Server.start(
        cronchat_env(mysql_url, tmp_path / "data", CRONCHAT_REDIS_URL=own_redis.url),
        free_port(),
    )
    try:
        api = ApiClient(client, cut_off.url)
        alice, bob, carol = await api.register(), await api.register(), await api.register()
        room = await api.group(alice, bob, carol)
        alice_ws = await WsClient.connect(cut_off.url, alice["token"])
        bob_ws = await WsClient.connect(cut_off.url, bob["token"])
        carol_ws = await WsClient.connect(other.url, carol["token"])

        redis_proxy.cut()
        acked = []
        for n in range(3):
            answer = await alice_ws.request(send_frame(room["id"], f"p{n}", f"cut off {n}"), 5)
            assert answer["type"] == "ack", answer
            acked.append(answer["result"]["message"]["id"])
        for ws in (alice_ws, bob_ws):  # the sender's own socket and a local member, at once
            assert [e["data"]["id"] for e in await ws.events(room["id"], 3)] == acked
        await eventually(lambda: readiness(cut_off.url) == 503, 15, "the dead broker noticed")

        redis_proxy.heal()
        await alice_ws.expect("resync", timeout=15)
        await bob_ws.expect("resync", timeout=15)
        await eventually(lambda: readiness(cut_off.url) == 200, 15, "readyz 200 again")
        # What the cut-off server published during the partition reaches the others after.
        assert [e["data"]["id"] for e in await carol_ws.events(room["id"], 3, 15)] == acked
        after = await api.send(alice, room["id"], "healed")
        for ws in (alice_ws, bob_ws, carol_ws):  # live again, and nothing came twice
            (event,) = await ws.events(room["id"], 1)
            assert event["data"]["id"] == after["id"]
        for ws in (alice_ws, bob_ws, carol_ws):
            ws.close()
    finally:
        cut_off.stop()
        other.stop()
    lost = [line for line in stderr_of(cut_off).splitlines() if "redis unreachable" in line]
    assert len(lost) == 1, lost  # one warning for the whole partition


async def test_readiness_stays_up_under_redis_latency(
    own_redis: OwnRedis, mysql_url: str, tmp_path: Path, client: Any
) -> None:
    slow = Proxy(own_redis.port, delay=0.4)  # 400 ms each way
    ensure_migrated(mysql_url, tmp_path)
    server = None
    try:
        server = await Server.start(
            cronchat_env(
                mysql_url,
                tmp_path / "data",
                CRONCHAT_REDIS_URL=via(own_redis.url, slow),
                CRONCHAT_REDIS_TIMEOUT="2",
            ),
            free_port(),
        )
        api = ApiClient(client, server.url)
        alice, bob = await api.register(), await api.register()
        room = await api.direct(alice, bob)
        bob_ws = await WsClient.connect(server.url, bob["token"])
        statuses = []
        for n in range(10):
            statuses.append(readiness(server.url, timeout=5))
            sent = await api.send(alice, room["id"], f"slow {n}")
            (event,) = await bob_ws.events(room["id"], 1)
            assert event["data"]["id"] == sent["id"]
            await asyncio.sleep(0.3)
        assert statuses == [200] * 10
        bob_ws.close()
    finally:
        if server is not None:
            server.stop()
        slow.stop()


@pytest.fixture
def mysql_proxy() -> Iterator[Proxy]:
    proxy = Proxy(MYSQL_PORT)
    yield proxy
    proxy.stop()


async def test_silent_database_partition_answers_503_in_bounded_time(
    mysql_url: str, mysql_proxy: Proxy, tmp_path: Path, client: Any
) -> None:
    ensure_migrated(mysql_url, tmp_path)
    server = await Server.start(
        cronchat_env(via(mysql_url, mysql_proxy), tmp_path / "data", CRONCHAT_DB_TIMEOUT="1"),
        free_port(),
    )
    try:
        api = ApiClient(client, server.url)
        alice, bob = await api.register(), await api.register()
        room = await api.group(alice, bob)
        alice_ws = await WsClient.connect(server.url, alice["token"])
        path = f"/api/v1/rooms/{room['id']}/messages"

        mysql_proxy.cut()
        await eventually(
            lambda: readiness(server.url, timeout=5) == 503, 20, "readyz 503, not a hang"
        )
        down = await post_within(
            client, server.url, path, {"client_msg_id": "rest", "text": "x"}, alice["token"], 20
        )
        assert down.status == 503 and down.body["error"]["code"] == "unavailable", down
        refused = await alice_ws.request(send_frame(room["id"], "ws", "y"), 20)
        assert refused["type"] == "error" and refused["code"] == "unavailable", refused
        assert readiness(server.url, timeout=5) == 503

        mysql_proxy.heal()
        await eventually(lambda: readiness(server.url) == 200, 30, "service back")
        again = await post_within(
            client, server.url, path, {"client_msg_id": "rest", "text": "x"}, alice["token"], 20
        )
        assert again.status in (200, 201), again
        resent = await alice_ws.request(send_frame(room["id"], "ws", "y"), 20)
        assert resent["type"] == "ack", resent
        history = await api.get(path, bob["token"])
        assert sorted(m["text"] for m in history.body["messages"]) == ["x", "y"]  # once each
        alice_ws.close()
    finally:
        server.stop()


async def test_hole_skipped_live_is_refilled_by_resume(
    own_redis: OwnRedis,
    redis_proxy: Proxy,
    mysql_url: str,
    mysql_proxy: Proxy,
    tmp_path: Path,
    client: Any,
) -> None:
    """A notice that never arrives (its server is cut off from Redis), then the next one
    arrives while the database cannot fill the hole: the hub skips ahead with ``resync``,
    and ``resume`` must bring the hole, and only the hole."""
    ensure_migrated(mysql_url, tmp_path)
    database, data = via(mysql_url, mysql_proxy), tmp_path / "data"
    slow_redis = Proxy(own_redis.port)
    cut_off = await Server.start(
        cronchat_env(database, data, CRONCHAT_REDIS_URL=via(own_redis.url, redis_proxy)),
        free_port(),
    )
    bobs = await Server.start(
        cronchat_env(database, data, CRONCHAT_REDIS_URL=own_redis.url, CRONCHAT_DB_TIMEOUT="1"),
        free_port(),
    )
    slow = await Server.start(
        cronchat_env(
            database,
            data,
            CRONCHAT_REDIS_URL=via(own_redis.url, slow_redis),
            CRONCHAT_REDIS_TIMEOUT="10",
        ),
        free_port(),
    )
    try:
        api, slow_api = ApiClient(client, cut_off.url), ApiClient(client, slow.url)
        alice, bob = await api.register(), await api.register()
        room = await api.direct(alice, bob)
        bob_ws = await WsClient.connect(bobs.url, bob["token"])
        first = await api.send(alice, room["id"], "first")
        (seen,) = await bob_ws.events(room["id"], 1)
        assert seen["data"]["id"] == first["id"]

        redis_proxy.cut()
        path = f"/api/v1/rooms/{room['id']}/messages"
        body = {"client_msg_id": "unheard", "text": "unheard"}
        await post_within(client, cut_off.url, path, body, alice["token"], 5)
        stored = await slow_api.get(f"{path}?after_seq={seen['seq']}", alice["token"])
        (unheard,) = stored.body["messages"]  # committed; its notice never left its server

        slow_redis.delay = 2.0  # the next notice reaches Bob's server once the database is cut
        third = await slow_api.send(alice, room["id"], "third")
        mysql_proxy.cut()
        await bob_ws.expect("resync", timeout=20)
        (live,) = await bob_ws.events(room["id"], 1)
        assert live["data"]["id"] == third["id"]  # delivered live past the hole

        mysql_proxy.heal()
        await eventually(lambda: readiness(bobs.url) == 200, 30, "database back")
        resumed = await bob_ws.request({"type": "resume", "rooms": {room["id"]: seen["seq"]}})
        assert resumed["result"] == {"rooms": {room["id"]: "ok"}}
        replayed = [f["event"]["data"]["id"] for f in bob_ws.backlog if f["type"] == "event"]
        assert replayed == [unheard["id"]], "the hole, and only the hole, is replayed"
        bob_ws.close()
    finally:
        for server in (cut_off, bobs, slow):
            server.stop()
        slow_redis.stop()
