"""The audit log: every moderation act of a room recorded in its own transaction (and no act
refused), read by the room's admins and owners, by server admins with filters, and by the
operator with ``cronchat audit list``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_bans import add, ban, moderated_room
from test_cli import cronchat
from test_mutes import mute

from clients import ApiClient, User
from conftest import cronchat_env
from cronchat.runtime import Runtime
from cronchat.times import now_ms, rfc3339

pytestmark = pytest.mark.gen_test

ENTRY_FIELDS = {
    "id",
    "at",
    "actor_id",
    "action",
    "room_id",
    "target_user_id",
    "message_id",
    "data",
}
HOUR = 3_600_000


async def room_audit(api: ApiClient, room_id: str, reader: User, query: str = "") -> Any:
    return await api.get(f"/api/v1/rooms/{room_id}/audit{query}", reader["token"])


async def actions(api: ApiClient, room_id: str, reader: User) -> list[str]:
    reply = await room_audit(api, room_id, reader, "?limit=100")
    assert reply.status == 200, reply.body
    return [entry["action"] for entry in reply.body["entries"]]


async def server_admin(api: ApiClient, runtime: Runtime) -> User:
    """A user promoted to server admin, logged in afresh after the promotion."""
    admin = await api.register()
    await runtime.services.accounts.promote(admin["user"]["username"])
    login = await api.post(
        "/api/v1/auth/login",
        {"username": admin["user"]["username"], "password": admin["password"]},
    )
    assert login.status == 200, login.body
    return {**admin, "token": login.body["access_token"]}


async def test_each_moderation_act_of_a_room_is_recorded(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    room_id = room["id"]
    other, leaver = await api.register(), await api.register()
    await add(api, room_id, owner, other)
    await add(api, room_id, owner, leaver)
    own = await api.send(member, room_id, "mine")
    theirs = await api.send(other, room_id, "theirs")
    until = rfc3339(now_ms() + HOUR)
    assert (await mute(api, room_id, admin, other, until)).status == 200
    path = f"/api/v1/rooms/{room_id}/messages"
    assert (await api.delete(f"{path}/{own['id']}", member["token"])).status == 204
    assert (await api.delete(f"{path}/{theirs['id']}", admin["token"])).status == 204
    assert (await ban(api, room_id, admin, member, reason="spam")).status == 201
    bans = f"/api/v1/rooms/{room_id}/bans/{member['user']['id']}"
    assert (await api.delete(bans, owner["token"])).status == 204
    members = f"/api/v1/rooms/{room_id}/members"
    assert (await api.delete(f"{members}/{other['user']['id']}", admin["token"])).status == 204
    assert (await api.delete(f"{members}/{leaver['user']['id']}", leaver["token"])).status == 204

    reply = await room_audit(api, room_id, owner)
    assert reply.status == 200, reply.body
    entries = reply.body["entries"]
    assert all(set(entry) == ENTRY_FIELDS for entry in entries)
    assert [e["action"] for e in entries] == [
        "member.removed",
        "member.unbanned",
        "member.banned",
        "message.deleted",
        "member.muted",
        "member.role_changed",
    ]
    removed, unbanned, banned, deleted, muted, role_changed = entries
    assert (removed["actor_id"], removed["target_user_id"]) == (
        admin["user"]["id"],
        other["user"]["id"],
    )
    assert (unbanned["actor_id"], unbanned["target_user_id"]) == (
        owner["user"]["id"],
        member["user"]["id"],
    )
    assert banned["data"] == {"reason": "spam", "expires_at": None, "was_member": True}
    assert (deleted["actor_id"], deleted["target_user_id"], deleted["message_id"]) == (
        admin["user"]["id"],
        other["user"]["id"],
        theirs["id"],
    )
    assert muted["data"] == {"muted_until": until}
    assert role_changed["data"] == {"from": "member", "to": "admin"}
    assert all(entry["room_id"] == room_id for entry in entries)
    assert reply.body["next_cursor"] is None


async def test_refused_acts_are_not_recorded(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    until = rfc3339(now_ms() + HOUR)
    assert (await ban(api, room["id"], admin, owner)).status == 403
    assert (await ban(api, room["id"], member, admin)).status == 403
    assert (await mute(api, room["id"], admin, owner, until)).status == 403
    assert (await mute(api, room["id"], member, admin, until)).status == 403
    assert (await mute(api, room["id"], owner, member, "2020-01-01T00:00:00Z")).status == 400
    sent = await api.send(owner, room["id"], "not yours")
    path = f"/api/v1/rooms/{room['id']}/messages/{sent['id']}"
    assert (await api.delete(path, member["token"])).status == 403
    assert (await ban(api, room["id"], admin, member)).status == 201
    assert (await ban(api, room["id"], admin, member)).status == 409
    assert await actions(api, room["id"], owner) == ["member.banned", "member.role_changed"]


async def test_a_rooms_audit_is_for_its_admins_and_owners(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    stranger = await api.register()
    assert (await room_audit(api, room["id"], admin)).status == 200
    refused = await room_audit(api, room["id"], member)
    assert refused.status == 403, refused.body
    assert (await room_audit(api, room["id"], stranger)).status == 404
    assert (await room_audit(api, "no-such-room", owner)).status == 404


async def test_a_rooms_audit_pages_newest_first(api: ApiClient) -> None:
    room, owner, admin, member = await moderated_room(api)
    for minutes in (1, 2, 3, 4):
        until = rfc3339(now_ms() + minutes * 60_000)
        assert (await mute(api, room["id"], owner, member, until)).status == 200
    seen: list[dict[str, Any]] = []
    query = "?limit=2"
    while True:
        reply = await room_audit(api, room["id"], owner, query)
        assert reply.status == 200, reply.body
        assert len(reply.body["entries"]) <= 2
        seen.extend(reply.body["entries"])
        if reply.body["next_cursor"] is None:
            break
        query = f"?limit=2&cursor={reply.body['next_cursor']}"
    assert len(seen) == 5 and len({entry["id"] for entry in seen}) == 5
    assert [entry["at"] for entry in seen] == sorted((entry["at"] for entry in seen), reverse=True)
    assert seen[-1]["action"] == "member.role_changed"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=x", "limit"),
        ("?cursor=%%", "cursor"),
    ],
)
async def test_bad_audit_queries_answer_400(api: ApiClient, query: str, field: str) -> None:
    room, owner, _, _ = await moderated_room(api)
    reply = await room_audit(api, room["id"], owner, query)
    assert reply.status == 400, reply.body
    assert reply.body["error"]["details"]["field"] == field


async def test_server_admins_read_every_room_with_filters(api: ApiClient, runtime: Runtime) -> None:
    operator = await server_admin(api, runtime)
    room, owner, admin, member = await moderated_room(api)
    assert (await ban(api, room["id"], admin, member)).status == 201
    assert (await api.delete(f"/api/v1/rooms/{room['id']}", owner["token"])).status == 204

    everything = await api.get(f"/api/v1/admin/audit?room_id={room['id']}", operator["token"])
    assert everything.status == 200, everything.body
    assert [e["action"] for e in everything.body["entries"]] == [
        "room.deleted",
        "member.banned",
        "member.role_changed",
    ]
    assert everything.body["entries"][0]["actor_id"] == owner["user"]["id"]
    # The room is gone for its owner, and so is its audit; the server's log keeps it.
    assert (await room_audit(api, room["id"], owner)).status == 404

    by_admin = await api.get(
        f"/api/v1/admin/audit?actor_id={admin['user']['id']}", operator["token"]
    )
    assert [e["action"] for e in by_admin.body["entries"]] == ["member.banned"]
    target = f"target_user_id={member['user']['id']}&action=member.banned"
    of_member = await api.get(f"/api/v1/admin/audit?{target}", operator["token"])
    assert [e["room_id"] for e in of_member.body["entries"]] == [room["id"]]
    none = await api.get(
        f"/api/v1/admin/audit?room_id={room['id']}&action=member.muted", operator["token"]
    )
    assert none.body == {"entries": [], "next_cursor": None}


async def test_the_servers_audit_is_for_server_admins_only(
    api: ApiClient, runtime: Runtime
) -> None:
    room, owner, _, _ = await moderated_room(api)
    for query in ("", f"?room_id={room['id']}", "?action=bogus"):
        reply = await api.get(f"/api/v1/admin/audit{query}", owner["token"])
        assert reply.status == 403, reply.body
    operator = await server_admin(api, runtime)
    unknown = await api.get("/api/v1/admin/audit?action=bogus", operator["token"])
    assert unknown.status == 400 and unknown.body["error"]["details"]["field"] == "action"
    assert (await api.get("/api/v1/admin/audit?limit=500", operator["token"])).status == 400


# -- the operator's view: cronchat audit list ---------------------------------------------------


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return cronchat_env(database_url, tmp_path / "cli-data")


@pytest.mark.gen_test(timeout=60)
async def test_cli_lists_the_audit_log_with_filters(api: ApiClient, env: dict[str, str]) -> None:
    room, owner, admin, member = await moderated_room(api)
    assert (await ban(api, room["id"], admin, member, reason="spam")).status == 201

    code, out, err = await cronchat(env, "audit", "list", "--room", room["id"], "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [e["action"] for e in listed] == ["member.banned", "member.role_changed"]
    assert listed[0]["data"]["reason"] == "spam"

    by_admin = ["--actor", admin["user"]["username"], "--json"]
    code, out, err = await cronchat(env, "audit", "list", "--room", room["id"], *by_admin)
    assert code == 0, err
    assert [e["actor_id"] for e in json.loads(out)] == [admin["user"]["id"]]

    code, out, err = await cronchat(
        env, "audit", "list", "--room", room["id"], "--action", "member.role_changed"
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1 and "member.role_changed" in lines[0]
    assert f"actor={owner['user']['id']}" in lines[0]


@pytest.mark.gen_test(timeout=60)
async def test_cli_acts_are_recorded_without_an_actor(api: ApiClient, env: dict[str, str]) -> None:
    room, owner, admin, member = await moderated_room(api)
    code, _, err = await cronchat(
        env, "room", "remove-member", room["id"], member["user"]["username"]
    )
    assert code == 0, err
    code, out, err = await cronchat(env, "audit", "list", "--room", room["id"], "--json")
    assert code == 0, err
    removed = json.loads(out)[0]
    assert (removed["action"], removed["actor_id"]) == ("member.removed", None)
    assert removed["data"] == {"role": "member", "via": "cli"}
    assert removed["target_user_id"] == member["user"]["id"]

    code, _, err = await cronchat(env, "room", "delete", room["id"])
    assert code == 0, err
    code, out, err = await cronchat(env, "audit", "list", "--room", room["id"], "--json")
    assert code == 0, err
    deleted = json.loads(out)[0]
    assert (deleted["action"], deleted["actor_id"]) == ("room.deleted", None)
    assert deleted["data"]["via"] == "cli"


@pytest.mark.gen_test(timeout=60)
async def test_cli_audit_list_fails_in_one_line(env: dict[str, str]) -> None:
    code, out, err = await cronchat(env, "audit", "list", "--actor", "nobody-at-all")
    assert code == 1 and out == ""
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1
    code, _, err = await cronchat(env, "audit", "list", "--action", "bogus")
    assert code == 2 and "bogus" in err
