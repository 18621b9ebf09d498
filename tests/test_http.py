"""HTTP basics: the envelope for every error, health checks, and logs without secrets."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import socket
import stat
import sys
from pathlib import Path

import pytest
from PIL import Image
from tornado.httpclient import AsyncHTTPClient

from clients import ApiClient, eventually, unique_name
from conftest import cronchat_env

pytestmark = pytest.mark.gen_test


async def test_unknown_path_is_404_in_the_envelope(api: ApiClient) -> None:
    for method in ("GET", "POST", "DELETE"):
        reply = await api.call(method, "/api/v1/no/such/thing")
        assert reply.status == 404
        assert reply.body == {
            "error": {
                "code": "not_found",
                "message": "no such endpoint: /api/v1/no/such/thing",
                "details": {},
            }
        }


async def test_wrong_method_is_405_in_the_envelope(api: ApiClient) -> None:
    reply = await api.call("DELETE", "/api/v1/auth/login")
    assert reply.status == 405
    assert reply.error_code == "method_not_allowed"
    assert reply.headers["Content-Type"] == "application/json; charset=utf-8"


async def test_healthz_and_readyz(api: ApiClient) -> None:
    health = await api.get("/healthz")
    assert health.status == 200
    ready = await api.get("/readyz")
    assert ready.status == 200
    assert ready.body["checks"] == {"database": True, "storage": True}


async def test_access_log_holds_no_password_or_token(
    api: ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    user = await api.register(password="very secret words")
    await api.get("/api/v1/users/me?token=query-secret", user["token"])
    await api.post("/api/v1/auth/refresh", {"refresh_token": user["refresh_token"]})
    text = caplog.text
    assert "path=/api/v1/users/me status=200" in text
    for secret in ("very secret words", user["token"], user["refresh_token"], "query-secret"):
        assert secret not in text


async def test_metrics_in_prometheus_format(api: ApiClient) -> None:
    alice = await api.register()
    room = await api.group(alice)
    await api.send(alice, room["id"], "counted")
    reply = await api.get("/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    text = reply.body.decode()
    for name in (
        "cronchat_websocket_connections",
        "cronchat_events_published_total",
        "cronchat_event_frames_delivered_total",
        "cronchat_send_seconds_bucket",
        "cronchat_db_wait_seconds_count",
        "cronchat_broker_reconnects",
        "cronchat_worker_info",
    ):
        assert name in text, name
    published = [
        line for line in text.splitlines() if line.startswith("cronchat_events_published_total")
    ]
    assert float(published[0].split()[-1]) >= 2  # member.joined and message.created


async def test_browser_client_page_is_served_with_a_strict_policy(api: ApiClient) -> None:
    page = await api.get("/")
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "object-src 'none'" in policy
    assert b"<script" in page.body
    again = await api.get("/", headers={"If-None-Match": page.headers["Etag"]})
    assert again.status == 304
    assert (await api.get("/static/../setup.py")).status in (403, 404)


def directives(policy: str) -> dict[str, list[str]]:
    parsed = [part.split() for part in policy.split(";") if part.strip()]
    return {words[0]: words[1:] for words in parsed}


@pytest.mark.parametrize("path", ["/", "/static/app.css", "/sw.js"])
async def test_browser_client_may_open_websockets_to_this_server_only(
    api: ApiClient, base_url: str, path: str
) -> None:
    own = base_url.removeprefix("http://")
    served = await api.get(path)
    assert served.status == 200
    policy = directives(served.headers["Content-Security-Policy"])
    assert policy["connect-src"] == ["'self'", f"ws://{own}", f"wss://{own}"]
    named = await api.get(path, headers={"Host": "Chat.Example.org:8443"})
    policy = directives(named.headers["Content-Security-Policy"])
    assert policy["connect-src"] == [
        "'self'",
        "ws://chat.example.org:8443",
        "wss://chat.example.org:8443",
    ]


async def test_a_hostile_host_header_cannot_widen_the_policy(api: ApiClient) -> None:
    hostile = ["*", "'self'", "[::1]:80", "x.example:99999", "x.example:80:80", "a_b.example"]
    hostile += ["-x.example", "evil.example; script-src *", "a b"]
    served = 0
    for host in hostile:
        page = await api.get("/", headers={"Host": host})
        if page.status == 400:
            continue  # refused by the HTTP server before it reaches us
        served += 1
        policy = directives(page.headers["Content-Security-Policy"])
        assert policy["connect-src"] == ["'self'"], (host, policy)
        assert policy["script-src"] == ["'self'"], (host, policy)
    assert served >= 5


@pytest.mark.server_settings(static_dir="/nonexistent-client-dir")
async def test_client_files_come_from_the_configured_dir(api: ApiClient) -> None:
    assert (await api.get("/")).status == 404


# -- the data dir is the server's alone ----------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def modes_under(root: Path) -> dict[str, int]:
    """Every path under ``root`` (itself as ".") with its permission bits."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.stat().st_mode)
    return found


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277])
async def test_a_fresh_data_dir_is_readable_by_the_servers_user_only(
    tmp_path: Path, umask: int
) -> None:
    data_dir = tmp_path / "fresh" / "data"
    env = cronchat_env("", data_dir)
    del env["CRONCHAT_DATABASE_URL"], env["CRONCHAT_JWT_SECRET"]  # the defaults: all in there
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        "serve",
        "--migrate",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=lambda: os.umask(umask),
        start_new_session=True,
    )
    client = AsyncHTTPClient(force_instance=True)
    try:
        api = ApiClient(client, f"http://127.0.0.1:{port}")

        async def ready() -> bool:
            assert server.returncode is None, f"the server exited with {server.returncode}"
            try:
                return (await api.get("/readyz")).status == 200
            except OSError:
                return False

        await eventually(ready, 30, "the server to be ready")
        alice = await api.register(unique_name("modes"))
        buffer = io.BytesIO()
        Image.new("RGB", (40, 30), "red").save(buffer, format="PNG")
        uploaded = await api.post(
            "/api/v1/media",
            token=alice["token"],
            body=buffer.getvalue(),
            headers={"Content-Type": "image/png"},
        )
        assert uploaded.status == 201, uploaded.body

        modes = modes_under(data_dir)
        for name in ("cronchat.sqlite3", "cronchat.sqlite3-wal", "cronchat.sqlite3-shm"):
            assert name in modes, sorted(modes)
        assert "jwt_secret" in modes and "media" in modes, sorted(modes)
        media_files = [name for name in modes if name.startswith("media/") and ".png" in name]
        assert len(media_files) == 2, sorted(modes)  # the image and its thumbnail
        wrong = {
            name: oct(mode)
            for name, mode in modes.items()
            if mode != (0o700 if (data_dir / name).is_dir() else 0o600)
        }
        assert wrong == {}, f"umask {umask:03o}: expected dirs 0700 and files 0600: {wrong}"
    finally:
        client.close()
        if server.returncode is None:
            os.killpg(server.pid, signal.SIGTERM)
        await asyncio.wait_for(server.wait(), 30)
