"""HTTP basics: the envelope for every error, health checks, and logs without secrets."""

from __future__ import annotations

import logging

import pytest

from conftest import Api

pytestmark = pytest.mark.gen_test


async def test_unknown_path_is_404_in_the_envelope(api: Api) -> None:
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


async def test_wrong_method_is_405_in_the_envelope(api: Api) -> None:
    reply = await api.call("DELETE", "/api/v1/auth/login")
    assert reply.status == 405
    assert reply.error_code == "method_not_allowed"
    assert reply.headers["Content-Type"] == "application/json; charset=utf-8"


async def test_healthz_and_readyz(api: Api) -> None:
    health = await api.get("/healthz")
    assert health.status == 200
    ready = await api.get("/readyz")
    assert ready.status == 200
    assert ready.body["checks"] == {"database": True, "storage": True}


async def test_access_log_holds_no_password_or_token(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    user = await api.register(password="very secret words")
    await api.get("/api/v1/users/me?token=query-secret", user["token"])
    await api.post("/api/v1/auth/refresh", {"refresh_token": user["refresh_token"]})
    text = caplog.text
    assert "path=/api/v1/users/me status=200" in text
    for secret in ("very secret words", user["token"], user["refresh_token"], "query-secret"):
        assert secret not in text


async def test_metrics_in_prometheus_format(api: Api) -> None:
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


async def test_browser_client_page_is_served_with_a_strict_policy(api: Api) -> None:
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


@pytest.mark.parametrize("path", ["/", "/static/app.css"])
async def test_browser_client_may_open_websockets_to_this_server_only(
    api: Api, base_url: str, path: str
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


async def test_a_hostile_host_header_cannot_widen_the_policy(api: Api) -> None:
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
async def test_client_files_come_from_the_configured_dir(api: Api) -> None:
    assert (await api.get("/")).status == 404
