"""Abuse: brute force and floods against real servers. Every REST endpoint is limited per
user, per client address before login (register, login, refresh), and login per username
too, before any password is hashed; the WebSocket counts against the same limiter. Past a
limit: 429 ``rate_limited`` with ``Retry-After`` and ``details.retry_after_ms``.

The fixtures lift every limit (the suite registers many users from 127.0.0.1): each test
here turns them on with ``server_settings(rate_limits=True, ...)``. Slow refills (per hour)
keep the counts exact however slow the machine is."""

from __future__ import annotations

import asyncio
import io
import ipaddress
from typing import Any

import pytest
from PIL import Image
from test_openapi import load_spec, operations, route_path, routes, spec_path, websocket_paths
from tornado.httpclient import AsyncHTTPClient

from clients import ApiClient, Reply, unique_name
from cronchat.config import ConfigError, Rate, load_settings
from cronchat.rate_limits import RateLimits, address_key, client_address

pytestmark = pytest.mark.gen_test(timeout=60)

HOURLY = 3600
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


async def login(api: ApiClient, username: str, password: str, **kw: Any) -> Reply:
    return await api.post("/api/v1/auth/login", {"username": username, "password": password}, **kw)


async def register(api: ApiClient, **kw: Any) -> Reply:
    return await api.post(
        "/api/v1/auth/register", {"username": unique_name(), "password": "correct horse"}, **kw
    )


def assert_rate_limited(reply: Reply) -> None:
    assert reply.status == 429, f"expected 429, got {reply.status} {reply.body}"
    assert reply.error_code == "rate_limited", reply.body
    retry_after_ms = reply.body["error"]["details"]["retry_after_ms"]
    assert isinstance(retry_after_ms, int) and retry_after_ms > 0, reply.body
    retry_after = int(reply.headers["Retry-After"])
    assert retry_after >= 1 and retry_after * 1000 >= retry_after_ms, (retry_after, reply.body)


def statuses(replies: list[Reply]) -> list[int]:
    return [reply.status for reply in replies]


# -- login: per username, before the hash -----------------------------------------------


@pytest.mark.server_settings(
    rate_limits=True, rate_login_username=Rate(5, HOURLY), rate_login_address=Rate(100, HOURLY)
)
async def test_wrong_passwords_for_one_username_are_refused_after_the_anchor(
    api: ApiClient,
) -> None:
    alice = await api.register()
    replies = [await login(api, alice["user"]["username"], "wrong password") for _ in range(40)]
    assert statuses(replies[:5]) == [401] * 5
    for reply in replies[5:]:
        assert_rate_limited(reply)


@pytest.mark.server_settings(
    rate_limits=True, rate_login_username=Rate(5, HOURLY), rate_login_address=Rate(100, HOURLY)
)
async def test_the_right_password_is_refused_too_while_the_username_is_limited(
    api: ApiClient,
) -> None:
    alice = await api.register()
    for _ in range(6):
        await login(api, alice["user"]["username"], "wrong password")
    assert_rate_limited(await login(api, alice["user"]["username"], alice["password"]))
    # Her open session is not touched: only new logins wait.
    assert (await api.get("/api/v1/users/me", alice["token"])).status == 200


@pytest.mark.server_settings(
    rate_limits=True, rate_login_username=Rate(5, HOURLY), rate_login_address=Rate(100, HOURLY)
)
async def test_the_username_limit_counts_any_case_of_the_name(api: ApiClient) -> None:
    alice = await api.register()
    name = alice["user"]["username"]
    for variant in (name.upper(), name.lower(), name.title(), name.swapcase(), name.upper()):
        assert (await login(api, variant, "wrong password")).status == 401
    assert_rate_limited(await login(api, name, "wrong password"))


@pytest.mark.server_settings(
    rate_limits=True, rate_login_username=Rate(5, HOURLY), rate_login_address=Rate(100, HOURLY)
)
async def test_another_username_from_the_same_address_still_logs_in(api: ApiClient) -> None:
    alice, bob = await api.register(), await api.register()
    for _ in range(6):
        await login(api, alice["user"]["username"], "wrong password")
    assert_rate_limited(await login(api, alice["user"]["username"], alice["password"]))
    assert (await login(api, bob["user"]["username"], bob["password"])).status == 200


@pytest.mark.server_settings(
    rate_limits=True, rate_login_username=Rate(5, HOURLY), rate_login_address=Rate(100, HOURLY)
)
async def test_a_successful_login_resets_the_count_of_failures(api: ApiClient) -> None:
    alice = await api.register()
    name = alice["user"]["username"]
    for _ in range(3):
        for _ in range(4):
            assert (await login(api, name, "wrong password")).status == 401
        assert (await login(api, name, alice["password"])).status == 200


@pytest.mark.server_settings(
    rate_limits=True, rate_login_username=Rate(5, HOURLY), rate_login_address=Rate(10, HOURLY)
)
async def test_logins_from_one_address_are_limited_whatever_the_usernames(api: ApiClient) -> None:
    replies = [await login(api, unique_name("nobody"), "wrong password") for _ in range(12)]
    assert statuses(replies[:10]) == [401] * 10
    for reply in replies[10:]:
        assert_rate_limited(reply)


@pytest.mark.server_settings(
    rate_limits=True,
    rate_login_username=Rate(5, HOURLY),
    rate_writes=Rate(1000, HOURLY),
)
async def test_guesses_of_the_current_password_count_as_login_failures(api: ApiClient) -> None:
    """A stolen access token must not let the password be guessed at the writes rate."""
    alice = await api.register()
    token, username = alice["access_token"], alice["user"]["username"]
    body = {"current_password": "wrong password", "new_password": "battery staple"}
    replies = [await api.put("/api/v1/users/me/password", body, token=token) for _ in range(8)]
    assert statuses(replies[:5]) == [401] * 5
    for reply in replies[5:]:
        assert_rate_limited(reply)
    assert_rate_limited(await login(api, username, "correct horse"))


# -- register and refresh: per address --------------------------------------------------


@pytest.mark.server_settings(rate_limits=True)
async def test_registrations_from_one_address_are_limited_by_default(api: ApiClient) -> None:
    replies = [await register(api) for _ in range(30)]
    assert statuses(replies[:10]) == [201] * 10
    for reply in replies[10:]:
        assert_rate_limited(reply)


@pytest.mark.server_settings(rate_limits=True, rate_refresh=Rate(3, HOURLY))
async def test_refreshes_from_one_address_are_limited(api: ApiClient) -> None:
    replies = [
        await api.post("/api/v1/auth/refresh", {"refresh_token": f"made-up-{n}"}) for n in range(5)
    ]
    assert statuses(replies[:3]) == [401] * 3
    for reply in replies[3:]:
        assert_rate_limited(reply)


# -- authenticated endpoints: per user --------------------------------------------------


@pytest.mark.server_settings(rate_limits=True, rate_sends=Rate(20, HOURLY))
async def test_a_flood_of_sends_is_limited_per_user(api: ApiClient) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    path = f"/api/v1/rooms/{room['id']}/messages"
    replies = [
        await api.post(path, {"client_msg_id": f"flood{n}", "text": "spam"}, alice["token"])
        for n in range(30)
    ]
    assert statuses(replies[:20]) == [201] * 20
    for reply in replies[20:]:
        assert_rate_limited(reply)
    # Nothing refused was stored; bob still sends, alice still reads.
    history = await api.get(path + "?limit=200", alice["token"])
    assert history.status == 200 and len(history.body["messages"]) == 20
    assert (await api.post(path, {"client_msg_id": "b1", "text": "hi"}, bob["token"])).status == 201


@pytest.mark.server_settings(rate_limits=True, rate_reads=Rate(5, HOURLY))
async def test_reads_are_limited_per_user(api: ApiClient) -> None:
    alice, bob = await api.register(), await api.register()
    replies = [await api.get("/api/v1/users/me", alice["token"]) for _ in range(7)]
    assert statuses(replies[:5]) == [200] * 5
    for reply in replies[5:]:
        assert_rate_limited(reply)
    assert (await api.get("/api/v1/users/me", bob["token"])).status == 200


@pytest.mark.server_settings(rate_limits=True, rate_writes=Rate(3, HOURLY))
async def test_other_writes_are_limited_per_user(api: ApiClient) -> None:
    alice = await api.register()
    replies = [
        await api.patch("/api/v1/users/me", {"bio": f"bio {n}"}, alice["token"]) for n in range(4)
    ]
    assert statuses(replies[:3]) == [200] * 3
    assert_rate_limited(replies[3])
    assert (await api.get("/api/v1/users/me", alice["token"])).body["bio"] == "bio 2"


@pytest.mark.server_settings(rate_limits=True, rate_uploads=Rate(2, HOURLY))
async def test_uploads_are_limited_per_user(api: ApiClient) -> None:
    alice = await api.register()
    image = png()
    headers = {"Content-Type": "image/png"}
    replies = [
        await api.post("/api/v1/media", token=alice["token"], body=image, headers=headers)
        for _ in range(3)
    ]
    assert statuses(replies[:2]) == [201] * 2
    assert_rate_limited(replies[2])


# -- a login flood does not starve other work --------------------------------------------


@pytest.mark.server_settings(
    rate_limits=True,
    trusted_proxies=LOOPBACK,
    argon2_time_cost=3,
    argon2_memory_kib=65536,
    rate_password_hashes=1,
    rate_password_queue=1,
)
async def test_a_login_flood_from_many_addresses_is_refused_and_an_upload_still_answers(
    api: ApiClient, base_url: str
) -> None:
    """Each login costs a real argon2 hash; every flooding request comes from an address of
    its own (through the trusted proxy), so only the bound on hashes at once holds it."""
    alice = await api.register()
    client = AsyncHTTPClient(force_instance=True, max_clients=100)
    flood_api = ApiClient(client, base_url)
    try:
        flood = [
            asyncio.ensure_future(
                login(
                    flood_api,
                    unique_name("nobody"),
                    "wrong password",
                    headers={"X-Forwarded-For": f"198.51.100.{n}"},
                )
            )
            for n in range(1, 41)
        ]
        upload = await flood_api.post(
            "/api/v1/media",
            token=alice["token"],
            body=png(),
            headers={"Content-Type": "image/png"},
        )
        logins = await asyncio.gather(*flood)
    finally:
        client.close()
    assert upload.status == 201, upload.body
    refused = [reply for reply in logins if reply.status == 503]
    assert set(statuses(logins)) <= {401, 503}, statuses(logins)
    assert refused, "expected logins past the bound on hashes at once to be refused"
    for reply in refused:
        assert reply.error_code == "unavailable"
        assert int(reply.headers["Retry-After"]) >= 1
        assert reply.body["error"]["details"]["retry_after_ms"] > 0
    # Once the flood is over, a real user logs in.
    assert (await login(api, alice["user"]["username"], alice["password"])).status == 200


@pytest.mark.server_settings(
    rate_limits=True, trusted_proxies=LOOPBACK, rate_login_address=Rate(10, HOURLY)
)
async def test_a_login_flood_from_one_address_leaves_other_addresses_logging_in(
    api: ApiClient,
) -> None:
    alice = await api.register()
    attacker = {"X-Forwarded-For": "198.51.100.66"}
    flood = [
        await login(api, unique_name("nobody"), "wrong password", headers=attacker)
        for _ in range(30)
    ]
    assert statuses(flood[:10]) == [401] * 10
    for reply in flood[10:]:
        assert_rate_limited(reply)
    elsewhere = {"X-Forwarded-For": "203.0.113.5"}
    reply = await login(api, alice["user"]["username"], alice["password"], headers=elsewhere)
    assert reply.status == 200, reply.body


# -- the client address behind a proxy --------------------------------------------------


@pytest.mark.server_settings(rate_limits=True, rate_register=Rate(2, HOURLY))
async def test_a_forged_forwarded_for_from_an_untrusted_peer_is_ignored(api: ApiClient) -> None:
    replies = [
        await register(api, headers={"X-Forwarded-For": f"203.0.113.{n}"}) for n in range(1, 4)
    ]
    assert statuses(replies[:2]) == [201, 201]
    assert_rate_limited(replies[2])


@pytest.mark.server_settings(
    rate_limits=True, rate_register=Rate(2, HOURLY), trusted_proxies=LOOPBACK
)
async def test_behind_a_trusted_proxy_each_forwarded_address_has_its_own_limit(
    api: ApiClient,
) -> None:
    first = [await register(api, headers={"X-Forwarded-For": "203.0.113.1"}) for _ in range(3)]
    assert statuses(first[:2]) == [201, 201]
    assert_rate_limited(first[2])
    assert (await register(api, headers={"X-Forwarded-For": "203.0.113.2"})).status == 201


@pytest.mark.server_settings(
    rate_limits=True,
    rate_register=Rate(2, HOURLY),
    trusted_proxies=(*LOOPBACK, ipaddress.ip_network("10.0.0.0/8")),
)
async def test_behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client(
    api: ApiClient,
) -> None:
    """The client forges the left part of the header; each trusted proxy appends the
    address it heard from: the first untrusted one from the right is the client."""
    replies = [
        await register(api, headers={"X-Forwarded-For": f"192.0.2.{n}, 203.0.113.9, 10.1.2.3"})
        for n in range(1, 4)
    ]
    assert statuses(replies[:2]) == [201, 201]
    assert_rate_limited(replies[2])


# -- lifted ------------------------------------------------------------------------------


@pytest.mark.server_settings(rate_limits=False, rate_login_username=Rate(5, HOURLY))
async def test_rate_limits_false_lifts_every_limit(api: ApiClient, connect: Any) -> None:
    alice = await api.register()
    wrong = [await login(api, alice["user"]["username"], "wrong password") for _ in range(40)]
    assert statuses(wrong) == [401] * 40
    assert statuses([await register(api) for _ in range(30)]) == [201] * 30
    room = await api.group(alice)
    for n in range(100):
        await api.send(alice, room["id"], f"message {n}")
    ws = await connect(alice["token"])
    for n in range(300):
        await ws.send({"type": "ping", "id": n})
    for n in range(300):
        assert (await ws.expect("pong", id=n))["id"] == n
    assert not [frame for frame in ws.backlog if frame["type"] == "error"]


# -- configuration and the limiter's memory ---------------------------------------------


def test_rate_settings_are_read_from_the_environment(tmp_path: Any) -> None:
    settings = load_settings(
        {
            "CRONCHAT_RATE_LIMITS": "false",
            "CRONCHAT_RATE_LOGIN_USERNAME": "5/m",
            "CRONCHAT_RATE_REGISTER": "30/10m",
            "CRONCHAT_RATE_SENDS": "600/60",
            "CRONCHAT_TRUSTED_PROXIES": "10.0.0.0/8, ::1",
        },
        data_dir=str(tmp_path),
        jwt_secret="x" * 40,
    )
    assert settings.rate_limits is False
    assert settings.rate_login_username == Rate(5, 60)
    assert settings.rate_register == Rate(30, 600)
    assert settings.rate_sends == Rate(600, 60)
    assert settings.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )


@pytest.mark.parametrize(
    "variable, value",
    [
        ("CRONCHAT_RATE_SENDS", "many"),
        ("CRONCHAT_RATE_SENDS", "0/m"),
        ("CRONCHAT_RATE_SENDS", "5"),
        ("CRONCHAT_RATE_LIMITS", "sometimes"),
        ("CRONCHAT_TRUSTED_PROXIES", "10.0.0.0/33"),
    ],
)
def test_bad_rate_settings_stop_the_start(tmp_path: Any, variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_settings({variable: value}, data_dir=str(tmp_path), jwt_secret="x" * 40)


def test_a_flood_of_distinct_keys_does_not_grow_the_limiter_past_its_bound(
    tmp_path: Any,
) -> None:
    settings = load_settings({}, data_dir=str(tmp_path), jwt_secret="x" * 40)
    limits = RateLimits(settings, max_keys=1000, clock=lambda: 1000.0)  # time stands still
    for n in range(20_000):
        limits.take("login_username", f"user{n}")
    assert limits.key_count() <= 1000
    # A key being refused is not forgotten while a flood of other keys goes on.
    for _ in range(settings.rate_login_username.count):
        assert limits.take("login_username", "target") == 0
    for n in range(20_000):
        assert limits.take("login_username", "target") > 0, f"forgotten after {n} other keys"
        limits.take("login_username", f"other{n}")
    assert limits.key_count() <= 1000


# -- the contract ------------------------------------------------------------------------


def test_every_limited_operation_documents_429_with_retry_after() -> None:
    """Each operation the limits apply to (authenticated ones, and public ones naming a
    rule) lists the shared 429 answer, whose Retry-After header is documented."""
    spec = load_spec()
    answer = spec["components"]["responses"]["RateLimited"]
    assert "Retry-After" in answer["headers"]
    handlers = {route_path(pattern): handler for pattern, handler in routes()}
    sockets = websocket_paths()
    for path, method, operation in operations(spec):
        handler = handlers[spec_path(path)]
        if spec_path(path) in sockets:
            continue
        limited = not handler.public or method.upper() in handler.rate_rules
        documented = operation["responses"].get("429")
        if limited:
            assert documented == {"$ref": "#/components/responses/RateLimited"}, (
                f"{method.upper()} {path}: no 429"
            )
        else:
            assert documented is None, f"{method.upper()} {path}: a 429 it never answers"


def test_an_ipv6_client_is_counted_by_its_64_and_a_mapped_ipv4_one_by_its_ipv4() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:198.51.100.7") == address_key("198.51.100.7") == "198.51.100.7"


@pytest.mark.parametrize(
    "peer, forwarded_for, client",
    [
        ("203.0.113.1", ["198.51.100.1"], "203.0.113.1"),  # untrusted peer: its own address
        ("127.0.0.1", [], "127.0.0.1"),  # a trusted proxy that names no one
        ("127.0.0.1", ["garbage, 198.51.100.1"], "198.51.100.1"),
        ("127.0.0.1", ["198.51.100.1", "198.51.100.2"], "198.51.100.2"),  # two headers
        ("127.0.0.1", ["198.51.100.1, 127.0.0.5"], "198.51.100.1"),  # a chain of proxies
        ("127.0.0.1", ["not an address"], "127.0.0.1"),
    ],
)
def test_the_client_address_is_the_rightmost_untrusted_hop(
    peer: str, forwarded_for: list[str], client: str
) -> None:
    assert client_address(peer, forwarded_for, LOOPBACK) == client
