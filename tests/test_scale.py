"""Several processes act as one chat service through Redis: real `cronchat serve` processes
on MariaDB, real clients on each."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient

from clients import ApiClient, WsClient, eventually, of_type
from conftest import cronchat_env, ensure_migrated, missing_service

REDIS_URL = os.environ.get("CRONCHAT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url() -> str:
    return require_redis()


def require_redis() -> str:
    """The tests' Redis URL, once Redis answers (else skip; under CI=true, fail)."""
    host, port = "127.0.0.1", 6379
    try:
        with socket.create_connection((host, port), timeout=2) as probe:
            probe.sendall(b"PING\r\n")
            if not probe.recv(16).startswith(b"+PONG"):
                raise OSError("no PONG")
    except OSError as error:
        missing_service(f"Redis is not reachable at {host}:{port}: {error}")
    return REDIS_URL


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A `cronchat serve` process of its own: ``await Server.start(env, port)``."""

    def __init__(self, env: dict[str, str], port: int, *args: str) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli.main",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *args,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    @classmethod
    async def start(cls, env: dict[str, str], port: int, *args: str) -> Server:
        """A server started and answering ``/readyz`` with 200."""
        server = cls(env, port, *args)
        try:
            await eventually(server.is_ready, 30, f"the server on {port} to be ready")
        except AssertionError:
            server.stop()
            assert server.process.stderr is not None
            stderr = server.process.stderr.read()
            raise AssertionError(f"server on {port} did not become ready: {stderr!r}") from None
        return server

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=1) as answer:
                return answer.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def server_env(mysql_url: str, redis_url: str, tmp_path: Path) -> dict[str, str]:
    """Servers of these tests run on MariaDB: the production setup for several processes."""
    ensure_migrated(mysql_url, tmp_path)
    return cronchat_env(mysql_url, tmp_path / "data", CRONCHAT_REDIS_URL=redis_url)


@contextmanager
def two_servers_on(env: dict[str, str], io_loop: Any) -> Iterator[tuple[Server, Server]]:
    """Two `cronchat serve` processes with this environment, stopped after."""
    first = io_loop.run_sync(lambda: Server.start(env, free_port()))
    try:
        second = io_loop.run_sync(lambda: Server.start(env, free_port()))
    except BaseException:
        first.stop()
        raise
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


@pytest.fixture
def two_servers(server_env: dict[str, str], io_loop: Any) -> Iterator[tuple[Server, Server]]:
    with two_servers_on(server_env, io_loop) as servers:
        yield servers


@pytest.fixture
def client(io_loop: Any) -> Iterator[AsyncHTTPClient]:
    """An HTTP client of the processes (``http_client`` would serve an app in-process)."""
    instance = AsyncHTTPClient(force_instance=True)
    yield instance
    instance.close()


@pytest.mark.gen_test(timeout=60)
async def test_clients_on_two_processes_chat_live(
    two_servers: tuple[Server, Server], client: AsyncHTTPClient
) -> None:
    first, second = two_servers
    on_first, on_second = ApiClient(client, first.url), ApiClient(client, second.url)
    alice, bob = await on_first.register(), await on_second.register()
    room = await on_first.direct(alice, bob)
    alice_ws = await WsClient.connect(first.url, alice["token"])
    bob_ws = await WsClient.connect(second.url, bob["token"])
    try:
        online = await alice_ws.expect("presence", online=True)
        assert online["user_id"] == bob["user"]["id"]

        sent = await alice_ws.request(
            {"type": "message.send", "room_id": room["id"], "client_msg_id": "x", "text": "across"}
        )
        delivered = await bob_ws.event_frame(room["id"])
        assert delivered["event"]["data"]["id"] == sent["result"]["message"]["id"]
        assert delivered["room"]["unread_count"] == 1

        # Bob is online for a profile read through the other process too.
        profile = await on_first.get(f"/api/v1/users/{bob['user']['id']}", alice["token"])
        assert profile.body["online"] is True
        members = await on_first.get(f"/api/v1/rooms/{room['id']}/members", alice["token"])
        assert {m["user"]["id"]: m["user"]["online"] for m in members.body["members"]}[
            bob["user"]["id"]
        ]

        await bob_ws.request({"type": "typing", "room_id": room["id"]})
        assert (await alice_ws.expect("typing"))["user_id"] == bob["user"]["id"]

        # Bob logs out through the other process: his socket here closes with 4003.
        assert (await on_first.post("/api/v1/auth/logout", token=bob["token"])).status == 204
        assert await bob_ws.closed() == 4003
        offline = await alice_ws.expect("presence", online=False)
        assert offline["user_id"] == bob["user"]["id"]
        profile = await on_first.get(f"/api/v1/users/{bob['user']['id']}", alice["token"])
        assert profile.body["online"] is False
    finally:
        alice_ws.close()
        bob_ws.close()


async def open_sockets(api: ApiClient) -> int:
    """The server's gauge of open, authenticated WebSockets (one worker's)."""
    reply = await api.get("/metrics")
    for line in reply.body.decode().splitlines():
        if line.startswith("cronchat_websocket_connections "):
            return int(float(line.split()[1]))
    raise AssertionError(f"no cronchat_websocket_connections in /metrics: {reply.body!r}")


@pytest.mark.gen_test(timeout=60)
async def test_a_user_on_two_processes_stays_online_until_the_last_socket_closes(
    two_servers: tuple[Server, Server], client: AsyncHTTPClient
) -> None:
    first, second = two_servers
    on_first = ApiClient(client, first.url)
    alice, bob, carol = [await on_first.register() for _ in range(3)]
    await on_first.direct(alice, bob)
    await on_first.direct(alice, carol)
    alice_ws = await WsClient.connect(first.url, alice["token"])
    bob_here = await WsClient.connect(first.url, bob["token"])
    bob_there = await WsClient.connect(second.url, bob["token"])
    carol_ws = await WsClient.connect(first.url, carol["token"])
    try:
        await alice_ws.expect("presence", online=True, user_id=bob["user"]["id"])
        await alice_ws.expect("presence", online=True, user_id=carol["user"]["id"])
        await asyncio.sleep(0.5)  # presence is recorded in the background after `ready`
        bob_here.close()

        async def bob_here_is_gone() -> bool:
            return await open_sockets(on_first) == 2

        await eventually(bob_here_is_gone, 10, "the first server to see bob's socket close")
        # Carol's going offline is the marker: had bob's close taken him offline, alice
        # would hear it first.
        carol_ws.close()
        before = await alice_ws.frames_before(
            of_type("presence", online=False, user_id=carol["user"]["id"]), "carol offline"
        )
        assert [f for f in before if f["type"] == "presence" and not f["online"]] == []
        profile = await on_first.get(f"/api/v1/users/{bob['user']['id']}", alice["token"])
        assert profile.body["online"] is True
        bob_there.close()
        offline = await alice_ws.expect("presence", online=False)
        assert offline["user_id"] == bob["user"]["id"]
    finally:
        alice_ws.close()


@pytest.mark.gen_test(timeout=90)
async def test_workers_share_a_port_and_a_killed_worker_comes_back(
    server_env: dict[str, str], client: AsyncHTTPClient
) -> None:
    port = free_port()
    server = await Server.start(server_env, port, "--workers", "2")
    try:
        api = ApiClient(client, server.url)
        alice, bob = await api.register(), await api.register()
        room = await api.group(alice, bob)
        children = subprocess.run(
            ["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(children) == 2
        os.kill(int(children[0]), signal.SIGKILL)
        sent = [await api.send(alice, room["id"], f"m{n}") for n in range(20)]
        history = await api.get(f"/api/v1/rooms/{room['id']}/messages", bob["token"])
        assert [m["id"] for m in history.body["messages"]] == [m["id"] for m in sent]

        def replaced() -> bool:
            again = subprocess.run(
                ["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True
            ).stdout.split()
            return len(again) == 2 and children[0] not in again

        await eventually(replaced, 10, f"a new worker in place of {children[0]}")
    finally:
        server.stop()
    assert server.process.returncode == 0


def test_workers_above_one_without_redis_are_refused(server_env: dict[str, str]) -> None:
    del server_env["CRONCHAT_REDIS_URL"]
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "serve", "--workers", "2"],
        env=server_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "needs CRONCHAT_REDIS_URL" in result.stderr


@pytest.mark.gen_test(timeout=60)
async def test_readyz_reports_the_broker(server_env: dict[str, str]) -> None:
    server = await Server.start(server_env, free_port())
    try:
        with urllib.request.urlopen(server.url + "/readyz", timeout=5) as answer:
            body: Any = answer.read()
        assert b'"broker":true' in body
    finally:
        server.stop()
