"""Profiles: my own, others', search, and changing the password."""

from __future__ import annotations

from typing import Any

import pytest
from test_scale import Server, client, redis_url, server_env, two_servers  # noqa: F401
from tornado.httpclient import AsyncHTTPClient

from clients import ApiClient, WsClient, event_of, unique_name

pytestmark = pytest.mark.gen_test

PUBLIC_FIELDS = {
    "id",
    "username",
    "display_name",
    "bio",
    "avatar_url",
    "created_at",
    "online",
    "last_seen_at",
}


async def test_me_shows_the_profile_with_rfc3339_time(api: ApiClient) -> None:
    user = await api.register(display_name="Me Myself")
    reply = await api.get("/api/v1/users/me", user["token"])
    assert reply.status == 200
    assert set(reply.body) == PUBLIC_FIELDS | {"is_admin"}  # the user's own: with is_admin
    assert reply.body["display_name"] == "Me Myself"
    assert reply.body["bio"] == ""
    assert reply.body["created_at"].endswith("Z") and len(reply.body["created_at"]) == 24


async def test_patch_me_changes_only_what_is_given(api: ApiClient) -> None:
    user = await api.register()
    reply = await api.patch("/api/v1/users/me", {"bio": "  hello there  "}, user["token"])
    assert reply.status == 200
    assert reply.body["bio"] == "hello there"
    assert reply.body["display_name"] == user["user"]["display_name"]
    reply = await api.patch(
        "/api/v1/users/me", {"display_name": "New Name", "ignored": 1}, user["token"]
    )
    assert reply.body["display_name"] == "New Name"
    assert reply.body["bio"] == "hello there"
    assert (await api.get("/api/v1/users/me", user["token"])).body["display_name"] == "New Name"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"display_name": 5}, "display_name"),
        ({"display_name": ""}, "display_name"),
        ({"display_name": "x" * 65}, "display_name"),
        ({"bio": "x" * 501}, "bio"),
        ({"bio": ["list"]}, "bio"),
    ],
)
async def test_patch_me_rejects_bad_values_and_changes_nothing(
    api: ApiClient, body: dict, field: str
) -> None:
    user = await api.register()
    reply = await api.patch("/api/v1/users/me", body, user["token"])
    assert reply.status == 400
    assert reply.body["error"]["details"]["field"] == field
    me = await api.get("/api/v1/users/me", user["token"])
    assert me.body["display_name"] == user["user"]["display_name"]
    assert me.body["bio"] == ""


async def test_other_profiles_are_public_without_secrets(api: ApiClient) -> None:
    alice = await api.register()
    bob = await api.register()
    reply = await api.get(f"/api/v1/users/{bob['user']['id']}", alice["token"])
    assert reply.status == 200
    assert set(reply.body) == PUBLIC_FIELDS
    assert reply.body["username"] == bob["user"]["username"]
    missing = await api.get("/api/v1/users/nobody-has-this-id", alice["token"])
    assert missing.status == 404
    assert missing.error_code == "not_found"
    assert (await api.get(f"/api/v1/users/{bob['user']['id']}")).status == 401


async def test_presence_is_shown_only_to_users_who_share_a_room(
    api: ApiClient, connect: Any
) -> None:
    stem = unique_name("seen")
    alice, bob, stranger = (
        await api.register(),
        await api.register(f"{stem}bob"),
        await api.register(),
    )
    bob_id = bob["user"]["id"]
    await api.group(alice, bob)
    alice_ws = await connect(alice["token"])
    bob_ws = await connect(bob["token"])
    await alice_ws.expect("presence", user_id=bob_id, online=True)

    async def seen_by(viewer: dict[str, Any]) -> tuple[Any, Any, Any]:
        profile = await api.get(f"/api/v1/users/{bob_id}", viewer["token"])
        assert set(profile.body) == PUBLIC_FIELDS
        found = await api.get(f"/api/v1/users?q={stem}", viewer["token"])
        (listed,) = found.body["users"]
        assert (listed["online"], listed["last_seen_at"]) == (
            profile.body["online"],
            profile.body["last_seen_at"],
        )
        return profile.body["online"], profile.body["last_seen_at"] is not None, listed["id"]

    assert await seen_by(alice) == (True, True, bob_id)
    assert await seen_by(bob) == (True, True, bob_id)  # one's own presence, of course
    assert await seen_by(stranger) == (None, False, bob_id)
    assert (await api.get(f"/api/v1/users/{bob_id}", stranger["token"])).body[
        "last_seen_at"
    ] is None

    bob_ws.close()
    await alice_ws.expect("presence", user_id=bob_id, online=False)
    assert await seen_by(alice) == (False, True, bob_id)
    stranger_view = await api.get(f"/api/v1/users/{bob_id}", stranger["token"])
    assert (stranger_view.body["online"], stranger_view.body["last_seen_at"]) == (None, None)


async def test_presence_is_hidden_again_once_no_live_room_is_shared(
    api: ApiClient, connect: Any
) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    left = await api.group(alice, bob)
    deleted = await api.group(alice, carol)
    alice_ws = await connect(alice["token"])
    await connect(bob["token"])
    await connect(carol["token"])
    await alice_ws.expect("presence", user_id=bob["user"]["id"], online=True)
    await alice_ws.expect("presence", user_id=carol["user"]["id"], online=True)
    for peer in (bob, carol):
        shown = await api.get(f"/api/v1/users/{peer['user']['id']}", alice["token"])
        assert shown.body["online"] is True
    assert (
        await api.delete(f"/api/v1/rooms/{left['id']}/members/{bob['user']['id']}", bob["token"])
    ).status == 204
    assert (await api.delete(f"/api/v1/rooms/{deleted['id']}", alice["token"])).status == 204
    for peer in (bob, carol):
        hidden = await api.get(f"/api/v1/users/{peer['user']['id']}", alice["token"])
        assert (hidden.body["online"], hidden.body["last_seen_at"]) == (None, None), hidden.body
        mutual = await api.get(f"/api/v1/users/{alice['user']['id']}", peer["token"])
        assert (mutual.body["online"], mutual.body["last_seen_at"]) == (None, None), mutual.body


async def test_a_direct_room_shows_no_presence_of_a_peer_who_left_it(
    api: ApiClient, connect: Any
) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.direct(alice, bob)
    alice_ws = await connect(alice["token"])
    await connect(bob["token"])
    await alice_ws.expect("presence", user_id=bob["user"]["id"], online=True)
    shown = await api.get(f"/api/v1/rooms/{room['id']}", alice["token"])
    assert shown.body["peer"]["online"] is True
    assert (
        await api.delete(f"/api/v1/rooms/{room['id']}/members/{bob['user']['id']}", bob["token"])
    ).status == 204
    for reply in (
        await api.get(f"/api/v1/rooms/{room['id']}", alice["token"]),
        await api.get("/api/v1/rooms", alice["token"]),
    ):
        view = reply.body if "peer" in reply.body else reply.body["rooms"][0]
        peer = view["peer"]
        assert peer is None or (peer["online"], peer["last_seen_at"]) == (None, None), peer


async def test_search_by_username_or_display_name_prefix(api: ApiClient) -> None:
    stem = unique_name("srch")
    first = await api.register(f"{stem}a", display_name="Zelda Quux")
    second = await api.register(f"{stem}b")
    me = await api.register()
    reply = await api.get(f"/api/v1/users?q={stem.upper()}", me["token"])
    assert reply.status == 200
    found = [user["id"] for user in reply.body["users"]]
    assert found == [first["user"]["id"], second["user"]["id"]]
    by_display = await api.get("/api/v1/users?q=zelda%20q", me["token"])
    assert first["user"]["id"] in [user["id"] for user in by_display.body["users"]]
    limited = await api.get(f"/api/v1/users?q={stem}&limit=1", me["token"])
    assert len(limited.body["users"]) == 1


async def test_search_treats_wildcards_literally(api: ApiClient) -> None:
    me = await api.register()
    reply = await api.get("/api/v1/users?q=%25", me["token"])
    assert reply.status == 200
    assert reply.body["users"] == []


@pytest.mark.parametrize("query", ["", "?q=", "?q=ab&limit=0", "?q=ab&limit=x", "?q=ab&limit=51"])
async def test_search_rejects_bad_parameters(api: ApiClient, query: str) -> None:
    me = await api.register()
    reply = await api.get(f"/api/v1/users{query}", me["token"])
    assert reply.status == 400
    assert reply.body["error"]["details"]["field"] in ("q", "limit")


async def test_change_password_revokes_other_sessions_only(api: ApiClient) -> None:
    user = await api.register()
    name = user["user"]["username"]
    other = await api.post("/api/v1/auth/login", {"username": name, "password": user["password"]})
    reply = await api.put(
        "/api/v1/users/me/password",
        {"current_password": user["password"], "new_password": "a brand new one"},
        user["token"],
    )
    assert reply.status == 204
    assert (await api.get("/api/v1/users/me", user["token"])).status == 200
    assert (await api.get("/api/v1/users/me", other.body["access_token"])).status == 401
    assert (
        await api.post("/api/v1/auth/login", {"username": name, "password": user["password"]})
    ).status == 401
    assert (
        await api.post("/api/v1/auth/login", {"username": name, "password": "a brand new one"})
    ).status == 200


async def test_change_password_needs_the_current_one(api: ApiClient) -> None:
    user = await api.register()
    wrong = await api.put(
        "/api/v1/users/me/password",
        {"current_password": "not the one", "new_password": "a brand new one"},
        user["token"],
    )
    assert wrong.status == 401
    assert wrong.error_code == "invalid_credentials"
    short = await api.put(
        "/api/v1/users/me/password",
        {"current_password": user["password"], "new_password": "short"},
        user["token"],
    )
    assert short.status == 400
    assert short.body["error"]["details"]["field"] == "new_password"
    missing = await api.put(
        "/api/v1/users/me/password", {"new_password": "a brand new one"}, user["token"]
    )
    assert missing.body["error"]["details"]["field"] == "current_password"
    login = await api.post(
        "/api/v1/auth/login", {"username": user["user"]["username"], "password": user["password"]}
    )
    assert login.status == 200


@pytest.mark.gen_test(timeout=30)
async def test_profile_change_reaches_room_mates_and_own_devices_not_strangers(
    api: ApiClient, connect: Any
) -> None:
    alice, bob, stranger = await api.register(), await api.register(), await api.register()
    await api.group(alice, bob)
    stranger_room = await api.group(stranger, name="elsewhere")
    bob_ws = await connect(bob["token"])
    alice_other_device = await connect(alice["token"])
    stranger_ws = await connect(stranger["token"])

    changed = await api.patch(
        "/api/v1/users/me", {"display_name": "Alice Renamed", "bio": "new bio"}, alice["token"]
    )
    assert changed.status == 200, changed.body
    for socket in (bob_ws, alice_other_device):
        frame = await socket.expect("user.updated")
        user = frame["user"]
        assert set(user) == PUBLIC_FIELDS, user
        assert (user["id"], user["display_name"], user["bio"]) == (
            alice["user"]["id"],
            "Alice Renamed",
            "new bio",
        )
    # The marker: an event of the stranger's own room, sent after the change.
    marker = await api.send(stranger, stranger_room["id"], "marker")
    before = await stranger_ws.frames_before(
        event_of(stranger_room["id"], marker["seq"]), "the marker"
    )
    assert not [f for f in before if f["type"] == "user.updated"]


@pytest.mark.gen_test(timeout=30)
async def test_a_profile_patch_that_changes_nothing_sends_nothing(
    api: ApiClient, connect: Any
) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    bob_ws = await connect(bob["token"])
    assert (await api.patch("/api/v1/users/me", {}, alice["token"])).status == 200
    marker = await api.send(alice, room["id"], "marker")
    before = await bob_ws.frames_before(event_of(room["id"], marker["seq"]), "the marker")
    assert not [f for f in before if f["type"] == "user.updated"]


@pytest.mark.gen_test(timeout=60)
async def test_profile_change_crosses_processes_through_redis(
    two_servers: tuple[Server, Server],  # noqa: F811 (the fixture imported above)
    client: AsyncHTTPClient,  # noqa: F811 (the fixture imported above)
) -> None:
    first, second = two_servers
    on_first, on_second = ApiClient(client, first.url), ApiClient(client, second.url)
    alice, bob = await on_first.register(), await on_second.register()
    await on_first.group(alice, bob)
    alice_ws = await WsClient.connect(first.url, alice["token"])
    bob_ws = await WsClient.connect(second.url, bob["token"])
    try:
        changed = await on_first.patch("/api/v1/users/me", {"bio": "far away"}, alice["token"])
        assert changed.status == 200, changed.body
        user = (await bob_ws.expect("user.updated"))["user"]
        assert (user["id"], user["bio"]) == (alice["user"]["id"], "far away")
        assert user["online"] is True  # alice's socket is open on the other process
    finally:
        alice_ws.close()
        bob_ws.close()
