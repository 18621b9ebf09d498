"""Fixtures: real servers on real databases.

Every test that asks for ``api`` gets the real Tornado app served on a free port, on SQLite
and on MariaDB (a database of this run's own, dropped at the end). Without MariaDB the MySQL
variants skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import secrets
from dataclasses import dataclass
from typing import Any

import pymysql
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.websocket import websocket_connect

from cronchat.config import Settings, load_settings
from cronchat.runtime import Runtime
from cronchat.web.app import make_app, server_options

IN_CI = os.environ.get("CI", "").lower() == "true"
MYSQL_HOST = os.environ.get("CRONCHAT_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("CRONCHAT_TEST_MYSQL_PORT", "3306"))
JWT_SECRET = "test-secret-" + "x" * 40
_names = itertools.count(1)


def unique_name(prefix: str = "user") -> str:
    """A username no other test of this run uses."""
    return f"{prefix}{os.getpid() % 1000}_{next(_names)}"


def missing_service(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the MySQL and Redis paths must run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def mysql_url() -> Any:
    try:
        admin = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user="root", connect_timeout=3)
    except pymysql.err.MySQLError as error:
        missing_service(f"MariaDB is not reachable at {MYSQL_HOST}:{MYSQL_PORT}: {error}")
    name = f"cronchat_test_{secrets.token_hex(4)}"
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    url = f"mysql://root@{MYSQL_HOST}:{MYSQL_PORT}/{name}"
    yield url
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name}")
    admin.close()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'cronchat.sqlite3'}"


_migrated: set[str] = set()


def ensure_migrated(url: str, data_dir: Any) -> None:
    """Apply the migrations to a test database, once per run."""
    if url in _migrated:
        return
    settings = load_settings({}, database_url=url, data_dir=str(data_dir), jwt_secret=JWT_SECRET)
    Runtime.migrate(settings)
    _migrated.add(url)


@pytest.fixture(params=["sqlite", "mysql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    url = request.getfixturevalue(f"{request.param}_url")
    ensure_migrated(url, tmp_path)
    return url


def cronchat_env(database_url: str, data_dir: Any, **extra: str) -> dict[str, str]:
    """The environment of a `cronchat` process of the tests: this run's database, a data dir,
    the tests' JWT secret, cheap password hashing, rate limits lifted (the tests register
    many users from one address), and no CRONCHAT_* of the caller."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CRONCHAT_")}
    env.update(
        CRONCHAT_DATABASE_URL=database_url,
        CRONCHAT_DATA_DIR=str(data_dir),
        CRONCHAT_JWT_SECRET=JWT_SECRET,
        CRONCHAT_ARGON2_TIME_COST="1",
        CRONCHAT_ARGON2_MEMORY_KIB="1024",
        CRONCHAT_RATE_LIMITS="false",
    )
    env.update(extra)
    return env


def make_settings(database_url: str, data_dir: Any, **overrides: Any) -> Settings:
    """Settings of a test server: rate limits lifted unless the test turns them on
    (``@pytest.mark.server_settings(rate_limits=True, ...)``)."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": str(data_dir),
        "jwt_secret": JWT_SECRET,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
        "rate_limits": False,
    }
    values.update(overrides)
    return load_settings({}, **values)


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Server settings of a test: ``@pytest.mark.server_settings(open_registration=False)``."""
    marker = request.node.get_closest_marker("server_settings")
    return dict(marker.kwargs) if marker else {}


@pytest.fixture
def settings(database_url: str, tmp_path: Any, settings_overrides: dict[str, Any]) -> Settings:
    return make_settings(database_url, tmp_path / "data", **settings_overrides)


@pytest.fixture
def runtime(settings: Settings, io_loop: Any) -> Any:
    runtime = Runtime(settings)
    io_loop.run_sync(runtime.start)
    yield runtime
    io_loop.run_sync(runtime.close)


@pytest.fixture
def app(runtime: Runtime) -> Any:
    return make_app(runtime)


@pytest.fixture
def http_server(
    request: pytest.FixtureRequest, io_loop: Any, _unused_port: Any, app: Any, settings: Settings
) -> Any:
    """pytest-tornado's server, with the options of ``cronchat serve``."""
    server = HTTPServer(app, **server_options(settings))
    server.add_socket(_unused_port[0])
    yield server
    server.stop()
    io_loop.run_sync(server.close_all_connections, timeout=request.config.option.async_test_timeout)


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any

    @property
    def error_code(self) -> str | None:
        return (
            self.body["error"]["code"]
            if isinstance(self.body, dict) and "error" in self.body
            else None
        )


class Api:
    """A client of the served app: JSON in and out, the Bearer token added when given."""

    def __init__(self, client: AsyncHTTPClient, base_url: str) -> None:
        self.client = client
        self.base_url = base_url

    async def call(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        token: str | None = None,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            body = json.dumps(json_body)
            all_headers.setdefault("Content-Type", "application/json")
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        request = HTTPRequest(
            self.base_url + path,
            method=method,
            headers=all_headers,
            body=body,
            allow_nonstandard_methods=True,
            request_timeout=30,
        )
        response = await self.client.fetch(request, raise_error=False)
        content_type = response.headers.get("Content-Type", "")
        parsed: Any = response.body
        if response.body and "json" in content_type:
            parsed = json.loads(response.body)
        return Reply(response.code, parsed, response.headers)

    async def get(self, path: str, token: str | None = None, **kw: Any) -> Reply:
        return await self.call("GET", path, token=token, **kw)

    async def post(
        self, path: str, json_body: Any = None, token: str | None = None, **kw: Any
    ) -> Reply:
        return await self.call("POST", path, json_body, token, **kw)

    async def patch(
        self, path: str, json_body: Any = None, token: str | None = None, **kw: Any
    ) -> Reply:
        return await self.call("PATCH", path, json_body, token, **kw)

    async def put(
        self, path: str, json_body: Any = None, token: str | None = None, **kw: Any
    ) -> Reply:
        return await self.call("PUT", path, json_body, token, **kw)

    async def delete(self, path: str, token: str | None = None, **kw: Any) -> Reply:
        return await self.call("DELETE", path, token=token, **kw)

    async def register(
        self, username: str | None = None, password: str = "correct horse", **extra: Any
    ) -> dict[str, Any]:
        """Register a fresh user; answers the register body plus ``password``."""
        username = username or unique_name()
        reply = await self.post(
            "/api/v1/auth/register", {"username": username, "password": password, **extra}
        )
        assert reply.status == 201, (
            f"register {username}: expected 201, got {reply.status} {reply.body}"
        )
        return {**reply.body, "password": password, "token": reply.body["access_token"]}

    async def group(
        self, owner: dict[str, Any], *members: dict[str, Any], name: str = "Team"
    ) -> dict[str, Any]:
        """A group room of ``owner`` with ``members`` in it."""
        reply = await self.post(
            "/api/v1/rooms",
            {"name": name, "member_ids": [m["user"]["id"] for m in members]},
            owner["token"],
        )
        assert reply.status == 201, f"create room: expected 201, got {reply.status} {reply.body}"
        return reply.body

    async def direct(self, user: dict[str, Any], peer: dict[str, Any]) -> dict[str, Any]:
        reply = await self.post(
            "/api/v1/rooms/direct", {"user_id": peer["user"]["id"]}, user["token"]
        )
        assert reply.status in (200, 201), reply.body
        return reply.body

    async def send(
        self, user: dict[str, Any], room_id: str, text: str, **extra: Any
    ) -> dict[str, Any]:
        body = {"client_msg_id": f"c{next(_names)}", "text": text, **extra}
        reply = await self.post(f"/api/v1/rooms/{room_id}/messages", body, user["token"])
        assert reply.status == 201, f"send: expected 201, got {reply.status} {reply.body}"
        return reply.body


@pytest.fixture
def api(app: Any, http_server: Any, http_client: AsyncHTTPClient, base_url: str) -> Api:
    return Api(http_client, base_url)


class Socket:
    """A real WebSocket client of the served app, with helpers to wait for frames."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.backlog: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self.close_code: int | None = None

    @classmethod
    async def connect(cls, base_url: str, token: str | None = None, auth: str = "frame") -> Socket:
        """Open and authenticate (by ``frame`` or by ``header``), wait for ``ready``."""
        url = base_url.replace("http://", "ws://") + "/api/v1/ws"
        headers = {"Authorization": f"Bearer {token}"} if token and auth == "header" else {}
        connection = await websocket_connect(
            HTTPRequest(url, headers=headers), max_message_size=10 * 1024 * 1024
        )
        socket = cls(connection)
        if token and auth == "frame":
            await socket.send({"type": "auth", "token": token})
        if token:
            socket.ready = await socket.expect("ready")
        return socket

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.connection.write_message(frame if isinstance(frame, str) else json.dumps(frame))

    async def _read(self, timeout: float) -> dict[str, Any] | None:
        raw = await asyncio.wait_for(self.connection.read_message(), timeout)
        if raw is None:
            self.close_code = self.connection.close_code
            return None
        return json.loads(raw)

    async def expect(self, type_: str, timeout: float = 5, **match: Any) -> dict[str, Any]:
        """The next frame of this type (and these top-level values); others stay in the backlog."""

        def fits(frame: dict[str, Any]) -> bool:
            return frame.get("type") == type_ and all(frame.get(k) == v for k, v in match.items())

        for index, frame in enumerate(self.backlog):
            if fits(frame):
                return self.backlog.pop(index)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"expected a {type_} frame {match}, got only {self.backlog}")
            try:
                frame = await self._read(remaining)
            except TimeoutError:
                continue
            if frame is None:
                raise AssertionError(f"socket closed ({self.close_code}) while waiting for {type_}")
            if fits(frame):
                return frame
            self.backlog.append(frame)

    async def request(self, frame: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
        """Send a frame with a fresh id; answer the ack or error carrying that id."""
        frame_id = f"r{next(self._ids)}"
        await self.send({**frame, "id": frame_id})

        def answers(candidate: dict[str, Any]) -> bool:
            return candidate.get("id") == frame_id and candidate.get("type") in (
                "ack",
                "error",
                "pong",
            )

        for index, candidate in enumerate(self.backlog):
            if answers(candidate):
                return self.backlog.pop(index)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"no answer to {frame}; backlog {self.backlog[-20:]}")
            received = await self._read(remaining)
            if received is None:
                raise AssertionError(f"socket closed ({self.close_code}) before answering {frame}")
            if answers(received):
                return received
            self.backlog.append(received)

    async def events(self, room_id: str, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        """The next ``count`` events of a room, in the order they came; other frames stay."""

        def of_room(frame: dict[str, Any]) -> bool:
            return frame.get("type") == "event" and frame["event"]["room_id"] == room_id

        found: list[dict[str, Any]] = []
        kept = []
        for frame in self.backlog:
            if len(found) < count and of_room(frame):
                found.append(frame["event"])
            else:
                kept.append(frame)
        self.backlog = kept
        deadline = asyncio.get_running_loop().time() + timeout
        while len(found) < count:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"expected {count} events of {room_id}, got {len(found)}")
            frame = await self._read(remaining)
            if frame is None:
                raise AssertionError(f"socket closed ({self.close_code}) while waiting for events")
            if of_room(frame):
                found.append(frame["event"])
            else:
                self.backlog.append(frame)
        return found

    async def closed(self, timeout: float = 10) -> int | None:
        """Read until the server closes; answer the close code."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError("the server did not close the socket")
            frame = await self._read(remaining)
            if frame is None:
                return self.close_code
            self.backlog.append(frame)

    async def quiet(self, seconds: float = 0.3) -> list[dict[str, Any]]:
        """Whatever arrives within ``seconds`` (for asserting that nothing does)."""
        got = list(self.backlog)
        self.backlog.clear()
        deadline = asyncio.get_running_loop().time() + seconds
        while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                frame = await self._read(remaining)
            except TimeoutError:
                break
            if frame is None:
                break
            got.append(frame)
        return got

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def connect(base_url: str) -> Any:
    """``await connect(token)`` opens an authenticated socket, closed after the test."""
    sockets: list[Socket] = []

    async def open_socket(token: str | None = None, auth: str = "frame") -> Socket:
        socket = await Socket.connect(base_url, token, auth)
        sockets.append(socket)
        return socket

    yield open_socket
    for socket in sockets:
        socket.close()
