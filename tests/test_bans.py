"""Bans: the rank rules, the ban's one transaction (membership ended, ``member.banned``
recorded), the banned user's sockets cut from the room at once (on every process), re-adding
refused while the ban holds, unbanning and expiry."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from test_scale import Server, free_port, require_redis
from tornado.httpclient import AsyncHTTPClient

from clients import ApiClient, User, WsClient, event_of
from conftest import cronchat_env, ensure_migrated
from cronchat.times import now_ms, rfc3339

pytestmark = pytest.mark.gen_test

BAN_FIELDS = {"user", "banned_by", "reason", "created_at", "expires_at"}


async def moderated_room(api: ApiClient) -> tuple[dict[str, Any], User, User, User]:
    """A group of an owner, an admin and a member: ``(room, owner, admin, member)``."""
    owner, admin, member = await api.register(), await api.register(), await api.register()
    room = await api.group(owner, admin, member)
    path = f"/api/v1/rooms/{room['id']}/members/{admin['user']['id']}"
    reply = await api.patch(path, {"role": "admin"}, owner["token"])
    assert reply.status == 200, reply.body
    return room, owner, admin, member


async def ban(api: ApiClient, room_id: str, by: User, user: User, **extra: Any) -> Any:
    return await api.post(
        f"/api/v1/rooms/{room_id}/bans", {"user_id": user["user"]["id"], **extra}, by["token"]
    )


async def member_ids(api: ApiClient, room_id: str, reader: User) -> set[str]:
    reply = await api.get(f"/api/v1/rooms/{room_id}/members", reader["token"])
    assert reply.status == 200, reply.body
    return {m["user"]["id"] for m in reply.body["members"]}


async def room_events(api: ApiClient, room_id: str, reader: User) -> list[dict[str, Any]]:
    reply = await api.get(f"/api/v1/rooms/{room_id}/events?after_seq=0&limit=200", reader["token"])
    assert reply.status == 200, reply.body
    return reply.body["events"]


async def add(api: ApiClient, room_id: str, by: User, user: User) -> Any:
    return await api.post(
        f"/api/v1/rooms/{room_id}/members", {"user_id": user["user"]["id"]}, by["token"]
    )


async def unchanged(
    api: ApiClient, room_id: str, owner: User, members: set[str], last_seq: int
) -> None:
    """Nothing happened in the room: the same members, no new event, no ban."""
    assert await member_ids(api, room_id, owner) == members
    assert (await room_events(api, room_id, owner))[-1]["seq"] == last_seq
    bans = await api.get(f"/api/v1/rooms/{room_id}/bans", owner["token"])
    assert bans.body["bans"] == []


async def test_a_ban_ends_the_membership_and_is_a_room_event(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    expires = rfc3339(now_ms() + 3_600_000)
    reply = await ban(api, room["id"], admin, member, reason="  spam  ", expires_at=expires)
    assert reply.status == 201, reply.body
    assert set(reply.body) == BAN_FIELDS
    assert reply.body["user"]["id"] == member["user"]["id"]
    assert reply.body["banned_by"] == admin["user"]["id"]
    assert (reply.body["reason"], reply.body["expires_at"]) == ("spam", expires)

    assert member["user"]["id"] not in await member_ids(api, room["id"], owner)
    assert (await api.get(f"/api/v1/rooms/{room['id']}", member["token"])).status == 404
    assert (await api.get(f"/api/v1/rooms/{room['id']}", owner["token"])).body["member_count"] == 2
    last = (await room_events(api, room["id"], owner))[-1]
    assert last["type"] == "member.banned" and last["actor_id"] == admin["user"]["id"]
    assert last["data"]["user"]["id"] == member["user"]["id"]
    assert (last["data"]["reason"], last["data"]["expires_at"]) == ("spam", expires)
    listed = await api.get(f"/api/v1/rooms/{room['id']}/bans", admin["token"])
    assert [b["user"]["id"] for b in listed.body["bans"]] == [member["user"]["id"]]
    assert listed.body["bans"][0] == reply.body


async def test_a_user_who_is_not_a_member_can_be_banned(api: ApiClient) -> None:
    room, owner, _, _ = await moderated_room(api)
    stranger = await api.register()
    reply = await ban(api, room["id"], owner, stranger)
    assert reply.status == 201, reply.body
    assert (reply.body["reason"], reply.body["expires_at"]) == ("", None)
    assert (await add(api, room["id"], owner, stranger)).status == 409


async def test_an_admin_cannot_ban_the_owner(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    members = await member_ids(api, room["id"], owner)
    last_seq = (await room_events(api, room["id"], owner))[-1]["seq"]
    reply = await ban(api, room["id"], admin, owner)
    assert reply.status == 403, reply.body
    await unchanged(api, room["id"], owner, members, last_seq)


async def test_banning_an_admin_needs_the_owner(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    other_admin = await api.register()
    await add(api, room["id"], owner, other_admin)
    promoted = await api.patch(
        f"/api/v1/rooms/{room['id']}/members/{other_admin['user']['id']}",
        {"role": "admin"},
        owner["token"],
    )
    assert promoted.status == 200
    members = await member_ids(api, room["id"], owner)
    last_seq = (await room_events(api, room["id"], owner))[-1]["seq"]
    assert (await ban(api, room["id"], admin, other_admin)).status == 403
    await unchanged(api, room["id"], owner, members, last_seq)
    assert (await ban(api, room["id"], owner, other_admin)).status == 201


async def test_a_member_may_ban_nobody(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    other = await api.register()
    await add(api, room["id"], owner, other)
    members = await member_ids(api, room["id"], owner)
    last_seq = (await room_events(api, room["id"], owner))[-1]["seq"]
    for target in (other, admin, owner, await api.register()):
        reply = await ban(api, room["id"], member, target)
        assert reply.status == 403, reply.body
    assert (await api.get(f"/api/v1/rooms/{room['id']}/bans", member["token"])).status == 403
    await unchanged(api, room["id"], owner, members, last_seq)


async def test_banning_twice_answers_409(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    assert (await ban(api, room["id"], owner, member)).status == 201
    last_seq = (await room_events(api, room["id"], owner))[-1]["seq"]
    again = await ban(api, room["id"], admin, member, reason="again")
    assert again.status == 409, again.body
    assert (await room_events(api, room["id"], owner))[-1]["seq"] == last_seq
    bans = (await api.get(f"/api/v1/rooms/{room['id']}/bans", owner["token"])).body["bans"]
    assert [b["reason"] for b in bans] == [""]


async def test_a_direct_room_and_yourself_answer_400(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    assert (await ban(api, room["id"], owner, owner)).status == 400
    # Checked before the rank: a member banning themselves is told the same.
    assert (await ban(api, room["id"], member, member)).status == 400
    direct = await api.direct(owner, member)
    reply = await ban(api, direct["id"], owner, member)
    assert reply.status == 400, reply.body
    assert member["user"]["id"] in await member_ids(api, direct["id"], owner)


async def test_other_peoples_rooms_answer_404(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    stranger = await api.register()
    assert (await ban(api, room["id"], stranger, member)).status == 404
    assert (await api.get(f"/api/v1/rooms/{room['id']}/bans", stranger["token"])).status == 404
    path = f"/api/v1/rooms/{room['id']}/bans/{member['user']['id']}"
    assert (await api.delete(path, stranger["token"])).status == 404
    assert (await ban(api, "no-such-room", owner, member)).status == 404
    assert member["user"]["id"] in await member_ids(api, room["id"], owner)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "user_id"),
        ({"user_id": 5}, "user_id"),
        ({"user_id": None}, "user_id"),
        ({"reason": "x" * 501}, "reason"),
        ({"reason": 3}, "reason"),
        ({"reason": "bad\u202eone"}, "reason"),
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"expires_at": "2020-01-01T00:00:00.000Z"}, "expires_at"),
        ({"expires_at": 1893456000}, "expires_at"),
    ],
)
async def test_bad_ban_bodies_answer_400_and_change_nothing(
    api: ApiClient, body: dict[str, Any], field: str
) -> None:
    room, owner, admin, member = await moderated_room(api)
    members = await member_ids(api, room["id"], owner)
    last_seq = (await room_events(api, room["id"], owner))[-1]["seq"]
    full = body if field == "user_id" else {"user_id": member["user"]["id"], **body}
    reply = await api.post(f"/api/v1/rooms/{room['id']}/bans", full, owner["token"])
    assert reply.status == 400, reply.body
    assert reply.body["error"]["details"]["field"] == field
    await unchanged(api, room["id"], owner, members, last_seq)


async def test_a_reason_of_500_characters_is_kept(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    reply = await ban(api, room["id"], owner, member, reason="r" * 500)
    assert reply.status == 201 and reply.body["reason"] == "r" * 500


async def test_banning_an_unknown_user_answers_404(api: ApiClient) -> None:
    room, owner, _, _ = await moderated_room(api)
    path = f"/api/v1/rooms/{room['id']}/bans"
    reply = await api.post(path, {"user_id": "nobody"}, owner["token"])
    assert reply.status == 404 and reply.body["error"]["details"]["field"] == "user_id"


async def test_a_banned_user_cannot_be_added_until_unbanned(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    assert (await ban(api, room["id"], admin, member)).status == 201
    refused = await add(api, room["id"], owner, member)
    assert refused.status == 409 and refused.body["error"]["details"]["field"] == "user_id"
    assert member["user"]["id"] not in await member_ids(api, room["id"], owner)

    path = f"/api/v1/rooms/{room['id']}/bans/{member['user']['id']}"
    assert (await api.delete(path, admin["token"])).status == 204
    last = (await room_events(api, room["id"], owner))[-1]
    assert last["type"] == "member.unbanned" and last["data"]["user"]["id"] == member["user"]["id"]
    assert (await api.get(f"/api/v1/rooms/{room['id']}/bans", owner["token"])).body["bans"] == []
    # Unbanning does not bring the user back; adding does.
    assert member["user"]["id"] not in await member_ids(api, room["id"], owner)
    assert (await add(api, room["id"], owner, member)).status == 201


async def test_unbanning_needs_a_ban_and_a_moderator(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    other = await api.register()
    path = f"/api/v1/rooms/{room['id']}/bans/{other['user']['id']}"
    assert (await api.delete(path, owner["token"])).status == 404
    assert (await ban(api, room["id"], owner, other)).status == 201
    assert (await api.delete(path, member["token"])).status == 403
    listed = await api.get(f"/api/v1/rooms/{room['id']}/bans", owner["token"])
    assert len(listed.body["bans"]) == 1


async def test_an_expired_ban_no_longer_holds(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    reply = await ban(api, room["id"], owner, member, expires_at=rfc3339(now_ms() + 1500))
    assert reply.status == 201, reply.body
    assert (await add(api, room["id"], owner, member)).status == 409
    await asyncio.sleep(1.6)
    assert (await api.get(f"/api/v1/rooms/{room['id']}/bans", owner["token"])).body["bans"] == []
    assert (await add(api, room["id"], owner, member)).status == 201
    # A new ban takes the place of the one that expired.
    assert (await ban(api, room["id"], owner, member)).status == 201


async def test_the_banned_users_sockets_stop_getting_the_room(api: ApiClient, connect: Any) -> None:
    room, owner, admin, member = await moderated_room(api)
    direct = await api.direct(owner, member)
    socket = await connect(member["token"])
    assert (await ban(api, room["id"], admin, member, reason="spam")).status == 201
    banned = (await socket.event_frame(room["id"]))["event"]
    assert banned["type"] == "member.banned" and banned["data"]["reason"] == "spam"

    await api.send(owner, room["id"], "after the ban")
    owner_socket = await connect(owner["token"])
    assert (await owner_socket.request({"type": "typing", "room_id": room["id"]}))["type"] == "ack"
    marker = await api.send(owner, direct["id"], "marker")
    before = await socket.frames_before(event_of(direct["id"], marker["seq"]), "the marker")
    assert [f for f in before if f.get("room_id") == room["id"] or event_of(room["id"])(f)] == []
    assert (await api.get(f"/api/v1/rooms/{room['id']}/messages", member["token"])).status == 404


async def test_a_banned_user_cannot_send_on_the_socket(api: ApiClient, connect: Any) -> None:
    room, owner, admin, member = await moderated_room(api)
    socket = await connect(member["token"])
    assert (await ban(api, room["id"], owner, member)).status == 201
    answer = await socket.request(
        {"type": "message.send", "room_id": room["id"], "client_msg_id": "b1", "text": "hi"}
    )
    assert answer["type"] == "error" and answer["code"] == "not_found"


# -- several processes, through Redis ---------------------------------------------------------


@pytest.mark.gen_test(timeout=120)
async def test_a_ban_on_one_process_cuts_the_socket_on_another(
    mysql_url: str, tmp_path: Path
) -> None:
    ensure_migrated(mysql_url, tmp_path)
    env = cronchat_env(mysql_url, tmp_path / "data", CRONCHAT_REDIS_URL=require_redis())
    servers: list[Server] = []
    client = AsyncHTTPClient(force_instance=True)
    socket: WsClient | None = None
    try:
        servers.append(await Server.start(env, free_port()))
        servers.append(await Server.start(env, free_port()))
        first, second = (ApiClient(client, server.url) for server in servers)
        room, owner, admin, member = await moderated_room(first)
        direct = await first.direct(owner, member)
        socket = await WsClient.connect(servers[1].url, member["token"])
        await first.send(owner, room["id"], "before the ban")
        assert (await socket.event_frame(room["id"]))["event"]["type"] == "message.created"

        assert (await ban(first, room["id"], admin, member)).status == 201
        banned = (await socket.event_frame(room["id"]))["event"]
        assert banned["type"] == "member.banned"

        await first.send(owner, room["id"], "after the ban")
        marker = await first.send(owner, direct["id"], "marker")
        before = await socket.frames_before(event_of(direct["id"], marker["seq"]), "the marker")
        assert [f for f in before if event_of(room["id"])(f)] == []
        reply = await second.get(f"/api/v1/rooms/{room['id']}/messages", member["token"])
        assert reply.status == 404
    finally:
        if socket is not None:
            socket.close()
        client.close()
        for server in servers:
            server.stop()
