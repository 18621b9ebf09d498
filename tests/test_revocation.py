"""A REST request's session is known live from memory, and a revoked session still answers
401 at once: on the process that revoked it, on the others through the broker, and within
the relay's poll when the CLI revoked it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from test_cli import cronchat
from test_faults import Proxy, own_redis, readiness, redis_proxy, via
from test_scale import Server, free_port, require_redis
from tornado.httpclient import AsyncHTTPClient

from clients import ApiClient, User, eventually
from conftest import cronchat_env, ensure_migrated
from cronchat.models import User as UserValue
from cronchat.realtime.session_cache import SessionCache

__all__ = ["own_redis", "redis_proxy"]  # the fixtures of test_faults that these tests use

ME = "/api/v1/users/me"
# Long enough that no test here can pass merely because a remembered session expired.
REMEMBERED = 600


async def session_reads(api: ApiClient) -> tuple[float, float]:
    """The server's (hits, misses) of the session cache, from /metrics."""
    reply = await api.get("/metrics")
    assert reply.status == 200
    values = {}
    for line in reply.body.decode().splitlines():
        name, _, value = line.partition(" ")
        if name in ("cronchat_session_cache_hits_total", "cronchat_session_cache_misses_total"):
            values[name] = float(value)
    assert len(values) == 2, f"expected the session cache counters on /metrics, got {values}"
    return values["cronchat_session_cache_hits_total"], values[
        "cronchat_session_cache_misses_total"
    ]


async def status(api: ApiClient, token: str) -> int:
    return (await api.get(ME, token)).status


async def login(api: ApiClient, user: User) -> str:
    """Another session of the user (another device); answers its access token."""
    reply = await api.post(
        "/api/v1/auth/login", {"username": user["user"]["username"], "password": user["password"]}
    )
    assert reply.status == 200, reply.body
    return reply.body["access_token"]


async def remembered(api: ApiClient, token: str) -> None:
    """Use the token until the server answers it from memory, so that what follows tests a
    remembered session and not one read afresh."""
    assert await status(api, token) == 200
    hits, misses = await session_reads(api)
    assert await status(api, token) == 200
    after = await session_reads(api)
    assert after == (hits + 1, misses), f"expected one hit and no miss, got {after}"


pytestmark = pytest.mark.gen_test


async def test_requests_of_a_live_session_do_not_read_the_database(api: ApiClient) -> None:
    alice = await api.register()
    room = await api.group(alice)
    assert await status(api, alice["token"]) == 200
    hits, misses = await session_reads(api)
    for _ in range(10):
        assert await status(api, alice["token"]) == 200
        await api.send(alice, room["id"], "from memory")
    after_hits, after_misses = await session_reads(api)
    assert (after_hits - hits, after_misses - misses) == (20, 0)


@pytest.mark.server_settings(session_cache_seconds=REMEMBERED)
async def test_logout_answers_401_at_once_for_a_remembered_session(api: ApiClient) -> None:
    alice = await api.register()
    other_device = await login(api, alice)
    await remembered(api, alice["token"])
    await remembered(api, other_device)

    assert (await api.post("/api/v1/auth/logout", token=alice["token"])).status == 204
    assert await status(api, alice["token"]) == 401
    # Only that session ended, and the other is still answered from memory.
    hits, misses = await session_reads(api)
    assert await status(api, other_device) == 200
    assert await session_reads(api) == (hits + 1, misses)


@pytest.mark.server_settings(session_cache_seconds=REMEMBERED)
async def test_reused_refresh_token_answers_401_for_the_sessions_access_tokens(
    api: ApiClient,
) -> None:
    alice = await api.register()
    refreshed = await api.post("/api/v1/auth/refresh", {"refresh_token": alice["refresh_token"]})
    assert refreshed.status == 200
    newer = refreshed.body["access_token"]
    await remembered(api, alice["token"])
    await remembered(api, newer)

    replay = await api.post("/api/v1/auth/refresh", {"refresh_token": alice["refresh_token"]})
    assert replay.status == 401
    assert (await status(api, alice["token"]), await status(api, newer)) == (401, 401)


@pytest.mark.server_settings(session_cache_seconds=REMEMBERED)
async def test_password_change_answers_401_at_once_for_the_other_sessions(api: ApiClient) -> None:
    alice = await api.register()
    other_device = await login(api, alice)
    await remembered(api, other_device)

    changed = await api.put(
        "/api/v1/users/me/password",
        {"current_password": alice["password"], "new_password": "another long one"},
        token=alice["token"],
    )
    assert changed.status == 204, changed.body
    assert await status(api, other_device) == 401
    assert await status(api, alice["token"]) == 200


@pytest.mark.server_settings(session_cache_seconds=0)
async def test_without_a_cache_every_request_reads_the_session(api: ApiClient) -> None:
    alice = await api.register()
    hits, misses = await session_reads(api)
    for _ in range(3):
        assert await status(api, alice["token"]) == 200
    assert await session_reads(api) == (hits, misses + 3)


# -- the CLI: its notices reach the server through the database, polled each second --------


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return cronchat_env(database_url, tmp_path / "cli-data")


async def answers_401(api: ApiClient, token: str) -> bool:
    return await status(api, token) == 401


@pytest.mark.server_settings(session_cache_seconds=REMEMBERED)
@pytest.mark.gen_test(timeout=60)
async def test_cli_disable_answers_401_promptly_for_a_remembered_session(
    api: ApiClient, cli_env: dict[str, str]
) -> None:
    erin = await api.register()
    await remembered(api, erin["token"])
    code, _, err = await cronchat(cli_env, "user", "disable", erin["user"]["username"])
    assert code == 0, err
    await eventually(lambda: answers_401(api, erin["token"]), 10, "401 for the disabled user")


@pytest.mark.server_settings(session_cache_seconds=REMEMBERED)
@pytest.mark.gen_test(timeout=60)
async def test_cli_set_password_answers_401_promptly_for_a_remembered_session(
    api: ApiClient, cli_env: dict[str, str]
) -> None:
    erin = await api.register()
    await remembered(api, erin["token"])
    code, _, err = await cronchat(
        cli_env,
        "user",
        "set-password",
        erin["user"]["username"],
        "--password-stdin",
        stdin="a whole new password\n",
    )
    assert code == 0, err
    await eventually(lambda: answers_401(api, erin["token"]), 10, "401 after set-password")


# -- several processes, through Redis ---------------------------------------------------------


@pytest.mark.gen_test(timeout=120)
async def test_logout_on_one_process_answers_401_on_another(mysql_url: str, tmp_path: Path) -> None:
    ensure_migrated(mysql_url, tmp_path)
    env = cronchat_env(
        mysql_url,
        tmp_path / "data",
        CRONCHAT_REDIS_URL=require_redis(),
        CRONCHAT_SESSION_CACHE_SECONDS=str(REMEMBERED),
    )
    servers: list[Server] = []
    client = AsyncHTTPClient(force_instance=True)
    try:
        servers.append(await Server.start(env, free_port()))
        servers.append(await Server.start(env, free_port()))
        first, second = (ApiClient(client, server.url) for server in servers)
        alice = await first.register()
        await remembered(second, alice["token"])

        assert (await first.post("/api/v1/auth/logout", token=alice["token"])).status == 204
        assert await status(first, alice["token"]) == 401
        # The notice crosses Redis while the logout answers: the other process has it
        # within moments, long before the session would have expired from its memory.
        await eventually(lambda: answers_401(second, alice["token"]), 5, "401 on the other process")
    finally:
        client.close()
        for server in servers:
            server.stop()


@pytest.mark.gen_test(timeout=120)
async def test_a_process_that_missed_notices_reads_its_sessions_again(
    own_redis: Any, redis_proxy: Proxy, mysql_url: str, tmp_path: Path
) -> None:
    """A logout published while a process was cut off from Redis never reaches it: when its
    subscription comes back, it no longer believes any session live from memory."""
    ensure_migrated(mysql_url, tmp_path)
    settings = {"CRONCHAT_SESSION_CACHE_SECONDS": str(REMEMBERED), "CRONCHAT_REDIS_TIMEOUT": "1"}
    data = tmp_path / "data"
    cut_off = await Server.start(
        cronchat_env(
            mysql_url, data, CRONCHAT_REDIS_URL=via(own_redis.url, redis_proxy), **settings
        ),
        free_port(),
    )
    other = await Server.start(
        cronchat_env(mysql_url, data, CRONCHAT_REDIS_URL=own_redis.url, **settings), free_port()
    )
    client = AsyncHTTPClient(force_instance=True)
    try:
        on_cut_off, on_other = ApiClient(client, cut_off.url), ApiClient(client, other.url)
        alice = await on_other.register()
        await remembered(on_cut_off, alice["token"])

        redis_proxy.cut()
        await eventually(lambda: readiness(cut_off.url) == 503, 15, "the lost broker noticed")
        assert (await on_other.post("/api/v1/auth/logout", token=alice["token"])).status == 204

        redis_proxy.heal()  # the logout's notice is gone for good: Redis keeps no history
        await eventually(lambda: readiness(cut_off.url) == 200, 15, "the broker back")
        assert await status(on_cut_off, alice["token"]) == 401
    finally:
        client.close()
        cut_off.stop()
        other.stop()


# -- the cache itself: what it remembers, and for how long ----------------------------------


def a_user(user_id: str) -> UserValue:
    return UserValue(user_id, user_id, user_id, "", None, False, False, 0, None)


class Counted:
    """The cache's hit and miss counters, as plain numbers."""

    def __init__(self) -> None:
        self.hits = self.misses = 0

    def hit(self) -> None:
        self.hits += 1

    def miss(self) -> None:
        self.misses += 1


async def test_a_read_overtaken_by_a_revocation_is_not_remembered() -> None:
    counted = Counted()
    cache = SessionCache(REMEMBERED, counted.hit, counted.miss)
    revoke_now = asyncio.Event()
    read_done = asyncio.Event()

    async def slow_read() -> UserValue | None:
        revoke_now.set()
        await read_done.wait()
        return a_user("u1")  # as the database answered before the revocation committed

    lookup = asyncio.ensure_future(cache.live_user("s1", "u1", slow_read))
    await revoke_now.wait()
    cache.forget_sessions(["s1"])
    read_done.set()
    assert await lookup == a_user("u1")

    async def read_revoked() -> UserValue | None:
        return None

    assert await cache.live_user("s1", "u1", read_revoked) is None
    assert (counted.hits, counted.misses) == (0, 2)


async def test_a_remembered_session_expires_and_the_least_recently_used_go_first() -> None:
    now = [0.0]
    counted = Counted()
    cache = SessionCache(60, counted.hit, counted.miss, max_entries=2, clock=lambda: now[0])

    async def read(user_id: str) -> UserValue | None:
        return a_user(user_id)

    for session_id in ("s1", "s2", "s1", "s3"):  # s1 used again: s2 is the one to go
        await cache.live_user(session_id, "u" + session_id, lambda s=session_id: read("u" + s))
    assert (counted.hits, counted.misses, len(cache)) == (1, 3, 2)
    await cache.live_user("s2", "us2", lambda: read("us2"))
    assert counted.misses == 4
    now[0] = 61.0
    await cache.live_user("s2", "us2", lambda: read("us2"))
    assert (counted.hits, counted.misses) == (1, 5)
