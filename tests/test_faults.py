"""Faults survived, with real processes: a Redis and a MariaDB of the test's own are stopped
and started again (the shared ones stay up), and a worker is killed while clients send."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from test_scale import Server, free_port
from tornado.httpclient import AsyncHTTPClient

from conftest import Api, Socket, cronchat_env, ensure_migrated, missing_service

pytestmark = pytest.mark.gen_test(timeout=120)


def wait_until(check: Any, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def eventually(check: Any, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def readiness(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=3) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


class OwnRedis:
    """A redis-server of this test, on its own port."""

    def __init__(self, directory: Path) -> None:
        if shutil.which("redis-server") is None:
            missing_service("redis-server is not installed")
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
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
        wait_until(self._answers, 10, "redis to start")

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
        self.start()
        connection = pymysql.connect(host="127.0.0.1", port=self.port, user="root")
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE cronchat CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        connection.close()

    @property
    def url(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/cronchat"

    def start(self) -> None:
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
        wait_until(self._answers, 60, "mariadb to start")

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
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    redis = OwnRedis(tmp_path)
    yield redis
    redis.stop()


async def test_redis_stopped_and_started_under_load(
    own_redis: OwnRedis, mysql_url: str, tmp_path: Path, client: AsyncHTTPClient
) -> None:
    ensure_migrated(mysql_url, tmp_path)
    env = cronchat_env(mysql_url, tmp_path / "data", CRONCHAT_REDIS_URL=own_redis.url)
    first, second = Server(env, free_port()), Server(env, free_port())
    try:
        api = Api(client, first.url)
        alice, bob = await api.register(), await api.register()
        room = await api.direct(alice, bob)
        bob_ws = await Socket.connect(second.url, bob["token"])
        (seen,) = [await api.send(alice, room["id"], "before")]
        (live,) = await bob_ws.events(room["id"], 1)
        assert live["data"]["id"] == seen["id"]

        own_redis.stop()
        await eventually(lambda: _async(readiness(first.url) == 503), what="readyz 503")
        missed = [await api.send(alice, room["id"], f"while redis is down {n}") for n in range(10)]
        own_redis.start()
        await eventually(
            lambda: _async(readiness(first.url) == 200 and readiness(second.url) == 200),
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


async def _async(value: bool) -> bool:
    return value


async def test_mariadb_stopped_and_started(tmp_path: Path, client: AsyncHTTPClient) -> None:
    mariadb = OwnMariaDB(tmp_path / "db")
    server = None
    try:
        ensure_migrated(mariadb.url, tmp_path)
        server = Server(cronchat_env(mariadb.url, tmp_path / "data"), free_port())
        api = Api(client, server.url)
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

        mariadb.start()
        await eventually(lambda: _async(readiness(server.url) == 200), what="service back")
        history = await api.get(f"/api/v1/rooms/{room['id']}/messages", bob["token"])
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
    redis = OwnRedis(tmp_path)
    ensure_migrated(mysql_url, tmp_path)
    server = Server(
        cronchat_env(mysql_url, tmp_path / "data", CRONCHAT_REDIS_URL=redis.url),
        free_port(),
        "--workers",
        "2",
    )
    try:
        api = Api(client, server.url)
        users = [await api.register() for _ in range(4)]
        room = await api.group(users[0], *users[1:])
        acked: list[str] = []

        async def sender(user: dict, index: int) -> None:
            ws = await Socket.connect(server.url, user["token"])
            for n in range(40):
                frame = {
                    "type": "message.send",
                    "room_id": room["id"],
                    "client_msg_id": f"k{index}-{n}",
                    "text": f"{index}:{n}",
                }
                try:
                    answer = await ws.request(frame, timeout=5)
                except AssertionError:  # the socket's worker died: reconnect, send again
                    ws = await Socket.connect(server.url, user["token"])
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
