"""Account deletion (DELETE /users/me, `cronchat user delete`): everything API.md lists, in
one transaction; a wrong password or a bad body changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_cli import cronchat
from test_media import image_bytes, send_image, uploaded
from test_scale import Server, redis_url, server_env, two_servers
from tornado.httpclient import AsyncHTTPClient

from clients import ApiClient, User, WsClient, event_of, of_type
from conftest import cronchat_env
from cronchat.runtime import Runtime
from storage import MissingObject

# The fixtures of test_scale that these tests use.
__all__ = ["redis_url", "server_env", "two_servers"]

pytestmark = pytest.mark.gen_test

ME = "/api/v1/users/me"


async def delete_account(api: ApiClient, user: User, **body: Any) -> Any:
    return await api.call("DELETE", ME, {"password": user["password"], **body}, user["token"])


async def scalar(runtime: Runtime, sql: str, *params: Any) -> Any:
    return await runtime.db.read(lambda tx: tx.scalar(sql, params))


async def execute(runtime: Runtime, sql: str, *params: Any) -> None:
    await runtime.db.run(lambda tx: tx.execute(sql, params))


async def members_of(api: ApiClient, user: User, room_id: str) -> dict[str, str]:
    reply = await api.get(f"/api/v1/rooms/{room_id}/members", user["token"])
    assert reply.status == 200, reply.body
    return {member["user"]["id"]: member["role"] for member in reply.body["members"]}


async def add(api: ApiClient, owner: User, room_id: str, user: User, role: str) -> None:
    reply = await api.post(
        f"/api/v1/rooms/{room_id}/members",
        {"user_id": user["user"]["id"], "role": role},
        owner["token"],
    )
    assert reply.status == 201, reply.body


# -- the answers ------------------------------------------------------------------------------


async def test_a_wrong_password_is_401_and_changes_nothing(
    api: ApiClient, runtime: Runtime, connect: Any
) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    ws = await connect(alice["token"])
    reply = await api.call("DELETE", ME, {"password": "not the password"}, alice["token"])
    assert reply.status == 401 and reply.error_code == "invalid_credentials"
    assert (await ws.request({"type": "ping"}))["type"] == "pong"
    me = await api.get(ME, alice["token"])
    assert me.status == 200 and me.body["display_name"] == alice["user"]["display_name"]
    assert await members_of(api, bob, room["id"]) == {
        alice["user"]["id"]: "owner",
        bob["user"]["id"]: "member",
    }
    assert (
        await scalar(
            runtime, "SELECT COUNT(*) FROM audit_log WHERE target_user_id = %s", alice["user"]["id"]
        )
        == 0
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "password"),
        ({"password": 12345678}, "password"),
        ({"password": None}, "password"),
        ({"password": "correct horse", "erase_messages": "yes"}, "erase_messages"),
    ],
)
async def test_a_bad_body_is_400_and_changes_nothing(
    api: ApiClient, body: dict[str, Any], field: str
) -> None:
    alice = await api.register()
    reply = await api.call("DELETE", ME, body, alice["token"])
    assert reply.status == 400 and reply.body["error"]["details"]["field"] == field
    assert (await api.get(ME, alice["token"])).body.get("deleted") is None


async def test_deleting_needs_a_token(api: ApiClient) -> None:
    assert (await api.call("DELETE", ME, {"password": "correct horse"})).status == 401


async def test_deleting_closes_sockets_ends_sessions_and_logins_fail(
    api: ApiClient, connect: Any
) -> None:
    alice = await api.register()
    ws = await connect(alice["token"])
    assert (await delete_account(api, alice)).status == 204
    assert await ws.closed() == 4003
    assert (await api.get(ME, alice["token"])).status == 401
    refreshed = await api.post("/api/v1/auth/refresh", {"refresh_token": alice["refresh_token"]})
    assert refreshed.status == 401
    login = await api.post(
        "/api/v1/auth/login", {"username": alice["user"]["username"], "password": alice["password"]}
    )
    assert login.status == 401 and login.error_code == "invalid_credentials"
    assert login.body["error"]["message"] == "wrong username or password"


async def test_the_username_stays_taken(api: ApiClient) -> None:
    alice = await api.register()
    assert (await delete_account(api, alice)).status == 204
    again = await api.post(
        "/api/v1/auth/register",
        {"username": alice["user"]["username"].upper(), "password": "another password"},
    )
    assert again.status == 409 and again.error_code == "conflict"


async def test_the_profile_answers_as_deleted_user_without_avatar(api: ApiClient) -> None:
    alice, bob = await api.register(), await api.register()
    avatar = await api.put(
        "/api/v1/users/me/avatar",
        token=alice["token"],
        body=image_bytes("PNG"),
        headers={"Content-Type": "image/png"},
    )
    assert avatar.status == 200 and avatar.body["avatar_url"]
    await api.patch(ME, {"bio": "my secrets"}, alice["token"])
    assert (await delete_account(api, alice)).status == 204
    profile = (await api.get(f"/api/v1/users/{alice['user']['id']}", bob["token"])).body
    assert profile["display_name"] == "Deleted user" and profile["deleted"] is True
    assert profile["avatar_url"] is None and profile["bio"] == ""
    assert profile["username"] == alice["user"]["username"]
    found = await api.get(f"/api/v1/users?q={alice['user']['username']}", bob["token"])
    assert found.body["users"] == []


# -- rooms --------------------------------------------------------------------------------


async def test_the_user_leaves_every_room_with_member_left(api: ApiClient, connect: Any) -> None:
    alice, bob = await api.register(), await api.register()
    group = await api.group(bob, alice)
    direct = await api.direct(alice, bob)
    ws = await connect(bob["token"])
    assert (await delete_account(api, alice)).status == 204
    for room in (group, direct):
        frame = await ws.wait_for(
            lambda f, room_id=room["id"]: (
                event_of(room_id)(f) and f["event"]["type"] == "member.left"
            ),
            f"member.left in {room['kind']}",
        )
        user = frame["event"]["data"]["user"]
        assert user["id"] == alice["user"]["id"] and user["display_name"] == "Deleted user"
        assert alice["user"]["id"] not in await members_of(api, bob, room["id"])


async def test_the_last_owner_hands_the_room_to_the_earliest_joined_admin(
    api: ApiClient, connect: Any
) -> None:
    alice, bob, carol, dave = [await api.register() for _ in range(4)]
    room = await api.group(alice, bob)
    await add(api, alice, room["id"], carol, "admin")
    await add(api, alice, room["id"], dave, "admin")
    ws = await connect(bob["token"])
    assert (await delete_account(api, alice)).status == 204
    changed = await ws.wait_for(
        lambda f: event_of(room["id"])(f) and f["event"]["type"] == "member.role_changed",
        "member.role_changed",
    )
    assert changed["event"]["data"]["user"]["id"] == carol["user"]["id"]
    assert changed["event"]["data"]["role"] == "owner"
    left = await ws.wait_for(
        lambda f: event_of(room["id"])(f) and f["event"]["type"] == "member.left", "member.left"
    )
    assert left["event"]["seq"] == changed["event"]["seq"] + 1
    assert await members_of(api, bob, room["id"]) == {
        bob["user"]["id"]: "member",
        carol["user"]["id"]: "owner",
        dave["user"]["id"]: "admin",
    }


async def test_without_an_admin_the_earliest_joined_member_becomes_owner(api: ApiClient) -> None:
    alice, bob, carol = [await api.register() for _ in range(3)]
    room = await api.group(alice, bob)
    await add(api, alice, room["id"], carol, "member")
    assert (await delete_account(api, alice)).status == 204
    assert await members_of(api, carol, room["id"]) == {
        bob["user"]["id"]: "owner",
        carol["user"]["id"]: "member",
    }


async def test_another_owner_keeps_the_room_without_a_handover(api: ApiClient) -> None:
    alice, bob, carol = [await api.register() for _ in range(3)]
    room = await api.group(alice, carol)
    await add(api, alice, room["id"], bob, "owner")
    assert (await delete_account(api, alice)).status == 204
    assert await members_of(api, bob, room["id"]) == {
        bob["user"]["id"]: "owner",
        carol["user"]["id"]: "member",
    }


async def test_a_room_left_empty_is_deleted(api: ApiClient, runtime: Runtime) -> None:
    alice = await api.register()
    room = await api.group(alice)
    assert (await delete_account(api, alice)).status == 204
    deleted_at = await scalar(runtime, "SELECT deleted_at FROM rooms WHERE id = %s", room["id"])
    assert deleted_at is not None


# -- what goes, what stays ----------------------------------------------------------------


async def test_blocks_mentions_settings_and_memberships_go(
    api: ApiClient, runtime: Runtime
) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(bob, alice)
    mine, theirs = alice["user"]["id"], bob["user"]["id"]
    await api.send(bob, room["id"], "hello @alice", mentions={"user_ids": [mine]})
    settings = await api.put(
        f"/api/v1/rooms/{room['id']}/notifications", {"level": "none"}, alice["token"]
    )
    assert settings.status == 200
    assert (await api.put(f"/api/v1/users/me/blocks/{theirs}", token=alice["token"])).status == 204
    assert (await api.put(f"/api/v1/users/me/blocks/{mine}", token=bob["token"])).status == 204
    assert (await delete_account(api, alice)).status == 204
    for sql in (
        "SELECT COUNT(*) FROM blocks WHERE user_id = %s OR blocked_id = %s",
        "SELECT COUNT(*) FROM mentions WHERE user_id = %s OR user_id = %s",
        "SELECT COUNT(*) FROM room_members WHERE user_id = %s OR user_id = %s",
    ):
        assert await scalar(runtime, sql, mine, mine) == 0, sql
    live = "SELECT COUNT(*) FROM sessions WHERE user_id = %s AND revoked_at IS NULL"
    assert await scalar(runtime, live, mine) == 0
    assert (await api.get("/api/v1/users/me/blocks", bob["token"])).body["users"] == []


async def test_those_who_blocked_them_hear_whom_they_block_now(
    api: ApiClient, connect: Any
) -> None:
    alice, bob, carol = [await api.register() for _ in range(3)]
    for blocked in (alice, carol):
        path = f"/api/v1/users/me/blocks/{blocked['user']['id']}"
        assert (await api.put(path, token=bob["token"])).status == 204
    ws = await connect(bob["token"])
    assert (await delete_account(api, alice)).status == 204
    frame = await ws.wait_for(of_type("blocks"), "blocks")
    assert frame["user_ids"] == [carol["user"]["id"]]


async def test_reports_they_filed_stay_without_them(api: ApiClient, runtime: Runtime) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(bob, alice)
    message = await api.send(bob, room["id"], "something rude")
    filed = await api.post(
        f"/api/v1/rooms/{room['id']}/messages/{message['id']}/report",
        {"reason": "spam"},
        alice["token"],
    )
    assert filed.status == 201, filed.body
    assert (await delete_account(api, alice)).status == 204
    queue = await api.get(f"/api/v1/rooms/{room['id']}/reports", bob["token"])
    assert [report["id"] for report in queue.body["reports"]] == [filed.body["id"]]
    reporter = "SELECT reporter_id FROM reports WHERE id = %s"
    assert await scalar(runtime, reporter, filed.body["id"]) is None


async def test_uploads_leave_the_store(api: ApiClient, runtime: Runtime) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    media = await uploaded(api, alice)
    assert (await send_image(api, alice, room["id"], media["id"])).status == 201
    key = await scalar(runtime, "SELECT storage_key FROM media WHERE id = %s", media["id"])
    assert runtime.storage.get(key)
    assert (await delete_account(api, alice)).status == 204
    assert (
        await scalar(runtime, "SELECT COUNT(*) FROM media WHERE owner_id = %s", alice["user"]["id"])
        == 0
    )
    with pytest.raises(MissingObject):
        runtime.storage.get(key)
    assert (await api.get(media["url"])).status == 404


async def test_messages_stay_unless_erased(api: ApiClient) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(bob, alice)
    await api.send(alice, room["id"], "kept words")
    assert (await delete_account(api, alice)).status == 204
    history = await api.get(f"/api/v1/rooms/{room['id']}/messages", bob["token"])
    assert [m["text"] for m in history.body["messages"]] == ["kept words"]


async def test_erase_messages_redacts_every_message_they_sent(api: ApiClient, connect: Any) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(bob, alice)
    other = await api.group(alice, bob, name="Other")
    sent = [
        await api.send(alice, room["id"], "first secret"),
        await api.send(alice, other["id"], "second secret"),
    ]
    await api.send(bob, room["id"], "bob stays")
    ws = await connect(bob["token"])
    assert (await delete_account(api, alice, erase_messages=True)).status == 204
    for message in sent:
        await ws.wait_for(
            lambda f, m=message: (
                of_type("event")(f)
                and f["event"]["type"] == "message.deleted"
                and f["event"]["data"]["id"] == m["id"]
            ),
            "message.deleted",
        )
    for room_id in (room["id"], other["id"]):
        events = await api.get(f"/api/v1/rooms/{room_id}/events?after_seq=0", bob["token"])
        assert "secret" not in str(events.body)
    history = await api.get(f"/api/v1/rooms/{room['id']}/messages", bob["token"])
    texts = [(m["text"], m["deleted"]) for m in history.body["messages"]]
    assert texts == [(None, True), ("bob stays", False)]


async def test_the_deletion_is_audited(api: ApiClient, runtime: Runtime) -> None:
    alice = await api.register()
    assert (await delete_account(api, alice, erase_messages=True)).status == 204
    row = await runtime.db.read(
        lambda tx: tx.one(
            "SELECT actor_id, data FROM audit_log WHERE action = 'user.deleted'"
            " AND target_user_id = %s",
            (alice["user"]["id"],),
        )
    )
    assert row["actor_id"] == alice["user"]["id"] and '"erase_messages": true' in row["data"]


# -- the CLI, and several processes -------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_cli_delete_with_erase_messages(
    api: ApiClient, runtime: Runtime, connect: Any, database_url: str, tmp_path: Path
) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    await api.send(alice, room["id"], "gone soon")
    ws = await connect(alice["token"])
    env = cronchat_env(database_url, tmp_path / "cli-data")
    code, out, err = await cronchat(
        env, "user", "delete", alice["user"]["username"], "--erase-messages", "--json"
    )
    assert code == 0, err
    assert '"deleted": true' in out
    assert await ws.closed(15) == 4003
    history = await api.get(f"/api/v1/rooms/{room['id']}/messages", bob["token"])
    assert [m["deleted"] for m in history.body["messages"]] == [True]
    assert await members_of(api, bob, room["id"]) == {bob["user"]["id"]: "owner"}
    actor = await scalar(
        runtime,
        "SELECT actor_id FROM audit_log WHERE action = 'user.deleted' AND target_user_id = %s",
        alice["user"]["id"],
    )
    assert actor is None
    code, _, err = await cronchat(env, "user", "delete", alice["user"]["username"])
    assert code == 1 and "no such user" in err


@pytest.mark.gen_test(timeout=120)
async def test_a_deletion_on_one_process_closes_the_socket_on_another(
    two_servers: tuple[Server, Server],
) -> None:
    first, second = two_servers
    client = AsyncHTTPClient(force_instance=True)
    try:
        on_first = ApiClient(client, first.url)
        alice, bob = await on_first.register(), await on_first.register()
        room = await on_first.group(bob, alice)
        alice_ws = await WsClient.connect(second.url, alice["token"])
        bob_ws = await WsClient.connect(second.url, bob["token"])
        assert (await delete_account(on_first, alice)).status == 204
        assert await alice_ws.closed() == 4003
        left = await bob_ws.wait_for(
            lambda f: event_of(room["id"])(f) and f["event"]["type"] == "member.left",
            "member.left on the other process",
        )
        assert left["event"]["data"]["user"]["deleted"] is True
        bob_ws.close()
    finally:
        client.close()
