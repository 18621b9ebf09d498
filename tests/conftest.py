"""Fixtures: real servers on real databases.

Every test that asks for ``api`` gets the real Tornado app served on a free port, on SQLite
and on MariaDB (a database of this run's own, dropped at the end). Without MariaDB the MySQL
variants skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql
import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer

from clients import ApiClient, WsClient
from cronchat.config import Settings, load_settings
from cronchat.runtime import Runtime
from cronchat.web.app import make_app, server_options

IN_CI = os.environ.get("CI", "").lower() == "true"
MYSQL_HOST = os.environ.get("CRONCHAT_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("CRONCHAT_TEST_MYSQL_PORT", "3306"))
JWT_SECRET = "test-secret-" + "x" * 40


def missing_service(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the MySQL and Redis paths must run)")
    pytest.skip(reason)


@contextmanager
def scratch_mysql_database(prefix: str) -> Iterator[str]:
    """A MariaDB database of its own (utf8mb4, binary collation) as a URL, dropped after."""
    try:
        admin = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user="root", connect_timeout=3)
    except pymysql.err.MySQLError as error:
        missing_service(f"MariaDB is not reachable at {MYSQL_HOST}:{MYSQL_PORT}: {error}")
    name = f"{prefix}_{secrets.token_hex(4)}"
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    try:
        yield f"mysql://root@{MYSQL_HOST}:{MYSQL_PORT}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.close()


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    with scratch_mysql_database("cronchat_test") as url:
        yield url


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
    # Bounded: a close that hangs fails the test instead of the whole run.
    io_loop.run_sync(runtime.close, timeout=60)


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


@pytest.fixture
def api(app: Any, http_server: Any, http_client: AsyncHTTPClient, base_url: str) -> ApiClient:
    return ApiClient(http_client, base_url)


@pytest.fixture
def connect(base_url: str) -> Any:
    """``await connect(token)`` opens an authenticated socket, closed after the test."""
    sockets: list[WsClient] = []

    async def open_socket(token: str | None = None, auth: str = "frame") -> WsClient:
        socket = await WsClient.connect(base_url, token, auth)
        sockets.append(socket)
        return socket

    yield open_socket
    for socket in sockets:
        socket.close()
