"""Timed mutes: ``PATCH /rooms/{id}/members/{user_id} {muted_until}`` under the rank rules
of bans, ``member.muted`` recorded; a muted member cannot send (REST and WebSocket), edit
or react, but reads, marks read and leaves; the mute ends by itself."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import pytest
from test_bans import add, member_ids, moderated_room, room_events

from clients import ApiClient, User
from cronchat.times import now_ms, rfc3339

pytestmark = pytest.mark.gen_test

THUMBS = quote("👍")
HOUR = 3_600_000


async def mute(api: ApiClient, room_id: str, by: User, user: User, until: Any) -> Any:
    return await api.patch(
        f"/api/v1/rooms/{room_id}/members/{user['user']['id']}", {"muted_until": until}, by["token"]
    )


async def muted_until(api: ApiClient, room_id: str, reader: User, user: User) -> Any:
    reply = await api.get(f"/api/v1/rooms/{room_id}/members", reader["token"])
    return {m["user"]["id"]: m["muted_until"] for m in reply.body["members"]}[user["user"]["id"]]


def is_muted_error(reply: Any, until: str) -> bool:
    error = reply.body["error"]
    return (
        reply.status == 403
        and error["code"] == "forbidden"
        and error["details"] == {"reason": "muted", "until": until}
    )


async def test_an_admin_mutes_a_member_until_a_time(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    until = rfc3339(now_ms() + HOUR)
    reply = await mute(api, room["id"], admin, member, until)
    assert reply.status == 200, reply.body
    assert (reply.body["user"]["id"], reply.body["role"]) == (member["user"]["id"], "member")
    assert reply.body["muted_until"] == until
    assert await muted_until(api, room["id"], member, member) == until
    assert await muted_until(api, room["id"], member, admin) is None
    last = (await room_events(api, room["id"], owner))[-1]
    assert last["type"] == "member.muted" and last["actor_id"] == admin["user"]["id"]
    assert last["data"]["user"]["id"] == member["user"]["id"]
    assert (last["data"]["role"], last["data"]["muted_until"]) == ("member", until)


async def test_a_muted_member_cannot_send_edit_or_react(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    own = await api.send(member, room["id"], "before the mute")
    other = await api.send(owner, room["id"], "from the owner")
    until = rfc3339(now_ms() + HOUR)
    assert (await mute(api, room["id"], owner, member, until)).status == 200
    last_seq = (await room_events(api, room["id"], owner))[-1]["seq"]

    body = {"client_msg_id": "muted-1", "text": "let me speak"}
    sent = await api.post(f"/api/v1/rooms/{room['id']}/messages", body, member["token"])
    assert is_muted_error(sent, until), sent.body
    edited = await api.patch(
        f"/api/v1/rooms/{room['id']}/messages/{own['id']}", {"text": "changed"}, member["token"]
    )
    assert is_muted_error(edited, until), edited.body
    reaction = f"/api/v1/rooms/{room['id']}/messages/{other['id']}/reactions/{THUMBS}"
    assert is_muted_error(await api.put(reaction, token=member["token"]), until)
    assert is_muted_error(await api.delete(reaction, token=member["token"]), until)
    assert (await room_events(api, room["id"], owner))[-1]["seq"] == last_seq
    message = await api.get(f"/api/v1/rooms/{room['id']}/messages/{own['id']}", owner["token"])
    assert message.body["text"] == "before the mute"


async def test_a_muted_member_cannot_send_on_the_socket(api: ApiClient, connect: Any) -> None:
    room, owner, admin, member = await moderated_room(api)
    own = await api.send(member, room["id"], "before the mute")
    other = await api.send(owner, room["id"], "from the owner")
    until = rfc3339(now_ms() + HOUR)
    assert (await mute(api, room["id"], admin, member, until)).status == 200
    socket = await connect(member["token"])
    answer = await socket.request(
        {"type": "message.send", "room_id": room["id"], "client_msg_id": "ws-1", "text": "hi"}
    )
    assert answer["type"] == "error" and answer["code"] == "forbidden", answer
    assert answer["details"] == {"reason": "muted", "until": until}
    messages = await api.get(f"/api/v1/rooms/{room['id']}/messages", owner["token"])
    assert [m["text"] for m in messages.body["messages"]] == ["before the mute", "from the owner"]
    message_id = other["id"]
    for frame in (
        {"type": "message.edit", "room_id": room["id"], "message_id": own["id"], "text": "x"},
        {"type": "reaction.add", "room_id": room["id"], "message_id": message_id, "emoji": "👍"},
    ):
        answer = await socket.request(frame)
        assert answer["type"] == "error" and answer["details"]["reason"] == "muted", answer
    assert (await socket.request({"type": "read", "room_id": room["id"], "seq": 1}))[
        "type"
    ] == "ack"


async def test_a_muted_member_still_reads_marks_read_and_leaves(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    sent = await api.send(owner, room["id"], "hello")
    assert (await mute(api, room["id"], owner, member, rfc3339(now_ms() + HOUR))).status == 200
    history = await api.get(f"/api/v1/rooms/{room['id']}/messages", member["token"])
    assert [m["id"] for m in history.body["messages"]] == [sent["id"]]
    read = await api.post(f"/api/v1/rooms/{room['id']}/read", {"seq": sent["seq"]}, member["token"])
    assert read.status == 200 and read.body["last_read_seq"] == sent["seq"]
    path = f"/api/v1/rooms/{room['id']}/members/{member['user']['id']}"
    assert (await api.delete(path, member["token"])).status == 204
    assert member["user"]["id"] not in await member_ids(api, room["id"], owner)


async def test_null_unmutes(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    assert (await mute(api, room["id"], admin, member, rfc3339(now_ms() + HOUR))).status == 200
    reply = await mute(api, room["id"], admin, member, None)
    assert reply.status == 200 and reply.body["muted_until"] is None
    last = (await room_events(api, room["id"], owner))[-1]
    assert last["type"] == "member.muted" and last["data"]["muted_until"] is None
    await api.send(member, room["id"], "free again")
    # Unmuting a member who is not muted changes nothing.
    last_seq = (await room_events(api, room["id"], owner))[-1]["seq"]
    assert (await mute(api, room["id"], admin, member, None)).status == 200
    assert (await room_events(api, room["id"], owner))[-1]["seq"] == last_seq


async def test_a_mute_ends_by_itself(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    assert (await mute(api, room["id"], owner, member, rfc3339(now_ms() + 1500))).status == 200
    body = {"client_msg_id": "early", "text": "too early"}
    early = await api.post(f"/api/v1/rooms/{room['id']}/messages", body, member["token"])
    assert early.status == 403
    await asyncio.sleep(1.6)
    assert await muted_until(api, room["id"], owner, member) is None
    await api.send(member, room["id"], "the mute is over")


async def test_an_admin_cannot_mute_the_owner_or_another_admin(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    other_admin = await api.register()
    await add(api, room["id"], owner, other_admin)
    path = f"/api/v1/rooms/{room['id']}/members/{other_admin['user']['id']}"
    assert (await api.patch(path, {"role": "admin"}, owner["token"])).status == 200
    last_seq = (await room_events(api, room["id"], owner))[-1]["seq"]
    until = rfc3339(now_ms() + HOUR)
    assert (await mute(api, room["id"], admin, owner, until)).status == 403
    assert (await mute(api, room["id"], admin, other_admin, until)).status == 403
    assert (await room_events(api, room["id"], owner))[-1]["seq"] == last_seq
    assert await muted_until(api, room["id"], owner, other_admin) is None
    # The owner may mute an admin, but nobody mutes the owner.
    assert (await mute(api, room["id"], owner, other_admin, until)).status == 200
    await api.send(owner, room["id"], "the owner speaks")


async def test_a_member_may_mute_nobody(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    other = await api.register()
    await add(api, room["id"], owner, other)
    until = rfc3339(now_ms() + HOUR)
    for target in (other, admin, owner):
        assert (await mute(api, room["id"], member, target, until)).status == 403
    assert await muted_until(api, room["id"], owner, other) is None


async def test_muting_yourself_or_in_a_direct_room_answers_400(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    until = rfc3339(now_ms() + HOUR)
    assert (await mute(api, room["id"], admin, admin, until)).status == 400
    direct = await api.direct(owner, member)
    assert (await mute(api, direct["id"], owner, member, until)).status == 400
    await api.send(member, direct["id"], "still here")


async def test_muting_in_other_peoples_rooms_answers_404(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    stranger = await api.register()
    until = rfc3339(now_ms() + HOUR)
    assert (await mute(api, room["id"], stranger, member, until)).status == 404
    assert (await mute(api, room["id"], owner, stranger, until)).status == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"muted_until": "soon"}, "muted_until"),
        ({"muted_until": "2020-01-01T00:00:00.000Z"}, "muted_until"),
        ({"muted_until": 1893456000}, "muted_until"),
        ({"muted_until": True}, "muted_until"),
        ({}, "role"),
        ({"role": "king"}, "role"),
    ],
)
async def test_bad_mute_bodies_answer_400_and_change_nothing(
    api: ApiClient, body: dict[str, Any], field: str
) -> None:
    room, owner, admin, member = await moderated_room(api)
    last_seq = (await room_events(api, room["id"], owner))[-1]["seq"]
    path = f"/api/v1/rooms/{room['id']}/members/{member['user']['id']}"
    reply = await api.patch(path, body, owner["token"])
    assert reply.status == 400, reply.body
    assert reply.body["error"]["details"]["field"] == field
    assert (await room_events(api, room["id"], owner))[-1]["seq"] == last_seq
    assert await muted_until(api, room["id"], owner, member) is None


async def test_role_and_mute_change_together(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    until = rfc3339(now_ms() + HOUR)
    path = f"/api/v1/rooms/{room['id']}/members/{member['user']['id']}"
    reply = await api.patch(path, {"role": "admin", "muted_until": until}, owner["token"])
    assert reply.status == 200, reply.body
    assert (reply.body["role"], reply.body["muted_until"]) == ("admin", until)
    types = [e["type"] for e in (await room_events(api, room["id"], owner))[-2:]]
    assert types == ["member.role_changed", "member.muted"]
    # A refused half refuses the whole: an admin may not change roles.
    last_seq = (await room_events(api, room["id"], owner))[-1]["seq"]
    other = await api.register()
    await add(api, room["id"], owner, other)
    last_seq += 1
    path = f"/api/v1/rooms/{room['id']}/members/{other['user']['id']}"
    refused = await api.patch(path, {"role": "admin", "muted_until": until}, admin["token"])
    assert refused.status == 403
    assert (await room_events(api, room["id"], owner))[-1]["seq"] == last_seq
    assert await muted_until(api, room["id"], owner, other) is None
