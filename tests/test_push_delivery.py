"""Push delivery, end to end: a real server pushing to the tests' own Web Push service and
push gateway on loopback. Who is pushed (offline members the message should alert, on each
of their devices), the read push that clears, a device gone, a push service down and back,
and, on MySQL, two processes delivering each push once."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from email.utils import formatdate
from typing import Any

import pytest
from push_receivers import (
    GatewayReceiver,
    Subscription,
    WebPushReceiver,
    push_gateway_fixture,
    webpush_receiver_fixture,
)
from test_mentions import naming
from test_notification_settings import hours_from_now
from test_scale import Server, client, free_port, redis_url, server_env, two_servers_on
from tornado.httpclient import AsyncHTTPClient

from clients import ApiClient, User, WsClient, eventually
from conftest import cronchat_env, ensure_migrated
from cronchat.db import Tx
from cronchat.push.delivery import backoff_seconds, retry_after_seconds, verdict_of
from cronchat.runtime import Runtime

pytestmark = pytest.mark.gen_test(timeout=60)
# The receivers are on loopback (admitted by CRONCHAT_PUSH_ALLOW_PRIVATE), and retries are
# quick here.
pushing = pytest.mark.server_settings(push_allow_private=True, push_retry_base_seconds=0.2)
__all__ = [
    "client",
    "push_gateway_fixture",
    "redis_url",
    "server_env",
    "webpush_receiver_fixture",
]

PUSH = "/api/v1/users/me/push"


async def subscribe(api: ApiClient, user: User, receiver: WebPushReceiver) -> Subscription:
    subscription = receiver.subscribe()
    reply = await api.post(PUSH, {"kind": "webpush", **subscription.as_json()}, user["token"])
    assert reply.status == 201, reply.body
    return subscription


def _owed_tx(tx: Tx) -> int:
    jobs = tx.scalar("SELECT COUNT(*) FROM push_jobs")
    owed = tx.scalar("SELECT COUNT(*) FROM push_outbox")
    return int(jobs) + int(owed)


async def settled(runtime: Runtime) -> None:
    """Every message planned and every push owed sent (or given up)."""

    async def nothing_owed() -> bool:
        return await runtime.db.read(_owed_tx) == 0

    await eventually(nothing_owed, 20, "the pushes owed to be sent")


async def pushers_of(api: ApiClient, user: User) -> list[dict[str, Any]]:
    reply = await api.get(PUSH, user["token"])
    assert reply.status == 200
    return list(reply.body["pushers"])


@pushing
async def test_an_offline_member_gets_one_push_per_message_and_the_sender_none(
    api: ApiClient, runtime: Runtime, webpush_receiver: WebPushReceiver
) -> None:
    alice, bob = await api.register(display_name="Alice"), await api.register()
    room = await api.group(alice, bob, name="Team")
    bobs = await subscribe(api, bob, webpush_receiver)
    alices = await subscribe(api, alice, webpush_receiver)
    first = await api.send(alice, room["id"], "hello bob", mentions=naming(bob))
    [push] = await webpush_receiver.wait_for(1, bobs)
    assert push.payload == {
        "type": "message",
        "room_id": room["id"],
        "room_name": "Team",
        "seq": first["seq"],
        "message_id": first["id"],
        "sender": {"id": alice["user"]["id"], "display_name": "Alice"},
        "excerpt": "hello bob",
        "mention": "user",
        "unread_count": 1,
    }
    assert push.headers.get("Topic") and int(push.headers["Ttl"]) > 0
    second = await api.send(alice, room["id"], "and again")
    pushes = await webpush_receiver.wait_for(2, bobs)
    assert (pushes[1].payload["seq"], pushes[1].payload["mention"]) == (second["seq"], None)
    assert pushes[1].payload["unread_count"] == 2
    await settled(runtime)
    assert len(bobs.pushes) == 2 and alices.pushes == []
    assert webpush_receiver.problems == []
    metrics = (await api.get("/metrics")).body.decode()
    assert "cronchat_pushes_sent_total 2.0" in metrics
    assert "cronchat_pushes_waiting" in metrics


@pushing
async def test_no_push_while_a_socket_is_open(
    api: ApiClient, runtime: Runtime, webpush_receiver: WebPushReceiver, connect: Any
) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    bobs = await subscribe(api, bob, webpush_receiver)
    bob_ws: WsClient = await connect(bob["token"])
    await api.send(alice, room["id"], "you are here")
    await settled(runtime)
    assert bobs.pushes == []
    bob_ws.close()
    bob_id = bob["user"]["id"]

    async def offline() -> bool:
        return not await runtime.presence.online([bob_id])

    await eventually(offline, 10, "bob to be offline")
    later = await api.send(alice, room["id"], "now you are away")
    [push] = await webpush_receiver.wait_for(1, bobs)
    assert push.payload["seq"] == later["seq"]


@pushing
async def test_settings_and_blocks_decide_who_is_pushed(
    api: ApiClient, runtime: Runtime, webpush_receiver: WebPushReceiver
) -> None:
    alice = await api.register()
    muted, silent, mentions_only, blocking = [await api.register() for _ in range(4)]
    room = await api.group(alice, muted, silent, mentions_only, blocking)
    settings_of = {
        "muted": (muted, {"muted_until": hours_from_now(1)}),
        "silent": (silent, {"level": "none"}),
        "mentions_only": (mentions_only, {"level": "mentions"}),
    }
    for user, body in settings_of.values():
        reply = await api.put(f"/api/v1/rooms/{room['id']}/notifications", body, user["token"])
        assert reply.status == 200, reply.body
    blocked = await api.put(
        f"/api/v1/users/me/blocks/{alice['user']['id']}", None, blocking["token"]
    )
    assert blocked.status in (200, 204), blocked.body
    devices = {
        name: await subscribe(api, user, webpush_receiver)
        for name, user in {
            "muted": muted,
            "silent": silent,
            "mentions_only": mentions_only,
            "blocking": blocking,
        }.items()
    }
    await api.send(alice, room["id"], "plain news")
    await settled(runtime)
    assert webpush_receiver.pushes == []
    everyone = [muted, silent, mentions_only, blocking]
    named = await api.send(alice, room["id"], "look", mentions=naming(*everyone))
    [push] = await webpush_receiver.wait_for(1, devices["mentions_only"])
    assert (push.payload["seq"], push.payload["mention"]) == (named["seq"], "user")
    await settled(runtime)
    assert [len(device.pushes) for device in devices.values()] == [0, 0, 1, 0]


@pushing
async def test_a_read_on_another_device_sends_the_read_push(
    api: ApiClient, runtime: Runtime, webpush_receiver: WebPushReceiver
) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    room = await api.group(alice, bob, carol)
    bobs = await subscribe(api, bob, webpush_receiver)
    carols = await subscribe(api, carol, webpush_receiver)
    await api.put(f"/api/v1/rooms/{room['id']}/notifications", {"level": "none"}, carol["token"])
    sent = await api.send(alice, room["id"], "read me")
    await webpush_receiver.wait_for(1, bobs)
    read = await api.post(f"/api/v1/rooms/{room['id']}/read", {"seq": sent["seq"]}, bob["token"])
    assert read.status == 200, read.body
    pushes = await webpush_receiver.wait_for(2, bobs)
    assert pushes[1].payload == {"type": "read", "room_id": room["id"], "unread_count": 0}
    # Carol was pushed nothing: her read owes no push.
    assert (
        await api.post(f"/api/v1/rooms/{room['id']}/read", {"seq": sent["seq"]}, carol["token"])
    ).status == 200
    # A second read of Bob's owes nothing either: nothing was pushed since the first.
    await settled(runtime)
    assert len(bobs.pushes) == 2 and carols.pushes == []


@pushing
async def test_a_device_answered_410_is_removed(
    api: ApiClient, runtime: Runtime, webpush_receiver: WebPushReceiver
) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    bobs = await subscribe(api, bob, webpush_receiver)
    bobs.status = 410
    await api.send(alice, room["id"], "anyone there?")

    async def removed() -> bool:
        return await pushers_of(api, bob) == []

    await eventually(removed, 20, "the gone device to be removed")
    await settled(runtime)
    assert webpush_receiver.answered == [410]


@pushing
async def test_a_push_service_down_then_up_gets_every_push_owed(
    api: ApiClient, runtime: Runtime, webpush_receiver: WebPushReceiver
) -> None:
    alice, bob = await api.register(), await api.register()
    rooms = [await api.group(alice, bob, name=f"Room {n}") for n in range(3)]
    bobs = await subscribe(api, bob, webpush_receiver)
    await webpush_receiver.stop()
    sent = [await api.send(alice, room["id"], f"while down {n}") for n, room in enumerate(rooms)]

    def retried() -> bool:
        return runtime.metrics.pushes_retried.value >= 3

    await eventually(retried, 20, "the pushes to be retried")
    webpush_receiver.answer(500)
    webpush_receiver.start()
    await eventually(lambda: 500 in webpush_receiver.answered, 20, "a try answered 500")
    webpush_receiver.answer(201)
    pushes = await webpush_receiver.wait_for(3, bobs)
    await settled(runtime)
    assert sorted((p.payload["room_id"], p.payload["seq"]) for p in bobs.pushes) == sorted(
        (message["room_id"], message["seq"]) for message in sent
    )
    assert len(pushes) == 3


@pushing
async def test_a_429_is_not_tried_again_before_its_retry_after(
    api: ApiClient, runtime: Runtime, webpush_receiver: WebPushReceiver
) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    bobs = await subscribe(api, bob, webpush_receiver)
    webpush_receiver.answer(429, retry_after=2)
    await api.send(alice, room["id"], "slow down")
    await eventually(lambda: webpush_receiver.requests >= 1, 20, "the first try")
    webpush_receiver.answer(201)
    await webpush_receiver.wait_for(1, bobs)
    await settled(runtime)
    first, second = webpush_receiver.arrivals
    # The backoff alone (0.2 s here) would have tried again within a fraction of a second.
    assert second - first >= 1.9
    assert webpush_receiver.answered == [429, 201]


@pushing
async def test_a_burst_in_one_room_coalesces_into_the_latest_message(
    api: ApiClient, runtime: Runtime, webpush_receiver: WebPushReceiver
) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    bobs = await subscribe(api, bob, webpush_receiver)
    await webpush_receiver.stop()  # the pushes wait, owed
    for n in range(4):
        last = await api.send(alice, room["id"], f"burst {n}")
    webpush_receiver.start()
    await settled(runtime)
    assert [(p.payload["seq"], p.payload["unread_count"]) for p in bobs.pushes][-1] == (
        last["seq"],
        4,
    )
    assert len(bobs.pushes) <= 2  # one, or one sent before the others replaced it


@pushing
async def test_a_gateway_device_gets_the_notify_body(
    api: ApiClient, runtime: Runtime, push_gateway: GatewayReceiver
) -> None:
    alice, bob = await api.register(display_name="Alice"), await api.register()
    room = await api.group(alice, bob, name="Team")
    device = {"kind": "gateway", "url": push_gateway.url, "pushkey": "tok-1", "app_id": "app.x"}
    assert (await api.post(PUSH, device, bob["token"])).status == 201
    sent = await api.send(alice, room["id"], "to your phone")
    [notification] = await push_gateway.wait_for(1)
    assert notification["event_id"] == sent["id"]
    assert notification["room_id"] == room["id"]
    assert notification["counts"] == {"unread": 1}
    assert notification["devices"] == [{"app_id": "app.x", "pushkey": "tok-1"}]
    assert notification["content"]["body"] == "to your phone"
    # The app was removed from the phone: the gateway rejects the key, the pusher goes.
    push_gateway.reject("tok-1")
    await api.send(alice, room["id"], "still there?")

    async def removed() -> bool:
        return await pushers_of(api, bob) == []

    await eventually(removed, 20, "the rejected device to be removed")


@pytest.mark.server_settings(push_allow_private=True, push_content=False)
async def test_push_content_false_sends_ids_and_counts_only(
    api: ApiClient, runtime: Runtime, webpush_receiver: WebPushReceiver
) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob, name="Secret plans")
    bobs = await subscribe(api, bob, webpush_receiver)
    await api.send(alice, room["id"], "the text stays home")
    [push] = await webpush_receiver.wait_for(1, bobs)
    assert "excerpt" not in push.payload and "room_name" not in push.payload
    assert push.payload["sender"] == {"id": alice["user"]["id"]}


def test_retry_after_is_read_as_seconds_or_a_date() -> None:
    now = 1_800_000_000.0
    assert retry_after_seconds("120", now) == 120.0
    assert retry_after_seconds(" 7 ", now) == 7.0
    assert retry_after_seconds(formatdate(now + 30, usegmt=True), now) == 30.0
    assert retry_after_seconds(formatdate(now - 30, usegmt=True), now) == 0.0  # already past
    for unreadable in (None, "", "-5", "1.5", "soon", "Sun, 06 Nov 1994 08:49:37"):
        assert retry_after_seconds(unreadable, now) is None


def test_retries_back_off_exponentially_with_jitter() -> None:
    assert 2.5 <= backoff_seconds(0, 5.0) <= 5.0  # the first retry within 10 s
    assert backoff_seconds(3, 5.0, rand=lambda: 1.0) == 40.0
    assert backoff_seconds(40, 5.0, rand=lambda: 1.0) == 3600.0
    assert [verdict_of(s) for s in (201, 404, 410, 429, 500, 503, 400, 413)] == [
        "sent",
        "gone",
        "gone",
        "retry",
        "retry",
        "retry",
        "drop",
        "drop",
    ]


async def test_two_processes_deliver_each_push_once(
    two_servers_pushing: tuple[Server, Server],
    client: AsyncHTTPClient,
    webpush_receiver: WebPushReceiver,
) -> None:
    first, second = two_servers_pushing
    on_first, on_second = ApiClient(client, first.url), ApiClient(client, second.url)
    alice, bob = await on_first.register(), await on_second.register()
    bobs = await subscribe(on_second, bob, webpush_receiver)
    rooms = [await on_first.group(alice, bob, name=f"R{n}") for n in range(6)]
    for n, room in enumerate(rooms):
        await (on_first if n % 2 else on_second).send(alice, room["id"], f"m{n}")
    await webpush_receiver.wait_for(6, bobs)
    await asyncio.sleep(1.5)  # room for a second delivery, were there one
    assert sorted(p.payload["room_id"] for p in bobs.pushes) == sorted(r["id"] for r in rooms)


@pytest.fixture
def two_servers_pushing(server_env: dict[str, str], io_loop: Any) -> Any:
    with two_servers_on({**server_env, "CRONCHAT_PUSH_ALLOW_PRIVATE": "true"}, io_loop) as servers:
        yield servers


async def test_pushes_owed_by_a_killed_server_are_delivered_after_restart(
    sqlite_url: str,
    tmp_path: Any,
    client: AsyncHTTPClient,
    webpush_receiver: WebPushReceiver,
    io_loop: Any,
) -> None:
    ensure_migrated(sqlite_url, tmp_path)
    env = cronchat_env(
        sqlite_url,
        tmp_path / "data",
        CRONCHAT_PUSH_ALLOW_PRIVATE="true",
        CRONCHAT_PUSH_RETRY_BASE_SECONDS="0.2",
    )
    port = free_port()
    server = await Server.start(env, port)
    try:
        api = ApiClient(client, server.url)
        alice, bob = await api.register(), await api.register()
        rooms = [await api.group(alice, bob, name=f"R{n}") for n in range(3)]
        bobs = await subscribe(api, bob, webpush_receiver)
        await webpush_receiver.stop()
        for n, room in enumerate(rooms):
            await api.send(alice, room["id"], f"owed {n}")
        await asyncio.sleep(0.5)  # tried, failed, waiting to be retried
    finally:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
    assert bobs.pushes == []
    webpush_receiver.start()
    again = await Server.start(env, port)
    try:
        await webpush_receiver.wait_for(3, bobs)
        await asyncio.sleep(1)  # room for a second delivery, were there one
        assert sorted(p.payload["room_id"] for p in bobs.pushes) == sorted(r["id"] for r in rooms)
    finally:
        again.stop()


async def test_a_claim_left_by_a_killed_server_runs_out_and_the_push_is_sent(
    sqlite_url: str,
    tmp_path: Any,
    client: AsyncHTTPClient,
    webpush_receiver: WebPushReceiver,
) -> None:
    """A server killed while a push service holds its request leaves that push claimed:
    nobody sends it again until the claim runs out (twice the push timeout and a second,
    7 s here), then it is sent."""
    ensure_migrated(sqlite_url, tmp_path)
    env = cronchat_env(
        sqlite_url,
        tmp_path / "data",
        CRONCHAT_PUSH_ALLOW_PRIVATE="true",
        CRONCHAT_PUSH_TIMEOUT_SECONDS="3",
    )
    claim_seconds = 2 * 3 + 1
    port = free_port()
    server = await Server.start(env, port)
    try:
        api = ApiClient(client, server.url)
        alice, bob = await api.register(), await api.register()
        room = await api.group(alice, bob)
        bobs = await subscribe(api, bob, webpush_receiver)
        webpush_receiver.hanging = True
        await api.send(alice, room["id"], "caught mid-flight")
        await eventually(lambda: webpush_receiver.requests >= 1, 20, "the push to be sent")
    finally:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
    claimed_at = webpush_receiver.arrivals[0]  # the claim was taken just before
    webpush_receiver.hanging = False
    again = await Server.start(env, port)
    try:
        # While the claim holds, the restarted server leaves the push alone.
        quiet_until = claimed_at + claim_seconds - 1
        if time.monotonic() < quiet_until:
            await asyncio.sleep(quiet_until - time.monotonic())
            assert webpush_receiver.requests == 1
        [push] = await webpush_receiver.wait_for(1, bobs)
        assert push.payload["room_id"] == room["id"]
        assert webpush_receiver.arrivals[1] - claimed_at >= claim_seconds - 0.5
        await asyncio.sleep(1)  # room for a second delivery, were there one
        assert len(bobs.pushes) == 1 and webpush_receiver.requests == 2
    finally:
        again.stop()
