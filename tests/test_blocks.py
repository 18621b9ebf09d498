"""Blocks: the blocker hears nothing from the blocked user that counts or alerts (events
still arrive, seqs stay gap-free), and the blocked user cannot reach the blocker."""

from __future__ import annotations

from typing import Any

import pytest
from test_scale import Server, client, redis_url, server_env, two_servers
from tornado.httpclient import AsyncHTTPClient

from clients import ApiClient, User, WsClient, of_type

pytestmark = pytest.mark.gen_test(timeout=60)
# The fixtures of test_scale that the test across processes uses.
__all__ = ["client", "redis_url", "server_env", "two_servers"]


async def block(api: ApiClient, user: User, target: User) -> None:
    reply = await api.put(f"/api/v1/users/me/blocks/{target['user']['id']}", None, user["token"])
    assert reply.status == 204, reply.body


async def counts(api: ApiClient, user: User, room_id: str) -> tuple[int, int]:
    """(unread_count, unread_mention_count) of a room, as REST has it."""
    reply = await api.get(f"/api/v1/rooms/{room_id}", user["token"])
    assert reply.status == 200, reply.body
    return reply.body["unread_count"], reply.body["unread_mention_count"]


async def test_blocks_are_listed_set_and_lifted_idempotently(api: ApiClient) -> None:
    alice, bob = await api.register(), await api.register()
    await block(api, alice, bob)
    await block(api, alice, bob)
    listed = await api.get("/api/v1/users/me/blocks", alice["token"])
    assert listed.status == 200
    assert [user["id"] for user in listed.body["users"]] == [bob["user"]["id"]]
    for _ in range(2):
        reply = await api.delete(f"/api/v1/users/me/blocks/{bob['user']['id']}", alice["token"])
        assert reply.status == 204
    assert (await api.get("/api/v1/users/me/blocks", alice["token"])).body == {"users": []}


async def test_blocking_yourself_or_nobody_is_refused(api: ApiClient) -> None:
    alice = await api.register()
    myself = await api.put(f"/api/v1/users/me/blocks/{alice['user']['id']}", None, alice["token"])
    assert myself.status == 400 and myself.error_code == "invalid_request"
    nobody = await api.put("/api/v1/users/me/blocks/nobody", None, alice["token"])
    assert nobody.status == 404
    anonymous = await api.put(f"/api/v1/users/me/blocks/{alice['user']['id']}", None)
    assert anonymous.status == 401
    assert (await api.get("/api/v1/users/me/blocks", alice["token"])).body == {"users": []}


async def test_the_blocked_users_messages_count_for_nothing_and_mention_no_one(
    api: ApiClient, connect: Any
) -> None:
    alice, bob, carol = [await api.register() for _ in range(3)]
    room_id = (await api.group(alice, bob, carol))["id"]
    await api.send(bob, room_id, "before the block", mentions={"user_ids": [alice["user"]["id"]]})
    assert await counts(api, alice, room_id) == (1, 1)
    await block(api, alice, bob)
    # What was unread from bob no longer counts, in SQL as in the live views.
    assert await counts(api, alice, room_id) == (0, 0)
    alice_ws = await connect(alice["token"])
    await api.send(bob, room_id, "@alice", mentions={"user_ids": [alice["user"]["id"]]})
    marker = await api.send(carol, room_id, "marker", mentions={"user_ids": [alice["user"]["id"]]})
    before = await alice_ws.frames_before(of_type("mention"), "carol's mention")
    events = [frame for frame in before if frame["type"] == "event"]
    # The blocked user's event still arrives (no hole in the seqs), counted for nothing.
    assert [frame["event"]["data"]["text"] for frame in events] == ["@alice", "marker"]
    assert (events[0]["room"]["unread_count"], events[0]["room"]["unread_mention_count"]) == (0, 0)
    assert (events[1]["room"]["unread_count"], events[1]["room"]["unread_mention_count"]) == (1, 1)
    assert not [frame for frame in before if frame["type"] == "mention"]
    assert await counts(api, alice, room_id) == (1, 1)
    feed = await api.get("/api/v1/users/me/mentions", alice["token"])
    assert [m["message"]["id"] for m in feed.body["mentions"]] == [marker["id"]]


async def test_the_blockers_devices_learn_whom_they_block(api: ApiClient, connect: Any) -> None:
    alice, bob = await api.register(), await api.register()
    phone, laptop = await connect(alice["token"]), await connect(alice["token"])
    bob_ws = await connect(bob["token"])
    await block(api, alice, bob)
    for device in (phone, laptop):
        assert (await device.expect("blocks"))["user_ids"] == [bob["user"]["id"]]
    await api.delete(f"/api/v1/users/me/blocks/{bob['user']['id']}", alice["token"])
    assert (await laptop.expect("blocks"))["user_ids"] == []
    marker = await bob_ws.request({"type": "ping"})
    assert marker["type"] == "pong"
    assert not [frame for frame in bob_ws.backlog if frame["type"] == "blocks"]


async def test_typing_and_presence_of_the_blocked_user_are_withheld(
    api: ApiClient, connect: Any
) -> None:
    alice, bob, carol = [await api.register() for _ in range(3)]
    room_id = (await api.group(alice, bob, carol))["id"]
    await block(api, alice, bob)
    alice_ws = await connect(alice["token"])
    bob_ws = await connect(bob["token"])  # bob comes online, then carol
    carol_ws = await connect(carol["token"])
    carol_id = carol["user"]["id"]
    before = await alice_ws.frames_before(of_type("presence", user_id=carol_id), "presence")
    assert [frame for frame in before if frame.get("user_id") == bob["user"]["id"]] == []
    await bob_ws.request({"type": "typing", "room_id": room_id})
    await carol_ws.request({"type": "typing", "room_id": room_id})
    before = await alice_ws.frames_before(of_type("typing", user_id=carol_id), "typing")
    assert [frame for frame in before if frame.get("user_id") == bob["user"]["id"]] == []


async def test_the_blocked_user_cannot_open_a_direct_room_with_the_blocker(
    api: ApiClient,
) -> None:
    alice, bob = await api.register(), await api.register()
    await block(api, alice, bob)
    reply = await api.post("/api/v1/rooms/direct", {"user_id": alice["user"]["id"]}, bob["token"])
    assert reply.status == 403 and reply.body["error"]["details"]["reason"] == "blocked"
    assert (await api.get("/api/v1/rooms", bob["token"])).body["rooms"] == []
    # The blocker may still open it.
    assert (
        await api.post("/api/v1/rooms/direct", {"user_id": bob["user"]["id"]}, alice["token"])
    ).status == 201


async def test_the_blocked_user_cannot_send_in_their_direct_room(
    api: ApiClient, connect: Any
) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.direct(bob, alice)
    await block(api, alice, bob)
    body = {"client_msg_id": "b1", "text": "hello?"}
    reply = await api.post(f"/api/v1/rooms/{room['id']}/messages", body, bob["token"])
    assert reply.status == 403 and reply.body["error"]["details"]["reason"] == "blocked"
    bob_ws = await connect(bob["token"])
    refused = await bob_ws.request({"type": "message.send", "room_id": room["id"], **body})
    assert refused["type"] == "error" and refused["details"]["reason"] == "blocked"
    history = await api.get(f"/api/v1/rooms/{room['id']}/messages", alice["token"])
    assert history.body["messages"] == []
    # Alice may still write to bob; once unblocked, bob may answer.
    assert (await api.send(alice, room["id"], "I blocked you"))["seq"] > 0
    await api.delete(f"/api/v1/users/me/blocks/{bob['user']['id']}", alice["token"])
    sent = await api.post(f"/api/v1/rooms/{room['id']}/messages", body, bob["token"])
    assert sent.status == 201


async def test_the_blocked_user_cannot_add_the_blocker_to_a_group(api: ApiClient) -> None:
    alice, bob = await api.register(), await api.register()
    await block(api, alice, bob)
    room = await api.group(bob)
    added = await api.post(
        f"/api/v1/rooms/{room['id']}/members", {"user_id": alice["user"]["id"]}, bob["token"]
    )
    assert added.status == 403 and added.body["error"]["details"]["reason"] == "blocked"
    created = await api.post(
        "/api/v1/rooms", {"name": "Trap", "member_ids": [alice["user"]["id"]]}, bob["token"]
    )
    assert created.status == 403 and created.body["error"]["details"]["reason"] == "blocked"
    assert (await api.get("/api/v1/rooms", alice["token"])).body["rooms"] == []


async def test_a_block_reaches_the_blockers_devices_on_every_process(
    two_servers: tuple[Server, Server], client: AsyncHTTPClient
) -> None:
    first, second = two_servers
    on_first, on_second = ApiClient(client, first.url), ApiClient(client, second.url)
    alice, bob = await on_first.register(), await on_first.register()
    room_id = (await on_first.group(bob, alice))["id"]
    laptop = await WsClient.connect(second.url, alice["token"])
    try:
        await block(on_first, alice, bob)
        assert (await laptop.expect("blocks"))["user_ids"] == [bob["user"]["id"]]
        await on_first.send(bob, room_id, "hi", mentions={"user_ids": [alice["user"]["id"]]})
        delivered = await laptop.event_frame(room_id)
        assert (delivered["room"]["unread_count"], delivered["room"]["unread_mention_count"]) == (
            0,
            0,
        )
        assert await counts(on_second, alice, room_id) == (0, 0)
    finally:
        laptop.close()
