"""Mentions: named on REST and WebSocket sends and edits, stored as the server keeps them
(sender, non-members and repeats dropped), counted in each member's
``unread_mention_count`` live and in the room list, delivered as ``mention`` frames to the
named users' sockets, and listed in each user's mention feed."""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from urllib.parse import quote

import pytest
from test_scale import Server, client, redis_url, server_env, two_servers
from tornado.httpclient import AsyncHTTPClient

from clients import ApiClient, Fits, Frame, User, WsClient, event_of, summary_of

__all__ = ["client", "redis_url", "server_env", "two_servers"]  # fixtures of test_scale

pytestmark = pytest.mark.gen_test(timeout=60)

FEED = "/api/v1/users/me/mentions"
NO_MENTIONS = {"user_ids": [], "room": False}
MENTION_FIELDS = {"id", "room_id", "seq", "kind", "message", "read", "created_at"}
# A cursor in the shape of the server's (a position, base64), made up by a client.
MADE_UP_CURSOR = base64.urlsafe_b64encode(b"9999999999999:zzzzzzzzzz").decode().rstrip("=")
ROOM_MENTION_LIMIT = 20  # a group of more than this many members: room mentions by admins only

# A wrong ``mentions`` value of a send or an edit, and the field its 400 names.
BAD_MENTIONS = [
    pytest.param(
        {"user_ids": [f"user{n}" for n in range(51)], "room": False},
        "mentions.user_ids",
        id="51-ids",
    ),
    pytest.param({"user_ids": "someone", "room": False}, "mentions.user_ids", id="ids-a-string"),
    pytest.param({"user_ids": {"id": "x"}, "room": False}, "mentions.user_ids", id="ids-an-object"),
    pytest.param({"user_ids": [7], "room": False}, "mentions.user_ids", id="id-a-number"),
    pytest.param({"user_ids": [None], "room": False}, "mentions.user_ids", id="id-null"),
    pytest.param("everyone", "mentions", id="mentions-a-string"),
    pytest.param(["someone"], "mentions", id="mentions-a-list"),
    pytest.param({"user_ids": [], "room": "yes"}, "mentions.room", id="room-a-string"),
    pytest.param({"user_ids": [], "room": 1}, "mentions.room", id="room-a-number"),
]


def user_id(user: User) -> str:
    return user["user"]["id"]


def naming(*users: User, room: bool = False) -> dict[str, Any]:
    """The ``mentions`` of a message that names these users (and the room, when asked)."""
    return {"user_ids": [user_id(user) for user in users], "room": room}


def mention_of(message_id: str) -> Fits:
    """The ``mention`` frame about this message."""
    return lambda frame: (
        frame.get("type") == "mention" and frame["mention"]["message"]["id"] == message_id
    )


def mention_frames(frames: list[Frame]) -> list[Frame]:
    return [frame for frame in frames if frame["type"] == "mention"]


async def room_of(api: ApiClient, user: User, room_id: str) -> dict[str, Any]:
    """The room as GET /rooms/{id} shows it to this user."""
    reply = await api.get(f"/api/v1/rooms/{room_id}", user["token"])
    assert reply.status == 200, f"GET room: expected 200, got {reply.status} {reply.body}"
    return reply.body


async def mention_count(api: ApiClient, user: User, room_id: str) -> int:
    """The user's ``unread_mention_count`` of the room, as GET /rooms lists it, checked to be
    what GET /rooms/{id} shows too."""
    reply = await api.get("/api/v1/rooms?limit=100", user["token"])
    assert reply.status == 200, reply.body
    listed = [room for room in reply.body["rooms"] if room["id"] == room_id]
    assert len(listed) == 1, f"expected the room {room_id} listed once, got {reply.body}"
    single = (await room_of(api, user, room_id))["unread_mention_count"]
    assert listed[0]["unread_mention_count"] == single, (listed[0], single)
    return single


async def mention_counts(api: ApiClient, users: list[User], room_id: str) -> list[int]:
    return [await mention_count(api, user, room_id) for user in users]


async def feed(api: ApiClient, user: User, query: str = "") -> list[dict[str, Any]]:
    """The user's mentions, one page of up to 100."""
    reply = await api.get(f"{FEED}?limit=100{query}", user["token"])
    assert reply.status == 200, f"feed: expected 200, got {reply.status} {reply.body}"
    assert reply.body["next_cursor"] is None, reply.body
    return reply.body["mentions"]


async def fed_messages(api: ApiClient, user: User, query: str = "") -> list[str]:
    """The ids of the messages of the user's mentions, in the feed's order."""
    return [mention["message"]["id"] for mention in await feed(api, user, query)]


async def history(api: ApiClient, user: User, room_id: str) -> list[dict[str, Any]]:
    reply = await api.get(f"/api/v1/rooms/{room_id}/messages", user["token"])
    assert reply.status == 200, reply.body
    return reply.body["messages"]


async def edit(
    api: ApiClient, user: User, message: dict[str, Any], text: str, **extra: Any
) -> dict[str, Any]:
    path = f"/api/v1/rooms/{message['room_id']}/messages/{message['id']}"
    reply = await api.patch(path, {"text": text, **extra}, user["token"])
    assert reply.status == 200, f"edit: expected 200, got {reply.status} {reply.body}"
    return reply.body


async def delete(api: ApiClient, user: User, message: dict[str, Any]) -> None:
    path = f"/api/v1/rooms/{message['room_id']}/messages/{message['id']}"
    reply = await api.delete(path, user["token"])
    assert reply.status == 204, f"delete: expected 204, got {reply.status} {reply.body}"


async def read(api: ApiClient, user: User, room_id: str, seq: int) -> dict[str, Any]:
    reply = await api.post(f"/api/v1/rooms/{room_id}/read", {"seq": seq}, user["token"])
    assert reply.status == 200, reply.body
    return reply.body


async def ws_send(ws: WsClient, room_id: str, text: str, **extra: Any) -> Frame:
    """The answer (ack or error) to a ``message.send`` of this socket."""
    return await ws.request(
        {"type": "message.send", "room_id": room_id, "client_msg_id": text, "text": text, **extra}
    )


async def ws_edit(ws: WsClient, message: dict[str, Any], text: str, **extra: Any) -> Frame:
    return await ws.request(
        {
            "type": "message.edit",
            "room_id": message["room_id"],
            "message_id": message["id"],
            "text": text,
            **extra,
        }
    )


async def summary_at(
    ws: WsClient, room_id: str, last_seq: int, types: tuple[str, ...] = ("event", "room.summary")
) -> dict[str, Any]:
    """The user's own summary of the room as of ``last_seq``, from the first frame of these
    types that carries one."""

    def fits(frame: Frame) -> bool:
        summary = summary_of(frame)
        return (
            frame["type"] in types
            and summary is not None
            and summary["id"] == room_id
            and summary["last_seq"] == last_seq
        )

    frame = await ws.wait_for(fits, f"a summary of {room_id} at {last_seq} in {types}")
    return frame["room"]


async def last_seq(api: ApiClient, user: User, room_id: str) -> int:
    return (await room_of(api, user, room_id))["last_seq"]


async def chat(api: ApiClient, size: int = 3) -> tuple[list[User], dict[str, Any]]:
    """``size`` users, the first the owner of a group room of them all."""
    users = [await api.register() for _ in range(size)]
    return users, await api.group(users[0], *users[1:])


# Mentions stored and returned


async def test_rest_send_keeps_named_members_in_order_without_sender_outsiders_or_repeats(
    api: ApiClient, connect: Any
) -> None:
    (alice, bob, carol), room = await chat(api)
    outsider = await api.register()
    bob_ws = await connect(bob["token"])
    named = naming(carol, bob, alice, outsider, carol, bob)

    sent = await api.send(alice, room["id"], "hello you two", mentions=named)

    expected = {"user_ids": [user_id(carol), user_id(bob)], "room": False}
    assert sent["mentions"] == expected
    fetched = await api.get(f"/api/v1/rooms/{room['id']}/messages/{sent['id']}", bob["token"])
    assert fetched.body["mentions"] == expected
    assert (await history(api, bob, room["id"]))[-1]["mentions"] == expected
    events = await api.get(
        f"/api/v1/rooms/{room['id']}/events?after_seq={room['last_seq']}", bob["token"]
    )
    assert [event["data"]["mentions"] for event in events.body["events"]] == [expected]
    delivered = await bob_ws.event_frame(room["id"], sent["seq"])
    assert delivered["event"]["data"]["mentions"] == expected


async def test_a_message_that_names_nobody_carries_empty_mentions(
    api: ApiClient, connect: Any
) -> None:
    (alice, bob), room = await chat(api, 2)
    bob_ws = await connect(bob["token"])
    sent = await api.send(alice, room["id"], "plain")
    assert sent["mentions"] == NO_MENTIONS
    assert (await bob_ws.event_frame(room["id"], sent["seq"]))["event"]["data"][
        "mentions"
    ] == NO_MENTIONS
    assert (await history(api, bob, room["id"]))[-1]["mentions"] == NO_MENTIONS
    assert (await room_of(api, bob, room["id"]))["last_message"]["mentions"] == NO_MENTIONS


async def test_ws_send_stores_mentions_in_the_ack_the_events_and_history(
    api: ApiClient, connect: Any
) -> None:
    (alice, bob, carol), room = await chat(api)
    alice_ws, carol_ws = await connect(alice["token"]), await connect(carol["token"])

    answer = await ws_send(alice_ws, room["id"], "over ws", mentions=naming(bob, alice, bob))

    assert answer["type"] == "ack", answer
    message = answer["result"]["message"]
    expected = {"user_ids": [user_id(bob)], "room": False}
    assert message["mentions"] == expected
    delivered = await carol_ws.event_frame(room["id"], message["seq"])
    assert delivered["event"]["data"]["mentions"] == expected
    assert (await history(api, carol, room["id"]))[-1]["mentions"] == expected


async def test_rest_edit_without_mentions_keeps_them_and_with_mentions_replaces_them(
    api: ApiClient, connect: Any
) -> None:
    (alice, bob, carol), room = await chat(api)
    carol_ws = await connect(carol["token"])
    sent = await api.send(alice, room["id"], "first", mentions=naming(bob))

    kept = await edit(api, alice, sent, "second")
    assert kept["mentions"] == naming(bob)
    replaced = await edit(api, alice, sent, "third", mentions=naming(carol, room=True))
    assert replaced["mentions"] == naming(carol, room=True)

    edits = [
        event for event in await carol_ws.events(room["id"], 3) if event["type"] == "message.edited"
    ]
    assert [event["data"]["mentions"] for event in edits] == [naming(bob), naming(carol, room=True)]
    assert (await history(api, bob, room["id"]))[-1]["mentions"] == naming(carol, room=True)


async def test_ws_edit_without_mentions_keeps_them_and_with_mentions_replaces_them(
    api: ApiClient, connect: Any
) -> None:
    (alice, bob, carol), room = await chat(api)
    alice_ws = await connect(alice["token"])
    sent = await api.send(alice, room["id"], "first", mentions=naming(bob))

    kept = await ws_edit(alice_ws, sent, "second")
    assert kept["type"] == "ack" and kept["result"]["message"]["mentions"] == naming(bob), kept
    replaced = await ws_edit(alice_ws, sent, "third", mentions=naming(carol, alice))
    assert replaced["type"] == "ack", replaced
    assert replaced["result"]["message"]["mentions"] == naming(carol)
    assert (await history(api, bob, room["id"]))[-1]["mentions"] == naming(carol)


async def test_a_room_mention_is_stored_in_a_group(api: ApiClient) -> None:
    (alice, bob), room = await chat(api, 2)
    sent = await api.send(alice, room["id"], "all of you", mentions=naming(room=True))
    assert sent["mentions"] == {"user_ids": [], "room": True}
    assert (await history(api, bob, room["id"]))[-1]["mentions"] == sent["mentions"]


async def test_a_room_mention_is_ignored_in_a_direct_room(api: ApiClient, connect: Any) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.direct(alice, bob)
    bob_ws = await connect(bob["token"])

    sent = await api.send(alice, room["id"], "hey", mentions=naming(room=True))

    assert sent["mentions"] == NO_MENTIONS
    assert await mention_count(api, bob, room["id"]) == 0
    assert await feed(api, bob) == []
    marker = await api.send(alice, room["id"], "marker", mentions=naming(bob))
    before = await bob_ws.frames_before(mention_of(marker["id"]), "the marker's mention")
    assert mention_frames(before) == []


async def test_a_deleted_message_carries_empty_mentions_everywhere(
    api: ApiClient, connect: Any
) -> None:
    (alice, bob), room = await chat(api, 2)
    bob_ws = await connect(bob["token"])
    sent = await api.send(alice, room["id"], "soon gone", mentions=naming(bob, room=True))
    await bob_ws.event_frame(room["id"], sent["seq"])

    await delete(api, alice, sent)

    deletion = await bob_ws.event_frame(room["id"], sent["seq"] + 1)
    assert deletion["event"]["data"]["mentions"] == NO_MENTIONS
    assert (await history(api, bob, room["id"]))[-1]["mentions"] == NO_MENTIONS
    events = await api.get(
        f"/api/v1/rooms/{room['id']}/events?after_seq={room['last_seq']}", bob["token"]
    )
    assert [event["data"]["mentions"] for event in events.body["events"]] == [NO_MENTIONS] * 2


# Room mentions in large groups


async def test_a_plain_member_of_a_21_member_group_may_not_mention_the_room(
    api: ApiClient, connect: Any
) -> None:
    (owner, member, *others), room = await chat(api, ROOM_MENTION_LIMIT + 1)
    member_ws = await connect(member["token"])
    everyone = naming(room=True)
    before = await last_seq(api, owner, room["id"])

    by_rest = await api.post(
        f"/api/v1/rooms/{room['id']}/messages",
        {"client_msg_id": "loud", "text": "everyone!", "mentions": everyone},
        member["token"],
    )
    by_ws = await ws_send(member_ws, room["id"], "everyone!", mentions=everyone)

    assert by_rest.status == 403 and by_rest.error_code == "forbidden", by_rest.body
    assert by_rest.body["error"]["details"]["field"] == "mentions.room"
    assert by_ws["type"] == "error" and by_ws["code"] == "forbidden", by_ws
    assert by_ws["details"]["field"] == "mentions.room"
    assert await last_seq(api, owner, room["id"]) == before
    assert await history(api, owner, room["id"]) == []
    assert [await mention_count(api, user, room["id"]) for user in others[:3]] == [0, 0, 0]


async def test_a_plain_member_of_a_21_member_group_may_not_edit_in_a_room_mention(
    api: ApiClient, connect: Any
) -> None:
    (owner, member, *_), room = await chat(api, ROOM_MENTION_LIMIT + 1)
    member_ws = await connect(member["token"])
    sent = await api.send(member, room["id"], "quiet", mentions=naming(owner))
    everyone = naming(room=True)

    by_rest = await api.patch(
        f"/api/v1/rooms/{room['id']}/messages/{sent['id']}",
        {"text": "loud", "mentions": everyone},
        member["token"],
    )
    by_ws = await ws_edit(member_ws, sent, "loud", mentions=everyone)

    assert by_rest.status == 403 and by_rest.body["error"]["details"]["field"] == "mentions.room"
    assert by_ws["type"] == "error" and by_ws["code"] == "forbidden", by_ws
    assert by_ws["details"]["field"] == "mentions.room"
    assert await history(api, owner, room["id"]) == [sent]
    assert await last_seq(api, owner, room["id"]) == sent["seq"]


async def test_admins_and_the_owner_of_a_21_member_group_may_mention_the_room(
    api: ApiClient,
) -> None:
    (owner, admin, member, *_), room = await chat(api, ROOM_MENTION_LIMIT + 1)
    promoted = await api.patch(
        f"/api/v1/rooms/{room['id']}/members/{user_id(admin)}", {"role": "admin"}, owner["token"]
    )
    assert promoted.status == 200, promoted.body
    everyone = naming(room=True)

    by_admin = await api.send(admin, room["id"], "from the admin", mentions=everyone)
    by_owner = await api.send(owner, room["id"], "from the owner", mentions=everyone)

    assert by_admin["mentions"] == everyone and by_owner["mentions"] == everyone
    assert await mention_count(api, member, room["id"]) == 2
    assert await mention_count(api, admin, room["id"]) == 1


async def test_a_plain_member_of_a_20_member_group_may_mention_the_room(
    api: ApiClient, connect: Any
) -> None:
    (owner, member, other, *_), room = await chat(api, ROOM_MENTION_LIMIT)
    assert room["member_count"] == ROOM_MENTION_LIMIT
    member_ws = await connect(member["token"])
    everyone = naming(room=True)

    by_rest = await api.send(member, room["id"], "everyone", mentions=everyone)
    by_ws = await ws_send(member_ws, room["id"], "everyone again", mentions=everyone)

    assert by_rest["mentions"] == everyone
    assert by_ws["type"] == "ack" and by_ws["result"]["message"]["mentions"] == everyone, by_ws
    assert await mention_counts(api, [owner, other, member], room["id"]) == [2, 2, 0]


# Bad input changes nothing


async def test_fifty_distinct_ids_are_accepted_however_often_repeated(api: ApiClient) -> None:
    (alice, bob), room = await chat(api, 2)
    ids = [user_id(bob)] + [f"stranger{n}" for n in range(49)]
    sent = await api.send(alice, room["id"], "many", mentions={"user_ids": ids * 2, "room": False})
    assert sent["mentions"] == naming(bob)


@pytest.mark.parametrize(("mentions", "field"), BAD_MENTIONS)
async def test_bad_mentions_of_a_rest_send_answer_400_and_create_nothing(
    api: ApiClient, mentions: Any, field: str
) -> None:
    (alice, bob), room = await chat(api, 2)
    reply = await api.post(
        f"/api/v1/rooms/{room['id']}/messages",
        {"client_msg_id": "bad", "text": "x", "mentions": mentions},
        alice["token"],
    )
    assert reply.status == 400 and reply.error_code == "invalid_request", reply.body
    assert reply.body["error"]["details"]["field"] == field
    assert await history(api, alice, room["id"]) == []
    assert await last_seq(api, alice, room["id"]) == room["last_seq"]
    assert await mention_count(api, bob, room["id"]) == 0


@pytest.mark.parametrize(("mentions", "field"), BAD_MENTIONS)
async def test_bad_mentions_of_a_rest_edit_answer_400_and_change_nothing(
    api: ApiClient, mentions: Any, field: str
) -> None:
    (alice, bob), room = await chat(api, 2)
    sent = await api.send(alice, room["id"], "as sent", mentions=naming(bob))
    reply = await api.patch(
        f"/api/v1/rooms/{room['id']}/messages/{sent['id']}",
        {"text": "changed", "mentions": mentions},
        alice["token"],
    )
    assert reply.status == 400 and reply.error_code == "invalid_request", reply.body
    assert reply.body["error"]["details"]["field"] == field
    assert await history(api, alice, room["id"]) == [sent]
    assert await last_seq(api, alice, room["id"]) == sent["seq"]
    assert await mention_count(api, bob, room["id"]) == 1


@pytest.mark.parametrize(("mentions", "field"), BAD_MENTIONS)
async def test_bad_mentions_of_a_ws_send_answer_an_error_frame_and_create_nothing(
    api: ApiClient, connect: Any, mentions: Any, field: str
) -> None:
    (alice, bob), room = await chat(api, 2)
    ws = await connect(alice["token"])
    answer = await ws_send(ws, room["id"], "bad", mentions=mentions)
    assert answer["type"] == "error" and answer["code"] == "invalid_request", answer
    assert answer["details"]["field"] == field
    assert (await ws.request({"type": "ping"}))["type"] == "pong"
    assert await history(api, alice, room["id"]) == []
    assert await last_seq(api, alice, room["id"]) == room["last_seq"]
    assert await mention_count(api, bob, room["id"]) == 0


@pytest.mark.parametrize(("mentions", "field"), BAD_MENTIONS)
async def test_bad_mentions_of_a_ws_edit_answer_an_error_frame_and_change_nothing(
    api: ApiClient, connect: Any, mentions: Any, field: str
) -> None:
    (alice, bob), room = await chat(api, 2)
    ws = await connect(alice["token"])
    sent = await api.send(alice, room["id"], "as sent", mentions=naming(bob))
    answer = await ws_edit(ws, sent, "changed", mentions=mentions)
    assert answer["type"] == "error" and answer["code"] == "invalid_request", answer
    assert answer["details"]["field"] == field
    assert (await ws.request({"type": "ping"}))["type"] == "pong"
    assert await history(api, alice, room["id"]) == [sent]
    assert await last_seq(api, alice, room["id"]) == sent["seq"]
    assert await mention_count(api, bob, room["id"]) == 1


# unread_mention_count, live and listed


async def test_each_member_sees_their_own_mention_count_live_and_in_the_room_list(
    api: ApiClient, connect: Any
) -> None:
    users, room = await chat(api, 4)
    alice, bob, carol, dave = users
    sockets = [await connect(user["token"]) for user in users]

    named = await api.send(alice, room["id"], "bob?", mentions=naming(bob))
    plain = await api.send(carol, room["id"], "nobody")
    everyone = await api.send(alice, room["id"], "all?", mentions=naming(room=True))

    expected = {
        named["seq"]: [0, 1, 0, 0],
        plain["seq"]: [0, 1, 0, 0],
        everyone["seq"]: [0, 2, 1, 1],
    }
    for seq, counts in expected.items():
        live = [(await summary_at(ws, room["id"], seq, ("event",))) for ws in sockets]
        assert [summary["unread_mention_count"] for summary in live] == counts, seq
    assert await mention_counts(api, users, room["id"]) == [0, 2, 1, 1]
    assert (await room_of(api, dave, room["id"]))["unread_count"] == 3


async def test_a_room_mention_counts_once_for_a_member_also_named(api: ApiClient) -> None:
    (alice, bob, carol), room = await chat(api)
    sent = await api.send(alice, room["id"], "bob and all", mentions=naming(bob, room=True))
    assert await mention_counts(api, [alice, bob, carol], room["id"]) == [0, 1, 1]
    assert [(m["message"]["id"], m["kind"]) for m in await feed(api, bob)] == [(sent["id"], "user")]
    assert [(m["message"]["id"], m["kind"]) for m in await feed(api, carol)] == [
        (sent["id"], "room")
    ]


async def test_a_read_on_one_device_clears_the_mention_count_on_both(
    api: ApiClient, connect: Any
) -> None:
    (alice, bob), room = await chat(api, 2)
    phone, laptop = await connect(bob["token"]), await connect(bob["token"])
    first = await api.send(alice, room["id"], "one", mentions=naming(bob))
    second = await api.send(alice, room["id"], "two", mentions=naming(bob))
    for device in (phone, laptop):
        assert (await summary_at(device, room["id"], second["seq"]))["unread_mention_count"] == 2

    answer = await phone.request({"type": "read", "room_id": room["id"], "seq": first["seq"]})
    assert answer["result"] == {
        "last_read_seq": first["seq"],
        "unread_count": 1,
        "unread_mention_count": 1,
    }
    for device in (phone, laptop):
        summary = await summary_at(device, room["id"], second["seq"], ("room.summary",))
        assert (summary["last_read_seq"], summary["unread_mention_count"]) == (first["seq"], 1)
    third = await api.send(alice, room["id"], "three", mentions=naming(bob))
    for device in (phone, laptop):  # counted on from the read
        assert (await summary_at(device, room["id"], third["seq"]))["unread_mention_count"] == 2
    assert await mention_count(api, bob, room["id"]) == 2

    assert await read(api, bob, room["id"], third["seq"]) == {
        "last_read_seq": third["seq"],
        "unread_count": 0,
        "unread_mention_count": 0,
    }
    for device in (phone, laptop):
        summary = await summary_at(device, room["id"], third["seq"], ("room.summary",))
        assert (summary["last_read_seq"], summary["unread_mention_count"]) == (third["seq"], 0)
    assert await mention_count(api, bob, room["id"]) == 0


async def test_deleting_the_mentioning_message_takes_it_off_the_count(
    api: ApiClient, connect: Any
) -> None:
    (alice, bob, carol), room = await chat(api)
    bob_ws, carol_ws = await connect(bob["token"]), await connect(carol["token"])
    sent = await api.send(alice, room["id"], "bob!", mentions=naming(bob, room=True))
    assert (await summary_at(bob_ws, room["id"], sent["seq"]))["unread_mention_count"] == 1

    await delete(api, alice, sent)

    for ws in (bob_ws, carol_ws):
        assert (await summary_at(ws, room["id"], sent["seq"] + 1))["unread_mention_count"] == 0
    assert await mention_counts(api, [bob, carol], room["id"]) == [0, 0]


async def test_an_edit_that_adds_a_mention_counts_it_and_alerts_only_the_newly_named(
    api: ApiClient, connect: Any
) -> None:
    (alice, bob, carol), room = await chat(api)
    bob_ws, carol_ws = await connect(bob["token"]), await connect(carol["token"])
    sent = await api.send(alice, room["id"], "bob?", mentions=naming(bob))
    await bob_ws.wait_for(mention_of(sent["id"]), "bob's first mention")

    await edit(api, alice, sent, "bob and carol?", mentions=naming(bob, carol))
    edit_seq = sent["seq"] + 1

    assert (await summary_at(carol_ws, room["id"], edit_seq))["unread_mention_count"] == 1
    alert = await carol_ws.wait_for(mention_of(sent["id"]), "carol's mention of the edit")
    assert alert["mention"]["kind"] == "user" and alert["mention"]["seq"] == sent["seq"]
    assert alert["mention"]["message"]["text"] == "bob and carol?"
    assert await mention_counts(api, [bob, carol], room["id"]) == [1, 1]
    marker = await api.send(alice, room["id"], "marker", mentions=naming(bob))
    before = await bob_ws.frames_before(mention_of(marker["id"]), "the marker's mention")
    assert mention_frames(before) == []


async def test_an_edit_that_drops_a_mention_takes_it_off_the_count_and_the_feed(
    api: ApiClient, connect: Any
) -> None:
    (alice, bob, carol), room = await chat(api)
    bob_ws, carol_ws = await connect(bob["token"]), await connect(carol["token"])
    sent = await api.send(alice, room["id"], "bob and carol?", mentions=naming(bob, carol))
    await carol_ws.wait_for(mention_of(sent["id"]), "carol's first mention")

    await edit(api, alice, sent, "only carol", mentions=naming(carol))

    assert (await summary_at(bob_ws, room["id"], sent["seq"] + 1))["unread_mention_count"] == 0
    assert await mention_counts(api, [bob, carol], room["id"]) == [0, 1]
    assert await feed(api, bob) == []
    assert await fed_messages(api, carol) == [sent["id"]]
    marker = await api.send(alice, room["id"], "marker", mentions=naming(carol))
    before = await carol_ws.frames_before(mention_of(marker["id"]), "the marker's mention")
    assert mention_frames(before) == []


async def test_an_edit_from_a_user_mention_to_a_room_mention_keeps_one_count(
    api: ApiClient,
) -> None:
    (alice, bob, carol), room = await chat(api)
    sent = await api.send(alice, room["id"], "bob?", mentions=naming(bob))
    await edit(api, alice, sent, "everyone?", mentions=naming(room=True))
    assert await mention_counts(api, [alice, bob, carol], room["id"]) == [0, 1, 1]
    assert [m["kind"] for m in await feed(api, bob)] == ["room"]


async def test_a_member_who_leaves_loses_the_rooms_mentions_from_the_feed(api: ApiClient) -> None:
    (alice, bob), room = await chat(api, 2)
    other = await api.group(alice, bob, name="Other")
    await api.send(alice, room["id"], "bob?", mentions=naming(bob))
    await api.send(alice, room["id"], "all?", mentions=naming(room=True))
    kept = await api.send(alice, other["id"], "bob, here", mentions=naming(bob))

    left = await api.delete(f"/api/v1/rooms/{room['id']}/members/{user_id(bob)}", bob["token"])

    assert left.status == 204, left.body
    assert await fed_messages(api, bob) == [kept["id"]]
    assert await feed(api, bob, f"&room_id={room['id']}") == []
    assert await mention_count(api, bob, other["id"]) == 1


async def test_an_edit_naming_a_member_who_read_past_it_alerts_as_read_and_counts_nothing(
    api: ApiClient, connect: Any
) -> None:
    (alice, bob), room = await chat(api, 2)
    bob_ws = await connect(bob["token"])
    sent = await api.send(alice, room["id"], "no one yet")
    later = await api.send(alice, room["id"], "later")
    await read(api, bob, room["id"], later["seq"])

    await edit(api, alice, sent, "bob, look", mentions=naming(bob))

    alert = await bob_ws.wait_for(mention_of(sent["id"]), "the mention of the edit")
    assert (alert["mention"]["kind"], alert["mention"]["read"]) == ("user", True)
    assert await mention_count(api, bob, room["id"]) == 0
    assert [(m["message"]["id"], m["read"]) for m in await feed(api, bob)] == [(sent["id"], True)]


async def test_an_edit_naming_a_newcomer_in_an_earlier_message_lists_it_in_their_feed(
    api: ApiClient, connect: Any
) -> None:
    (alice, bob), room = await chat(api, 2)
    sent = await api.send(alice, room["id"], "before you came")
    newcomer = await api.register()
    added = await api.post(
        f"/api/v1/rooms/{room['id']}/members", {"user_id": user_id(newcomer)}, alice["token"]
    )
    assert added.status == 201, added.body
    newcomer_ws = await connect(newcomer["token"])

    await edit(api, alice, sent, "welcome, newcomer", mentions=naming(newcomer))

    alert = await newcomer_ws.wait_for(mention_of(sent["id"]), "the newcomer's mention")
    assert alert["mention"]["kind"] == "user"
    assert [m["id"] for m in await feed(api, newcomer)] == [alert["mention"]["id"]]


async def test_blocking_a_sender_takes_their_mentions_off_an_open_sockets_count_and_the_feed(
    api: ApiClient, connect: Any
) -> None:
    (alice, bob, carol), room = await chat(api)
    bob_ws = await connect(bob["token"])
    await api.send(alice, room["id"], "bob?", mentions=naming(bob))
    await api.send(alice, room["id"], "all?", mentions=naming(room=True))
    kept = await api.send(carol, room["id"], "bob, from carol", mentions=naming(bob))
    assert (await summary_at(bob_ws, room["id"], kept["seq"]))["unread_mention_count"] == 3

    blocked = await api.put(f"/api/v1/users/me/blocks/{user_id(alice)}", None, bob["token"])

    assert blocked.status == 204, blocked.body
    assert await mention_count(api, bob, room["id"]) == 1
    assert await fed_messages(api, bob) == [kept["id"]]
    plain = await api.send(carol, room["id"], "plain")
    assert (await summary_at(bob_ws, room["id"], plain["seq"]))["unread_mention_count"] == 1


# The mention frame


async def test_every_socket_of_a_named_user_gets_a_mention_frame_after_the_event(
    api: ApiClient, connect: Any
) -> None:
    (alice, bob, carol), room = await chat(api)
    alice_ws, carol_ws = await connect(alice["token"]), await connect(carol["token"])
    phone, laptop = await connect(bob["token"]), await connect(bob["token"])

    sent = await api.send(alice, room["id"], "bob?", mentions=naming(bob))

    for device in (phone, laptop):
        alert = await device.wait_for(mention_of(sent["id"]), "bob's mention")
        came_before = device.backlog  # what the socket read before the mention
        assert any(event_of(room["id"], sent["seq"])(frame) for frame in came_before), came_before
        assert set(alert) == {"type", "mention", "notify"} and alert["notify"] is True
        mention = alert["mention"]
        assert set(mention) == MENTION_FIELDS
        assert (mention["room_id"], mention["seq"], mention["kind"]) == (
            room["id"],
            sent["seq"],
            "user",
        )
        assert mention["message"] == sent and mention["read"] is False
        assert mention["created_at"].endswith("Z")
        assert [m["id"] for m in await feed(api, bob)] == [mention["id"]]
    marker = await api.send(bob, room["id"], "marker", mentions=naming(alice, carol))
    for ws in (alice_ws, carol_ws):
        before = await ws.frames_before(mention_of(marker["id"]), "the marker's mention")
        assert mention_frames(before) == []


async def test_a_room_mention_alerts_every_member_but_the_sender(
    api: ApiClient, connect: Any
) -> None:
    (alice, bob, carol), room = await chat(api)
    sockets = [await connect(user["token"]) for user in (alice, bob, carol)]
    sent = await api.send(alice, room["id"], "all?", mentions=naming(room=True))
    for ws in sockets[1:]:
        alert = await ws.wait_for(mention_of(sent["id"]), "the room mention")
        assert alert["mention"]["kind"] == "room" and alert["notify"] is True
    marker = await api.send(bob, room["id"], "marker", mentions=naming(alice))
    before = await sockets[0].frames_before(mention_of(marker["id"]), "the marker's mention")
    assert mention_frames(before) == []


async def test_a_ws_send_alerts_the_named_user(api: ApiClient, connect: Any) -> None:
    (alice, bob), room = await chat(api, 2)
    alice_ws, bob_ws = await connect(alice["token"]), await connect(bob["token"])
    answer = await ws_send(alice_ws, room["id"], "over ws", mentions=naming(bob))
    message = answer["result"]["message"]
    alert = await bob_ws.wait_for(mention_of(message["id"]), "the mention")
    assert alert["mention"]["message"] == message


# The mention feed


async def test_the_feed_lists_mentions_newest_first_across_rooms(api: ApiClient) -> None:
    (alice, bob, carol), room = await chat(api)
    other = await api.group(carol, bob, name="Other")
    sent = [
        await api.send(alice, room["id"], "one", mentions=naming(bob)),
        await api.send(carol, other["id"], "two", mentions=naming(room=True)),
        await api.send(alice, room["id"], "not for bob", mentions=naming(carol)),
        await api.send(carol, room["id"], "three", mentions=naming(bob, room=True)),
    ]
    mentions = await feed(api, bob)
    assert [m["message"]["id"] for m in mentions] == [sent[3]["id"], sent[1]["id"], sent[0]["id"]]
    assert [(m["room_id"], m["seq"], m["kind"]) for m in mentions] == [
        (room["id"], sent[3]["seq"], "user"),
        (other["id"], sent[1]["seq"], "room"),
        (room["id"], sent[0]["seq"], "user"),
    ]
    assert all(set(m) == MENTION_FIELDS and m["read"] is False for m in mentions)
    assert [m["message"] for m in mentions] == [sent[3], sent[1], sent[0]]
    assert len({m["id"] for m in mentions}) == 3


async def test_the_feed_pages_by_cursor_without_repeats_or_holes(api: ApiClient) -> None:
    (alice, bob), room = await chat(api, 2)
    sent = await asyncio.gather(  # at once, so that some share a millisecond
        *[api.send(alice, room["id"], f"m{n}", mentions=naming(bob)) for n in range(9)]
    )
    whole = await fed_messages(api, bob)
    assert sorted(whole) == sorted(message["id"] for message in sent)
    pages: list[list[str]] = []
    cursor = ""
    while True:
        reply = await api.get(f"{FEED}?limit=2{cursor}", bob["token"])
        assert reply.status == 200, reply.body
        pages.append([m["message"]["id"] for m in reply.body["mentions"]])
        if len(pages) == 1:  # a newer mention while paging moves no page after the first
            await api.send(alice, room["id"], "newer", mentions=naming(bob))
        if reply.body["next_cursor"] is None:
            break
        cursor = f"&cursor={quote(reply.body['next_cursor'])}"
    assert [len(page) for page in pages] == [2, 2, 2, 2, 1]
    assert sum(pages, []) == whole


async def test_the_feed_filters_unread_mentions_and_one_room(api: ApiClient) -> None:
    (alice, bob), room = await chat(api, 2)
    other = await api.group(alice, bob, name="Other")
    old = await api.send(alice, room["id"], "old", mentions=naming(bob))
    new = await api.send(alice, room["id"], "new", mentions=naming(bob))
    elsewhere = await api.send(alice, other["id"], "elsewhere", mentions=naming(bob))
    await read(api, bob, room["id"], old["seq"])

    assert await fed_messages(api, bob, "&unread=true") == [elsewhere["id"], new["id"]]
    assert old["id"] in await fed_messages(api, bob, "&unread=false")
    assert await fed_messages(api, bob, f"&room_id={room['id']}") == [new["id"], old["id"]]
    assert await fed_messages(api, bob, f"&room_id={room['id']}&unread=true") == [new["id"]]
    stranger_room = await api.group(alice, name="Not bob's")
    await api.send(alice, stranger_room["id"], "all", mentions=naming(room=True))
    assert await feed(api, bob, f"&room_id={stranger_room['id']}") == []


async def test_reading_the_room_marks_its_mentions_read_in_the_feed(
    api: ApiClient, connect: Any
) -> None:
    (alice, bob), room = await chat(api, 2)
    bob_ws = await connect(bob["token"])
    sent = [await api.send(alice, room["id"], f"m{n}", mentions=naming(bob)) for n in range(3)]
    assert [m["read"] for m in await feed(api, bob)] == [False, False, False]

    await read(api, bob, room["id"], sent[0]["seq"])
    assert [m["read"] for m in await feed(api, bob)] == [False, False, True]
    answer = await bob_ws.request({"type": "read", "room_id": room["id"], "seq": sent[2]["seq"]})
    assert answer["type"] == "ack", answer
    assert [m["read"] for m in await feed(api, bob)] == [True, True, True]
    assert await feed(api, bob, "&unread=true") == []


async def test_deleted_messages_drop_out_of_the_feed(api: ApiClient) -> None:
    (alice, bob, carol), room = await chat(api)
    kept = await api.send(alice, room["id"], "kept", mentions=naming(bob))
    by_sender = await api.send(carol, room["id"], "gone", mentions=naming(bob))
    by_owner = await api.send(carol, room["id"], "removed", mentions=naming(room=True))
    await delete(api, carol, by_sender)
    await delete(api, alice, by_owner)
    assert await fed_messages(api, bob) == [kept["id"]]


async def test_room_mentions_from_before_joining_are_not_listed(api: ApiClient) -> None:
    (alice, bob), room = await chat(api, 2)
    newcomer = await api.register()
    await api.send(alice, room["id"], "before", mentions=naming(room=True))
    added = await api.post(
        f"/api/v1/rooms/{room['id']}/members", {"user_id": user_id(newcomer)}, alice["token"]
    )
    assert added.status == 201, added.body
    assert await feed(api, newcomer) == []
    assert await mention_count(api, newcomer, room["id"]) == 0

    after = await api.send(bob, room["id"], "after", mentions=naming(room=True))
    assert await fed_messages(api, newcomer) == [after["id"]]
    assert await mention_count(api, newcomer, room["id"]) == 1


async def test_a_deleted_room_drops_out_of_the_feed(api: ApiClient) -> None:
    (alice, bob), room = await chat(api, 2)
    other = await api.group(alice, bob, name="Other")
    await api.send(alice, room["id"], "bob?", mentions=naming(bob))
    kept = await api.send(alice, other["id"], "bob, here", mentions=naming(bob))
    assert (await api.delete(f"/api/v1/rooms/{room['id']}", alice["token"])).status == 204
    assert await fed_messages(api, bob) == [kept["id"]]


async def test_own_messages_are_never_in_the_senders_feed_or_count(api: ApiClient) -> None:
    (alice, bob), room = await chat(api, 2)
    await api.send(alice, room["id"], "me and all", mentions=naming(alice, room=True))
    assert await feed(api, alice) == []
    assert await mention_count(api, alice, room["id"]) == 0


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("cursor=forged", "cursor"),
        pytest.param(f"cursor={MADE_UP_CURSOR}", "cursor", id="cursor-made-up-position"),
        pytest.param("cursor=eyJpZCI6ICIxIn0", "cursor", id="cursor-base64-json"),
        ("limit=0", "limit"),
        ("limit=1000", "limit"),
        ("limit=101", "limit"),
        ("limit=many", "limit"),
        ("unread=yes", "unread"),
        ("unread=1", "unread"),
    ],
)
async def test_the_feed_refuses_bad_queries(api: ApiClient, query: str, field: str) -> None:
    alice = await api.register()
    reply = await api.get(f"{FEED}?{query}", alice["token"])
    assert reply.status == 400 and reply.error_code == "invalid_request", reply.body
    assert reply.body["error"]["details"]["field"] == field


async def test_the_feed_takes_limits_of_one_and_a_hundred(api: ApiClient) -> None:
    (alice, bob), room = await chat(api, 2)
    for n in range(2):
        await api.send(alice, room["id"], f"m{n}", mentions=naming(bob))
    one = await api.get(f"{FEED}?limit=1", bob["token"])
    assert one.status == 200 and len(one.body["mentions"]) == 1 and one.body["next_cursor"]
    hundred = await api.get(f"{FEED}?limit=100", bob["token"])
    assert hundred.status == 200 and len(hundred.body["mentions"]) == 2
    assert hundred.body["next_cursor"] is None


# Across two processes on Redis


async def test_a_mention_and_the_summaries_reach_sockets_on_the_other_process(
    two_servers: tuple[Server, Server], client: AsyncHTTPClient
) -> None:
    first, second = two_servers
    on_first, on_second = ApiClient(client, first.url), ApiClient(client, second.url)
    (alice, bob), room = await chat(on_first, 2)
    phone = await WsClient.connect(second.url, bob["token"])
    laptop = await WsClient.connect(second.url, bob["token"])
    try:
        sent = await on_first.send(alice, room["id"], "bob, there?", mentions=naming(bob))
        for device in (phone, laptop):
            alert = await device.wait_for(mention_of(sent["id"]), "the mention across processes")
            assert alert["notify"] is True and alert["mention"]["kind"] == "user"
            assert alert["mention"]["message"]["mentions"] == naming(bob)
            delivered = [f for f in device.backlog if event_of(room["id"], sent["seq"])(f)]
            assert len(delivered) == 1, f"expected the event before the mention: {device.backlog}"
            assert delivered[0]["room"]["unread_mention_count"] == 1

        await read(on_first, bob, room["id"], sent["seq"])
        for device in (phone, laptop):
            summary = await summary_at(device, room["id"], sent["seq"], ("room.summary",))
            assert summary["unread_mention_count"] == 0
        assert await mention_count(on_second, bob, room["id"]) == 0
    finally:
        phone.close()
        laptop.close()


async def test_an_edit_and_a_deletion_on_one_process_move_counts_on_the_other(
    two_servers: tuple[Server, Server], client: AsyncHTTPClient
) -> None:
    first, second = two_servers
    on_first, on_second = ApiClient(client, first.url), ApiClient(client, second.url)
    (alice, bob), room = await chat(on_first, 2)
    bob_ws = await WsClient.connect(second.url, bob["token"])
    try:
        sent = await on_first.send(alice, room["id"], "nobody yet")
        await edit(on_first, alice, sent, "bob?", mentions=naming(bob))
        assert (await summary_at(bob_ws, room["id"], sent["seq"] + 1))["unread_mention_count"] == 1
        alert = await bob_ws.wait_for(mention_of(sent["id"]), "the mention of the edit")
        assert alert["mention"]["message"]["text"] == "bob?"

        await delete(on_first, alice, sent)
        assert (await summary_at(bob_ws, room["id"], sent["seq"] + 2))["unread_mention_count"] == 0
        assert await mention_count(on_second, bob, room["id"]) == 0
    finally:
        bob_ws.close()
