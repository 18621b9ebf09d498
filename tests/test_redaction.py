"""Deletion is redaction: once a message is deleted, its text and media are nowhere a client
can read them (history, the event log, ``resume``, replies' excerpts, media links), whoever
deleted it and however. Also: message objects carry ``client_msg_id``, and media bytes are
cached by ETag. Media tests run on local disk and on S3 (moto), as in test_media.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_media import (  # noqa: F401  (fixtures of the media backends, used by name)
    image_bytes,
    media_backend,
    s3_endpoint,
    send_image,
    stored_keys,
    uploaded,
)

from clients import ApiClient, unique_name
from conftest import make_settings, scratch_mysql_database
from cronchat.config import Settings
from cronchat.db import Database, Tx
from cronchat.db.migrations import Migration, migrate, pending

pytestmark = pytest.mark.gen_test(timeout=60)

SECRET = "the launch code is 0000"
EDITED = "the launch code is 1234"


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """conftest's fixture; a test that uses ``media_backend`` runs on each media backend."""
    marker = request.node.get_closest_marker("server_settings")
    overrides = dict(marker.kwargs) if marker else {}
    if "media_backend" in request.fixturenames:
        overrides.update(request.getfixturevalue("media_backend"))
    return overrides


def leaks(value: Any, *secrets: str) -> list[str]:
    """Which of the secrets appear anywhere in a JSON value."""
    text = json.dumps(value, ensure_ascii=False)
    return [secret for secret in secrets if secret in text]


async def all_events(api: ApiClient, user: dict, room_id: str) -> list[dict[str, Any]]:
    reply = await api.get(f"/api/v1/rooms/{room_id}/events?after_seq=0&limit=500", user["token"])
    assert reply.status == 200, f"events: expected 200, got {reply.status} {reply.body}"
    return reply.body["events"]


def events_of(events: list[dict[str, Any]], message_id: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"].startswith("message.") and e["data"]["id"] == message_id]


async def sent_edited_deleted(api: ApiClient, sender: dict, deleter: dict, room_id: str) -> dict:
    """A message sent, edited, then deleted by ``deleter``: answers the message as sent."""
    message = await api.send(sender, room_id, SECRET)
    path = f"/api/v1/rooms/{room_id}/messages/{message['id']}"
    edited = await api.patch(path, {"text": EDITED}, sender["token"])
    assert edited.status == 200, edited.body
    deleted = await api.delete(path, deleter["token"])
    assert deleted.status == 204, f"delete: expected 204, got {deleted.status} {deleted.body}"
    return message


def assert_tombstones(events: list[dict[str, Any]], message: dict) -> None:
    found = events_of(events, message["id"])
    kinds = [e["type"] for e in found]
    assert kinds == ["message.created", "message.edited", "message.deleted"], kinds
    for event in found:
        data = event["data"]
        assert (data["deleted"], data["text"], data["media"]) == (True, None, None), event
        assert (data["id"], data["seq"]) == (message["id"], message["seq"])


# -- the event log -------------------------------------------------------------------------


async def test_deleted_text_is_gone_from_the_event_log_of_an_old_member(api: ApiClient) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    message = await sent_edited_deleted(api, alice, alice, room["id"])
    events = await all_events(api, bob, room["id"])
    assert leaks(events, SECRET, EDITED) == [], events
    assert_tombstones(events, message)


async def test_deleted_text_is_gone_for_a_member_added_later(api: ApiClient) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice)
    message = await sent_edited_deleted(api, alice, alice, room["id"])
    added = await api.post(
        f"/api/v1/rooms/{room['id']}/members", {"user_id": bob["user"]["id"]}, alice["token"]
    )
    assert added.status == 201, added.body
    events = await all_events(api, bob, room["id"])
    assert leaks(events, SECRET, EDITED) == [], events
    assert_tombstones(events, message)


async def test_resume_replays_only_the_tombstones(api: ApiClient, connect: Any) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    message = await sent_edited_deleted(api, alice, alice, room["id"])
    bob_ws = await connect(bob["token"])
    answer = await bob_ws.request({"type": "resume", "rooms": {room["id"]: 0}})
    assert answer["type"] == "ack" and answer["result"]["rooms"] == {room["id"]: "ok"}, answer
    replayed = [
        frame["event"]
        for frame in bob_ws.backlog
        if frame["type"] == "event" and frame["event"]["room_id"] == room["id"]
    ]
    assert [e["seq"] for e in replayed] == list(range(1, room["last_seq"] + 4))
    assert leaks(replayed, SECRET, EDITED) == [], replayed
    assert_tombstones(replayed, message)


async def test_history_and_the_message_show_only_the_tombstone(api: ApiClient) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    message = await sent_edited_deleted(api, alice, alice, room["id"])
    history = await api.get(f"/api/v1/rooms/{room['id']}/messages", bob["token"])
    fetched = await api.get(f"/api/v1/rooms/{room['id']}/messages/{message['id']}", bob["token"])
    rooms = await api.get("/api/v1/rooms", bob["token"])
    for reply in (history, fetched, rooms):
        assert reply.status == 200 and leaks(reply.body, SECRET, EDITED) == [], reply.body
    assert fetched.body["deleted"] is True and fetched.body["text"] is None


async def test_an_admin_deleting_anothers_message_over_the_socket_redacts_it(
    api: ApiClient, connect: Any
) -> None:
    owner, admin, member = await api.register(), await api.register(), await api.register()
    room = await api.group(owner, admin, member)
    promoted = await api.patch(
        f"/api/v1/rooms/{room['id']}/members/{admin['user']['id']}",
        {"role": "admin"},
        owner["token"],
    )
    assert promoted.status == 200, promoted.body
    message = await api.send(member, room["id"], SECRET)
    admin_ws = await connect(admin["token"])
    answer = await admin_ws.request(
        {"type": "message.delete", "room_id": room["id"], "message_id": message["id"]}
    )
    assert answer["type"] == "ack", answer
    events = await all_events(api, owner, room["id"])
    assert leaks(events, SECRET) == [], events
    [created, deleted] = events_of(events, message["id"])
    assert created["data"]["deleted"] is True and deleted["actor_id"] == admin["user"]["id"]


async def test_a_member_cannot_delete_anothers_message_and_nothing_changes(api: ApiClient) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    message = await api.send(alice, room["id"], SECRET)
    before = await all_events(api, alice, room["id"])
    refused = await api.delete(f"/api/v1/rooms/{room['id']}/messages/{message['id']}", bob["token"])
    assert (refused.status, refused.error_code) == (403, "forbidden")
    assert await all_events(api, alice, room["id"]) == before


# -- replies -------------------------------------------------------------------------------


async def test_replies_to_a_deleted_message_keep_no_excerpt_anywhere(
    api: ApiClient, connect: Any
) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    original = await api.send(alice, room["id"], SECRET)
    reply = await api.send(bob, room["id"], "so it is", reply_to_id=original["id"])
    assert reply["reply_to"]["excerpt"] == SECRET
    reply_path = f"/api/v1/rooms/{room['id']}/messages/{reply['id']}"
    assert (await api.patch(reply_path, {"text": "so it was"}, bob["token"])).status == 200
    second = await api.send(bob, room["id"], "and again", reply_to_id=original["id"])
    assert (
        await api.delete(f"/api/v1/rooms/{room['id']}/messages/{second['id']}", bob["token"])
    ).status == 204
    deleted = await api.delete(
        f"/api/v1/rooms/{room['id']}/messages/{original['id']}", alice["token"]
    )
    assert deleted.status == 204
    tombstone_ref = {
        "id": original["id"],
        "sender_id": alice["user"]["id"],
        "excerpt": None,
        "deleted": True,
    }
    events = await all_events(api, bob, room["id"])
    assert leaks(events, SECRET) == [], events
    for event in events_of(events, reply["id"]) + events_of(events, second["id"]):
        assert event["data"]["reply_to"] == tombstone_ref, event
    bob_ws = await connect(bob["token"])
    await bob_ws.request({"type": "resume", "rooms": {room["id"]: 0}})
    assert leaks(bob_ws.backlog, SECRET) == [], bob_ws.backlog
    history = await api.get(f"/api/v1/rooms/{room['id']}/messages", bob["token"])
    assert leaks(history.body, SECRET) == [], history.body


# -- media ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("media_backend")
async def test_a_deleted_image_stops_loading_and_leaves_the_store(
    api: ApiClient, settings: Settings
) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    media = await uploaded(api, alice, image_bytes("PNG"))
    sent = await send_image(api, alice, room["id"], media["id"], text=SECRET)
    assert sent.status == 201, sent.body
    links = [sent.body["media"]["url"], sent.body["media"]["thumbnail_url"]]
    bearer = [f"/api/v1/media/{media['id']}", f"/api/v1/media/{media['id']}/thumbnail"]
    etags = {}
    for url in links:
        loaded = await api.get(url)
        assert loaded.status == 200, url
        etags[url] = loaded.headers["ETag"]
    for path in bearer:
        for user in (alice, bob):
            assert (await api.get(path, user["token"])).status == 200, path
    assert [key for key in stored_keys(settings) if media["id"] in key] != []
    deleted = await api.delete(
        f"/api/v1/rooms/{room['id']}/messages/{sent.body['id']}", alice["token"]
    )
    assert deleted.status == 204
    for url in links:
        gone = await api.get(url)
        assert (gone.status, gone.error_code) == (404, "not_found"), url
        cached = await api.get(url, headers={"If-None-Match": etags[url]})
        assert cached.status == 404, url  # not a 304: the grant is checked first
    for path in bearer:
        for user in (alice, bob):
            gone = await api.get(path, user["token"])
            assert (gone.status, gone.error_code) == (404, "not_found"), (path, user)
    assert [key for key in stored_keys(settings) if media["id"] in key] == []
    events = await all_events(api, bob, room["id"])
    assert leaks(events, SECRET, media["id"]) == [], events


@pytest.mark.usefixtures("media_backend")
async def test_an_image_sent_twice_stays_until_its_last_message_is_deleted(
    api: ApiClient, settings: Settings
) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    first_room, second_room = await api.group(alice, bob), await api.group(alice, carol)
    media = await uploaded(api, alice, image_bytes("PNG"))
    first = await send_image(api, alice, first_room["id"], media["id"])
    second = await send_image(api, alice, second_room["id"], media["id"])
    assert (first.status, second.status) == (201, 201)
    path = f"/api/v1/media/{media['id']}"
    deleted = await api.delete(
        f"/api/v1/rooms/{first_room['id']}/messages/{first.body['id']}", alice["token"]
    )
    assert deleted.status == 204
    assert (await api.get(path, bob["token"])).status == 404  # its message in bob's room went
    assert (await api.get(path, carol["token"])).status == 200
    assert (await api.get(second.body["media"]["url"])).status == 200
    assert [key for key in stored_keys(settings) if media["id"] in key] != []
    deleted = await api.delete(
        f"/api/v1/rooms/{second_room['id']}/messages/{second.body['id']}", alice["token"]
    )
    assert deleted.status == 204
    assert (await api.get(second.body["media"]["url"])).status == 404
    assert (await api.get(path, carol["token"])).status == 404
    assert [key for key in stored_keys(settings) if media["id"] in key] == []


async def test_a_deleted_images_upload_cannot_be_sent_again(api: ApiClient) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    media = await uploaded(api, alice, image_bytes("PNG"))
    sent = await send_image(api, alice, room["id"], media["id"])
    path = f"/api/v1/rooms/{room['id']}/messages/{sent.body['id']}"
    assert (await api.delete(path, alice["token"])).status == 204
    again = await send_image(api, alice, room["id"], media["id"])
    assert (again.status, again.body["error"]["details"]) == (400, {"field": "media_id"})


# -- client_msg_id -------------------------------------------------------------------------


async def test_every_copy_of_a_message_carries_its_client_msg_id(
    api: ApiClient, connect: Any
) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    bob_ws = await connect(bob["token"])
    alice_ws = await connect(alice["token"])
    client_msg_id = unique_name("local-echo")
    path = f"/api/v1/rooms/{room['id']}/messages"
    created = await api.post(path, {"client_msg_id": client_msg_id, "text": "hi"}, alice["token"])
    assert created.status == 201 and created.body["client_msg_id"] == client_msg_id
    repeated = await api.post(path, {"client_msg_id": client_msg_id, "text": "hi"}, alice["token"])
    assert repeated.status == 200 and repeated.body["client_msg_id"] == client_msg_id
    for socket in (alice_ws, bob_ws):
        [event] = await socket.events(room["id"], 1)
        assert event["data"]["client_msg_id"] == client_msg_id, event
    ack = await alice_ws.request(
        {"type": "message.send", "room_id": room["id"], "client_msg_id": "ws-1", "text": "yo"}
    )
    assert ack["result"]["message"]["client_msg_id"] == "ws-1", ack
    message_path = f"{path}/{created.body['id']}"
    fetched = await api.get(message_path, bob["token"])
    history = await api.get(path, bob["token"])
    assert fetched.body["client_msg_id"] == client_msg_id
    assert [m["client_msg_id"] for m in history.body["messages"]][-2:] == [client_msg_id, "ws-1"]
    edited = await api.patch(message_path, {"text": "hi!"}, alice["token"])
    assert edited.body["client_msg_id"] == client_msg_id
    events = await all_events(api, bob, room["id"])
    assert {e["data"]["client_msg_id"] for e in events_of(events, created.body["id"])} == {
        client_msg_id
    }


# -- caching of media bytes ----------------------------------------------------------------


def max_age(cache_control: str) -> int:
    directives = [part.strip() for part in cache_control.split(",")]
    [age] = [int(part.split("=", 1)[1]) for part in directives if part.startswith("max-age=")]
    return age


async def test_media_bytes_are_private_and_immutable_by_link_and_by_token(api: ApiClient) -> None:
    alice = await api.register()
    media = await uploaded(api, alice, image_bytes("PNG"))
    for url, token in (
        (media["url"], None),
        (media["thumbnail_url"], None),
        (f"/api/v1/media/{media['id']}", alice["token"]),
        (f"/api/v1/media/{media['id']}/thumbnail", alice["token"]),
    ):
        loaded = await api.get(url, token)
        assert loaded.status == 200, url
        directives = {part.strip() for part in loaded.headers["Cache-Control"].split(",")}
        assert {"private", "immutable"} <= directives, loaded.headers["Cache-Control"]
        assert 0 < max_age(loaded.headers["Cache-Control"]) <= 3600
        etag = loaded.headers["ETag"]
        again = await api.get(url, token, headers={"If-None-Match": etag})
        assert (again.status, again.body) == (304, b""), url
        assert again.headers["ETag"] == etag
        again_directives = {part.strip() for part in again.headers["Cache-Control"].split(",")}
        assert {"private", "immutable"} <= again_directives, again.headers["Cache-Control"]
        # A signed link's max-age is the time it has left: a second may pass between the two.
        first, second = (
            max_age(loaded.headers["Cache-Control"]),
            max_age(again.headers["Cache-Control"]),
        )
        assert first - 2 <= second <= first, (first, second)


async def test_if_none_match_from_someone_who_may_not_see_the_image_is_not_304(
    api: ApiClient,
) -> None:
    alice, mallory = await api.register(), await api.register()
    media = await uploaded(api, alice, image_bytes("PNG"))
    etag = (await api.get(media["url"])).headers["ETag"]
    path = f"/api/v1/media/{media['id']}"
    probe = await api.get(path, mallory["token"], headers={"If-None-Match": etag})
    assert (probe.status, probe.error_code) == (404, "not_found")
    anonymous = await api.get(path, headers={"If-None-Match": etag})
    assert anonymous.status == 401
    forged = media["url"].replace("signature=", "signature=x")
    assert (await api.get(forged, headers={"If-None-Match": etag})).status == 403


# -- messages deleted before redaction existed ---------------------------------------------


@pytest.fixture(params=["sqlite", "mysql"])
def unmigrated_url(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    """A database of the test's own, with no migration applied yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'legacy.sqlite3'}"
        return
    with scratch_mysql_database("cronchat_legacy") as url:
        yield url


def _legacy_rows_tx(tx: Tx) -> None:
    """A room as the server before redaction left it: message a deleted (its row a
    tombstone) but its created and edited events holding its text; b replying to it."""
    tx.execute(
        "INSERT INTO rooms (id, kind, created_by, created_at, updated_at, last_activity_at)"
        " VALUES ('r', 'group', 'u', 1, 1, 1)"
    )
    tx.execute(
        "INSERT INTO messages (id, room_id, seq, sender_id, kind, text, reply_to_id,"
        " client_msg_id, created_at, deleted_at) VALUES"
        " ('a', 'r', 1, 'u', 'text', NULL, NULL, 'ca', 1, 4),"
        " ('b', 'r', 2, 'u', 'text', 'so it is', 'a', 'cb', 2, NULL),"
        " ('c', 'r', 3, 'u', 'text', 'kept', NULL, 'cc', 3, NULL)"
    )
    message = {"id": "a", "text": SECRET, "media": None, "deleted": False, "reactions": []}
    reply_to = {"id": "a", "sender_id": "u", "excerpt": SECRET, "deleted": False}
    logged = [
        (1, "message.created", message),
        (2, "message.created", {"id": "b", "text": "so it is", "reply_to": reply_to}),
        (3, "message.created", {"id": "c", "text": "kept", "reply_to": None}),
        (4, "message.edited", {**message, "text": EDITED}),
        (5, "message.deleted", {**message, "text": None, "deleted": True}),
        (6, "reaction.added", {"message_id": "c", "emoji": ":+1:", "user_id": "u"}),
    ]
    tx.executemany(
        "INSERT INTO room_events (room_id, seq, type, actor_id, at, data)"
        " VALUES ('r', %s, %s, 'u', 1, %s)",
        [(seq, kind, json.dumps(data)) for seq, kind, data in logged],
    )


def _apply_tx(tx: Tx, migration: Migration) -> None:
    for statement in migration.statements():
        tx.execute(statement)
    tx.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, 0)",
        (migration.version, migration.name),
    )


async def test_the_migration_redacts_messages_deleted_before_it_and_adds_client_msg_id(
    unmigrated_url: str, tmp_path: Any
) -> None:
    settings = make_settings(unmigrated_url, tmp_path / "data")
    db = Database(settings.database, 1)
    try:
        for migration in pending(db):
            if migration.version < 4:
                db.run_sync(_apply_tx, migration)
        db.run_sync(_legacy_rows_tx)
        migrate(db)
        rows = db.run_sync(
            lambda tx: tx.all("SELECT seq, message_id, data FROM room_events ORDER BY seq")
        )
    finally:
        db.close()
    data = {row["seq"]: json.loads(row["data"]) for row in rows}
    assert leaks(list(data.values()), SECRET, EDITED) == [], data
    for seq in (1, 4, 5):
        assert (data[seq]["deleted"], data[seq]["text"]) == (True, None), data[seq]
    assert data[2]["reply_to"] == {"id": "a", "sender_id": "u", "excerpt": None, "deleted": True}
    assert (data[2]["text"], data[3]["text"]) == ("so it is", "kept")
    assert [row["message_id"] for row in rows] == ["a", "b", "c", "a", "a", None]
    assert [data[seq]["client_msg_id"] for seq in range(1, 6)] == ["ca", "cb", "cc", "ca", "ca"]
    assert "client_msg_id" not in data[6]
