"""Fixtures: real servers on real databases.

Every test that asks for ``api`` gets the real Tornado app served on a free port, on SQLite
and on MariaDB (a database of this run's own, dropped at the end). Without MariaDB the MySQL
variants skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
from dataclasses import dataclass
from typing import Any

import pymysql
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from cronchat.config import Settings, load_settings
from cronchat.db import Database
from cronchat.db.migrations import migrate
from cronchat.runtime import Runtime
from cronchat.web.app import make_app

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


@pytest.fixture(params=["sqlite", "mysql"])
def database_url(request: pytest.FixtureRequest) -> str:
    url = request.getfixturevalue(f"{request.param}_url")
    if url not in _migrated:
        settings = load_settings(
            {},
            database_url=url,
            data_dir=str(request.getfixturevalue("tmp_path")),
            jwt_secret=JWT_SECRET,
        )
        db = Database(settings.database, 1)
        migrate(db)
        db.close()
        _migrated.add(url)
    return url


def make_settings(database_url: str, data_dir: Any, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": str(data_dir),
        "jwt_secret": JWT_SECRET,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
    }
    values.update(overrides)
    return load_settings({}, **values)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change the server's settings."""
    return {}


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


@pytest.fixture
def api(app: Any, http_server: Any, http_client: AsyncHTTPClient, base_url: str) -> Api:
    return Api(http_client, base_url)
