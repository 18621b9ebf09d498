"""Rooms: groups and direct rooms, roles, membership changes and the room list."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import pytest

from clients import ApiClient

pytestmark = pytest.mark.gen_test

THUMBS = quote("👍")

ROOM_FIELDS = {
    "id",
    "kind",
    "name",
    "topic",
    "avatar_url",
    "member_count",
    "my_role",
    "last_seq",
    "last_read_seq",
    "unread_count",
    "unread_mention_count",
    "notifications",
    "last_message",
    "created_at",
    "updated_at",
}


async def test_create_group_makes_the_creator_owner(api: ApiClient) -> None:
    alice, bob = await api.register(), await api.register()
    reply = await api.post(
        "/api/v1/rooms",
        {"name": "  Book   club ", "topic": "novels", "member_ids": [bob["user"]["id"]]},
        alice["token"],
    )
    assert reply.status == 201
    room = reply.body
    assert set(room) == ROOM_FIELDS
    assert (room["kind"], room["name"], room["topic"]) == ("group", "Book club", "novels")
    assert room["my_role"] == "owner" and room["member_count"] == 2
    assert room["last_seq"] == 2 and room["unread_count"] == 0
    members = await api.get(f"/api/v1/rooms/{room['id']}/members", bob["token"])
    roles = {m["user"]["id"]: m["role"] for m in members.body["members"]}
    assert roles == {alice["user"]["id"]: "owner", bob["user"]["id"]: "member"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": 3}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "ok", "topic": "x" * 501}, "topic"),
        ({"name": "ok", "member_ids": "abc"}, "member_ids"),
        ({"name": "ok", "member_ids": [1, 2]}, "member_ids"),
    ],
)
async def test_create_group_rejects_bad_fields(api: ApiClient, body: dict, field: str) -> None:
    alice = await api.register()
    reply = await api.post("/api/v1/rooms", body, alice["token"])
    assert reply.status == 400, reply.body
    assert reply.body["error"]["details"]["field"] == field
    assert (await api.get("/api/v1/rooms", alice["token"])).body["rooms"] == []


async def test_create_group_with_unknown_member_creates_nothing(api: ApiClient) -> None:
    alice = await api.register()
    reply = await api.post("/api/v1/rooms", {"name": "x", "member_ids": ["nobody"]}, alice["token"])
    assert reply.status == 404
    assert (await api.get("/api/v1/rooms", alice["token"])).body["rooms"] == []


async def test_direct_room_is_one_per_pair(api: ApiClient) -> None:
    alice, bob = await api.register(display_name="Alice"), await api.register(display_name="Bob")
    first = await api.post("/api/v1/rooms/direct", {"user_id": bob["user"]["id"]}, alice["token"])
    assert first.status == 201
    assert first.body["kind"] == "direct" and first.body["name"] == "Bob"
    assert first.body["peer"]["id"] == bob["user"]["id"]
    again = await api.post("/api/v1/rooms/direct", {"user_id": alice["user"]["id"]}, bob["token"])
    assert again.status == 200
    assert again.body["id"] == first.body["id"]
    assert again.body["name"] == "Alice" and again.body["peer"]["id"] == alice["user"]["id"]


async def test_direct_room_created_by_both_at_once_is_one_room(api: ApiClient) -> None:
    alice, bob = await api.register(), await api.register()
    replies = await asyncio.gather(
        *[
            api.post("/api/v1/rooms/direct", {"user_id": peer["user"]["id"]}, user["token"])
            for user, peer in [(alice, bob), (bob, alice)] * 3
        ]
    )
    assert {reply.status for reply in replies} <= {200, 201}
    assert len({reply.body["id"] for reply in replies}) == 1
    assert [reply.status for reply in replies].count(201) == 1
    members = await api.get(f"/api/v1/rooms/{replies[0].body['id']}/members", alice["token"])
    assert len(members.body["members"]) == 2


async def test_direct_room_with_self_or_unknown_user_is_refused(api: ApiClient) -> None:
    alice = await api.register()
    me = await api.post("/api/v1/rooms/direct", {"user_id": alice["user"]["id"]}, alice["token"])
    assert me.status == 400 and me.body["error"]["details"]["field"] == "user_id"
    ghost = await api.post("/api/v1/rooms/direct", {"user_id": "nobody"}, alice["token"])
    assert ghost.status == 404
    missing = await api.post("/api/v1/rooms/direct", {}, alice["token"])
    assert missing.status == 400 and missing.body["error"]["details"]["field"] == "user_id"


async def test_direct_room_refuses_members_roles_and_settings(api: ApiClient) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    room = await api.direct(alice, bob)
    path = f"/api/v1/rooms/{room['id']}"
    assert (
        await api.post(f"{path}/members", {"user_id": carol["user"]["id"]}, alice["token"])
    ).status == 403
    assert (await api.patch(path, {"name": "renamed"}, alice["token"])).status == 403
    assert (await api.delete(path, alice["token"])).status == 403
    assert (await api.delete(f"{path}/members/{bob['user']['id']}", alice["token"])).status == 403


async def test_room_list_is_by_recent_activity_with_unread_and_last_message(api: ApiClient) -> None:
    alice, bob = await api.register(), await api.register()
    first = await api.group(alice, bob, name="first")
    second = await api.group(alice, bob, name="second")
    third = await api.group(alice, bob, name="third")
    await api.send(bob, first["id"], "hello in first")
    listed = await api.get("/api/v1/rooms", alice["token"])
    assert [room["id"] for room in listed.body["rooms"]] == [first["id"], third["id"], second["id"]]
    top = listed.body["rooms"][0]
    assert top["unread_count"] == 1
    assert top["last_message"]["text"] == "hello in first"
    assert listed.body["next_cursor"] is None
    own = (await api.get("/api/v1/rooms", bob["token"])).body["rooms"][0]
    assert own["id"] == first["id"] and own["unread_count"] == 0


async def test_room_list_pages_by_cursor(api: ApiClient) -> None:
    alice = await api.register()
    created = [(await api.group(alice, name=f"r{n}"))["id"] for n in range(5)]
    seen, cursor = [], None
    for _ in range(5):
        query = "/api/v1/rooms?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await api.get(query, alice["token"])
        assert page.status == 200
        seen += [room["id"] for room in page.body["rooms"]]
        cursor = page.body["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(created))
    bad = await api.get("/api/v1/rooms?cursor=!!!", alice["token"])
    assert bad.status == 400 and bad.body["error"]["details"]["field"] == "cursor"
    assert (await api.get("/api/v1/rooms?limit=0", alice["token"])).status == 400


async def test_non_member_sees_no_room_anywhere(api: ApiClient) -> None:
    alice, bob, eve = await api.register(), await api.register(), await api.register()
    room = await api.group(alice, bob)
    message = await api.send(alice, room["id"], "secret")
    base = f"/api/v1/rooms/{room['id']}"
    token = eve["token"]
    attempts = [
        api.get(base, token),
        api.patch(base, {"name": "mine"}, token),
        api.delete(base, token),
        api.get(f"{base}/members", token),
        api.post(f"{base}/members", {"user_id": eve["user"]["id"]}, token),
        api.patch(f"{base}/members/{bob['user']['id']}", {"role": "admin"}, token),
        api.delete(f"{base}/members/{bob['user']['id']}", token),
        api.get(f"{base}/messages", token),
        api.post(f"{base}/messages", {"client_msg_id": "x", "text": "hi"}, token),
        api.get(f"{base}/messages/{message['id']}", token),
        api.patch(f"{base}/messages/{message['id']}", {"text": "x"}, token),
        api.delete(f"{base}/messages/{message['id']}", token),
        api.put(f"{base}/messages/{message['id']}/reactions/{THUMBS}", None, token),
        api.delete(f"{base}/messages/{message['id']}/reactions/{THUMBS}", token),
        api.post(f"{base}/read", {"seq": 1}, token),
        api.get(f"{base}/events?after_seq=0", token),
    ]
    for reply in await asyncio.gather(*attempts):
        assert reply.status == 404, reply.body
        assert reply.error_code == "not_found"
    history = await api.get(f"{base}/messages", alice["token"])
    assert [m["text"] for m in history.body["messages"]] == ["secret"]


async def test_roles_decide_who_may_change_the_room(api: ApiClient) -> None:
    owner, admin, member, newcomer = [await api.register() for _ in range(4)]
    room = await api.group(owner, admin, member)
    base = f"/api/v1/rooms/{room['id']}"
    promoted = await api.patch(
        f"{base}/members/{admin['user']['id']}", {"role": "admin"}, owner["token"]
    )
    assert promoted.status == 200 and promoted.body["role"] == "admin"

    assert (await api.patch(base, {"name": "by member"}, member["token"])).status == 403
    renamed = await api.patch(base, {"name": "by admin", "topic": "t"}, admin["token"])
    assert renamed.status == 200 and renamed.body["name"] == "by admin"

    assert (
        await api.post(f"{base}/members", {"user_id": newcomer["user"]["id"]}, member["token"])
    ).status == 403
    as_admin = await api.post(
        f"{base}/members", {"user_id": newcomer["user"]["id"], "role": "admin"}, admin["token"]
    )
    assert as_admin.status == 403
    added = await api.post(f"{base}/members", {"user_id": newcomer["user"]["id"]}, admin["token"])
    assert added.status == 201 and added.body["role"] == "member"
    again = await api.post(f"{base}/members", {"user_id": newcomer["user"]["id"]}, admin["token"])
    assert again.status == 409

    assert (
        await api.patch(f"{base}/members/{member['user']['id']}", {"role": "admin"}, admin["token"])
    ).status == 403
    bad_role = await api.patch(
        f"{base}/members/{member['user']['id']}", {"role": "king"}, owner["token"]
    )
    assert bad_role.status == 400 and bad_role.body["error"]["details"]["field"] == "role"

    assert (
        await api.delete(f"{base}/members/{admin['user']['id']}", member["token"])
    ).status == 403
    assert (await api.delete(f"{base}/members/{owner['user']['id']}", admin["token"])).status == 403
    assert (
        await api.delete(f"{base}/members/{newcomer['user']['id']}", admin["token"])
    ).status == 204
    assert (await api.delete(base, admin["token"])).status == 403


async def test_last_owner_cannot_leave_or_step_down_while_others_remain(api: ApiClient) -> None:
    owner, member = await api.register(), await api.register()
    room = await api.group(owner, member)
    base = f"/api/v1/rooms/{room['id']}"
    leave = await api.delete(f"{base}/members/{owner['user']['id']}", owner["token"])
    assert leave.status == 409 and leave.error_code == "conflict"
    demote = await api.patch(
        f"{base}/members/{owner['user']['id']}", {"role": "member"}, owner["token"]
    )
    assert demote.status == 409
    await api.patch(f"{base}/members/{member['user']['id']}", {"role": "owner"}, owner["token"])
    assert (await api.delete(f"{base}/members/{owner['user']['id']}", owner["token"])).status == 204
    assert (await api.get(base, owner["token"])).status == 404
    assert (await api.get(base, member["token"])).body["member_count"] == 1


async def test_member_leaves_and_rejoins_nothing_of_the_room(api: ApiClient) -> None:
    owner, member = await api.register(), await api.register()
    room = await api.group(owner, member)
    base = f"/api/v1/rooms/{room['id']}"
    assert (
        await api.delete(f"{base}/members/{member['user']['id']}", member["token"])
    ).status == 204
    assert (await api.get(base, member["token"])).status == 404
    assert (await api.get("/api/v1/rooms", member["token"])).body["rooms"] == []
    assert (await api.get(base, owner["token"])).body["member_count"] == 1


async def test_owner_deletes_the_room_for_everyone(api: ApiClient) -> None:
    owner, member = await api.register(), await api.register()
    room = await api.group(owner, member)
    base = f"/api/v1/rooms/{room['id']}"
    assert (await api.delete(base, member["token"])).status == 403
    assert (await api.delete(base, owner["token"])).status == 204
    for user in (owner, member):
        assert (await api.get(base, user["token"])).status == 404
        assert (await api.get("/api/v1/rooms", user["token"])).body["rooms"] == []


async def test_room_events_record_every_membership_change(api: ApiClient) -> None:
    owner, member, other = await api.register(), await api.register(), await api.register()
    room = await api.group(owner, member)
    base = f"/api/v1/rooms/{room['id']}"
    await api.post(f"{base}/members", {"user_id": other["user"]["id"]}, owner["token"])
    await api.patch(f"{base}/members/{other['user']['id']}", {"role": "admin"}, owner["token"])
    await api.patch(base, {"topic": "new topic"}, owner["token"])
    await api.delete(f"{base}/members/{member['user']['id']}", owner["token"])
    events = (await api.get(f"{base}/events?after_seq=0", owner["token"])).body["events"]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e["type"] for e in events] == [
        "member.joined",
        "member.joined",
        "member.joined",
        "member.role_changed",
        "room.updated",
        "member.left",
    ]
    assert (
        events[3]["data"]["role"] == "admin"
        and events[3]["data"]["user"]["id"] == other["user"]["id"]
    )
    assert events[4]["data"]["topic"] == "new topic" and events[4]["data"]["last_seq"] == 5
    assert events[5]["data"]["user"]["id"] == member["user"]["id"]
    assert all(e["actor_id"] == owner["user"]["id"] for e in events)
    assert events[0]["at"].endswith("Z")


async def test_members_list_shows_each_members_read_marker(api: ApiClient) -> None:
    owner, member = await api.register(), await api.register()
    room = await api.group(owner, member)
    base = f"/api/v1/rooms/{room['id']}"
    message = await api.send(owner, room["id"], "read me")
    read = await api.post(f"{base}/read", {"seq": message["seq"]}, member["token"])
    assert read.status == 200, read.body
    # After a reload, the owner learns from the list alone how far the member has read.
    listed = (await api.get(f"{base}/members", owner["token"])).body["members"]
    markers = {m["user"]["id"]: (m["last_read_seq"], m["muted_until"]) for m in listed}
    assert markers == {
        owner["user"]["id"]: (1, None),  # the owner's marker starts at their join
        member["user"]["id"]: (message["seq"], None),
    }
    assert {"user", "role", "joined_at", "last_read_seq", "muted_until"} == set(listed[0])
