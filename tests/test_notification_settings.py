"""Notification settings per member and room: ``level``, ``room_mentions`` and
``muted_until``, set with PUT /rooms/{id}/notifications, shown in room objects and
summaries, synced to every socket of the user (on every process), never touching unread
counts, and deciding ``notify`` in the ``mention`` frame."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from test_mentions import (
    chat,
    mention_count,
    mention_of,
    naming,
    room_of,
    summary_at,
    user_id,
)
from test_scale import Server, client, redis_url, server_env, two_servers
from test_summaries import SUMMARY_FIELDS
from tornado.httpclient import AsyncHTTPClient

from clients import ApiClient, Frame, Reply, User, WsClient, event_of

__all__ = ["client", "redis_url", "server_env", "two_servers"]  # fixtures of test_scale

pytestmark = pytest.mark.gen_test(timeout=60)

DEFAULTS = {"level": "all", "room_mentions": True, "muted_until": None}
SUMMARY_COUNTS = ("unread_count", "unread_mention_count", "last_read_seq", "last_seq")
PAST, FUTURE = "<an hour ago>", "<in an hour>"  # stand-ins, made real times at run time


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def hours_from_now(hours: float) -> str:
    return rfc3339(datetime.now(UTC) + timedelta(hours=hours))


def with_times(body: Any) -> Any:
    """The body with its stand-ins for a past and a future time replaced by real ones."""
    if not isinstance(body, dict):
        return body
    times = {PAST: hours_from_now(-1), FUTURE: hours_from_now(1)}
    return {
        key: times.get(value, value) if isinstance(value, str) else value
        for key, value in body.items()
    }


async def put_settings(api: ApiClient, user: User, room_id: str, body: Any) -> Reply:
    return await api.put(f"/api/v1/rooms/{room_id}/notifications", body, user["token"])


async def set_settings(api: ApiClient, user: User, room_id: str, **fields: Any) -> dict[str, Any]:
    """PUT these settings (stand-ins for times made real); answers the settings as answered."""
    reply = await put_settings(api, user, room_id, with_times(fields))
    assert reply.status == 200, f"PUT settings: expected 200, got {reply.status} {reply.body}"
    return reply.body


async def settings_of(api: ApiClient, user: User, room_id: str) -> dict[str, Any]:
    """The user's settings of the room, as GET /rooms/{id} shows them, checked to be what
    GET /rooms lists too."""
    single = (await room_of(api, user, room_id))["notifications"]
    listed = await api.get("/api/v1/rooms?limit=100", user["token"])
    assert [r["notifications"] for r in listed.body["rooms"] if r["id"] == room_id] == [single]
    return single


def counts(room: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(room[field] for field in SUMMARY_COUNTS)


async def notify_of_mention(
    api: ApiClient, sender: User, ws: WsClient, room_id: str, mentions: dict[str, Any]
) -> tuple[str, bool]:
    """Send a message with these mentions; answer the (kind, notify) of the ``mention``
    frame that reaches the socket."""
    sent = await api.send(sender, room_id, "ping", mentions=mentions)
    frame = await ws.wait_for(mention_of(sent["id"]), "the mention frame")
    return frame["mention"]["kind"], frame["notify"]


def room_summaries(frames: list[Frame]) -> list[Frame]:
    return [frame for frame in frames if frame["type"] == "room.summary"]


# Defaults and changes


async def test_settings_default_to_all_with_room_mentions_and_no_mute(
    api: ApiClient, connect: Any
) -> None:
    (alice, bob), room = await chat(api, 2)
    direct = await api.direct(alice, bob)
    assert room["notifications"] == DEFAULTS and direct["notifications"] == DEFAULTS
    bob_ws = await connect(bob["token"])
    for room_id in (room["id"], direct["id"]):
        assert await settings_of(api, bob, room_id) == DEFAULTS
        sent = await api.send(alice, room_id, "hello")
        assert (await summary_at(bob_ws, room_id, sent["seq"]))["notifications"] == DEFAULTS


async def test_each_setting_changes_alone_and_unmuting_takes_null(api: ApiClient) -> None:
    (_, bob), room = await chat(api, 2)
    muted_until = hours_from_now(2)
    steps = [  # a change, and the (level, room_mentions, muted_until) after it
        ({"level": "mentions"}, ("mentions", True, None)),
        ({"room_mentions": False}, ("mentions", False, None)),
        ({"muted_until": muted_until}, ("mentions", False, muted_until)),
        ({"level": "none"}, ("none", False, muted_until)),
        ({}, ("none", False, muted_until)),
        ({"muted_until": None}, ("none", False, None)),
        ({"level": "all", "room_mentions": True}, ("all", True, None)),
    ]
    for body, values in steps:
        expected = dict(zip(("level", "room_mentions", "muted_until"), values, strict=True))
        assert await set_settings(api, bob, room["id"], **body) == expected, body
        assert await settings_of(api, bob, room["id"]) == expected, body


async def test_settings_are_each_members_own(api: ApiClient) -> None:
    (alice, bob), room = await chat(api, 2)
    other = await api.group(alice, bob, name="Other")
    await set_settings(api, bob, room["id"], level="none", muted_until=FUTURE)
    assert await settings_of(api, alice, room["id"]) == DEFAULTS
    assert await settings_of(api, bob, other["id"]) == DEFAULTS


# Bad input changes nothing


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"level": "loud"}, "level", id="unknown-level"),
        pytest.param({"level": "ALL"}, "level", id="level-in-capitals"),
        pytest.param({"level": 1}, "level", id="level-a-number"),
        pytest.param({"room_mentions": "no"}, "room_mentions", id="room-mentions-a-string"),
        pytest.param({"room_mentions": 0}, "room_mentions", id="room-mentions-a-number"),
        pytest.param({"muted_until": PAST}, "muted_until", id="muted-until-past"),
        pytest.param({"muted_until": "tomorrow"}, "muted_until", id="muted-until-not-a-time"),
        pytest.param({"muted_until": 1893456000}, "muted_until", id="muted-until-a-number"),
        pytest.param({"level": "all", "room_mentions": "x"}, "room_mentions", id="one-bad-of-two"),
        pytest.param({"muted_until": FUTURE, "level": "loud"}, "level", id="good-time-bad-level"),
    ],
)
async def test_bad_settings_answer_400_naming_the_field_and_change_nothing(
    api: ApiClient, body: dict[str, Any], field: str
) -> None:
    (_, bob), room = await chat(api, 2)
    before = await set_settings(api, bob, room["id"], level="mentions", room_mentions=False)

    reply = await put_settings(api, bob, room["id"], with_times(body))

    assert reply.status == 400 and reply.error_code == "invalid_request", reply.body
    assert reply.body["error"]["details"]["field"] == field
    assert await settings_of(api, bob, room["id"]) == before


async def test_settings_that_are_not_an_object_answer_400_and_change_nothing(
    api: ApiClient,
) -> None:
    (_, bob), room = await chat(api, 2)
    for body in (["none"], "none"):
        reply = await put_settings(api, bob, room["id"], body)
        assert reply.status == 400 and reply.error_code == "invalid_request", reply.body
    assert await settings_of(api, bob, room["id"]) == DEFAULTS


async def test_a_non_member_gets_404_for_a_rooms_settings(api: ApiClient) -> None:
    (alice, bob), room = await chat(api, 2)
    outsider = await api.register()
    for room_id in (room["id"], "no-such-room"):
        reply = await put_settings(api, outsider, room_id, {"level": "none"})
        assert reply.status == 404 and reply.error_code == "not_found", reply.body
    left = await api.delete(f"/api/v1/rooms/{room['id']}/members/{user_id(bob)}", bob["token"])
    assert left.status == 204
    gone = await put_settings(api, bob, room["id"], {"level": "none"})
    assert gone.status == 404 and gone.error_code == "not_found", gone.body
    assert await settings_of(api, alice, room["id"]) == DEFAULTS


# Synced, and never counting


async def test_a_settings_change_reaches_every_socket_of_the_user_as_a_room_summary(
    api: ApiClient, connect: Any
) -> None:
    (alice, bob), room = await chat(api, 2)
    await api.send(alice, room["id"], "one", mentions=naming(bob))
    alice_ws = await connect(alice["token"])
    phone, laptop = await connect(bob["token"]), await connect(bob["token"])
    before = await room_of(api, bob, room["id"])

    answered = await set_settings(api, bob, room["id"], level="mentions", muted_until=FUTURE)

    for device in (phone, laptop):
        summary = (await device.expect("room.summary"))["room"]
        assert list(summary) == SUMMARY_FIELDS
        assert summary["id"] == room["id"] and summary["notifications"] == answered
        assert counts(summary) == counts(before)
    marker = await api.send(bob, room["id"], "marker")
    seen_by_alice = await alice_ws.frames_before(event_of(room["id"], marker["seq"]), "marker")
    assert room_summaries(seen_by_alice) == []


async def test_summaries_of_later_events_carry_the_new_settings(
    api: ApiClient, connect: Any
) -> None:
    (alice, bob), room = await chat(api, 2)
    bob_ws = await connect(bob["token"])
    answered = await set_settings(api, bob, room["id"], level="none")
    sent = await api.send(alice, room["id"], "after the change")
    assert (await summary_at(bob_ws, room["id"], sent["seq"], ("event",)))["notifications"] == (
        answered
    )


async def test_settings_never_change_unread_counts(api: ApiClient, connect: Any) -> None:
    (alice, bob), room = await chat(api, 2)
    await api.send(alice, room["id"], "plain")
    await api.send(alice, room["id"], "bob?", mentions=naming(bob))
    bob_ws = await connect(bob["token"])
    before = await room_of(api, bob, room["id"])
    assert (before["unread_count"], before["unread_mention_count"]) == (2, 1)

    for change in ({"level": "none"}, {"room_mentions": False}, {"muted_until": FUTURE}):
        await set_settings(api, bob, room["id"], **change)
        assert counts((await bob_ws.expect("room.summary"))["room"]) == counts(before), change
        assert counts(await room_of(api, bob, room["id"])) == counts(before), change

    sent = await api.send(alice, room["id"], "all?", mentions=naming(room=True))
    live = await summary_at(bob_ws, room["id"], sent["seq"], ("event",))
    assert (live["unread_count"], live["unread_mention_count"]) == (3, 2)
    assert await mention_count(api, bob, room["id"]) == 2


# notify in the mention frame


@pytest.mark.parametrize(
    ("chosen", "named", "room_mention", "kind", "notify"),
    [
        pytest.param({}, True, False, "user", True, id="all-user"),
        pytest.param({}, False, True, "room", True, id="all-room"),
        pytest.param({"room_mentions": False}, False, True, "room", True, id="all-room-off"),
        pytest.param({"level": "mentions"}, True, False, "user", True, id="mentions-user"),
        pytest.param({"level": "mentions"}, False, True, "room", True, id="mentions-room-on"),
        pytest.param(
            {"level": "mentions", "room_mentions": False},
            False,
            True,
            "room",
            False,
            id="mentions-room-off",
        ),
        pytest.param(
            {"level": "mentions", "room_mentions": False},
            True,
            False,
            "user",
            True,
            id="mentions-room-off-user",
        ),
        pytest.param(
            {"level": "mentions", "room_mentions": False},
            True,
            True,
            "user",
            True,
            id="mentions-room-off-named-too",
        ),
        pytest.param({"level": "none"}, True, False, "user", False, id="none-user"),
        pytest.param({"level": "none"}, False, True, "room", False, id="none-room"),
        pytest.param({"muted_until": FUTURE}, True, False, "user", False, id="muted-user"),
        pytest.param({"muted_until": FUTURE}, False, True, "room", False, id="muted-room"),
        pytest.param(
            {"level": "mentions", "muted_until": FUTURE},
            True,
            False,
            "user",
            False,
            id="mentions-muted-user",
        ),
    ],
)
async def test_notify_follows_the_settings(
    api: ApiClient,
    connect: Any,
    chosen: dict[str, Any],
    named: bool,
    room_mention: bool,
    kind: str,
    notify: bool,
) -> None:
    (alice, bob), room = await chat(api, 2)
    if chosen:
        await set_settings(api, bob, room["id"], **chosen)
    bob_ws = await connect(bob["token"])
    mentions = naming(bob, room=room_mention) if named else naming(room=room_mention)
    assert await notify_of_mention(api, alice, bob_ws, room["id"], mentions) == (kind, notify)
    assert await mention_count(api, bob, room["id"]) == 1


async def test_unmuting_lets_mentions_notify_again(api: ApiClient, connect: Any) -> None:
    (alice, bob), room = await chat(api, 2)
    bob_ws = await connect(bob["token"])
    await set_settings(api, bob, room["id"], muted_until=FUTURE)
    assert await notify_of_mention(api, alice, bob_ws, room["id"], naming(bob)) == ("user", False)
    await set_settings(api, bob, room["id"], muted_until=None)
    assert await notify_of_mention(api, alice, bob_ws, room["id"], naming(bob)) == ("user", True)


async def test_one_members_settings_do_not_silence_another(api: ApiClient, connect: Any) -> None:
    (alice, bob, carol), room = await chat(api, 3)
    await set_settings(api, bob, room["id"], level="none")
    bob_ws, carol_ws = await connect(bob["token"]), await connect(carol["token"])
    sent = await api.send(alice, room["id"], "both?", mentions=naming(bob, carol))
    bob_alert = await bob_ws.wait_for(mention_of(sent["id"]), "bob's mention")
    carol_alert = await carol_ws.wait_for(mention_of(sent["id"]), "carol's mention")
    assert (bob_alert["notify"], carol_alert["notify"]) == (False, True)


# Across two processes on Redis


async def test_a_settings_change_on_one_process_reaches_the_users_socket_on_the_other(
    two_servers: tuple[Server, Server], client: AsyncHTTPClient
) -> None:
    first, second = two_servers
    on_first = ApiClient(client, first.url)
    (alice, bob), room = await chat(on_first, 2)
    here = await WsClient.connect(first.url, bob["token"])
    there = await WsClient.connect(second.url, bob["token"])
    try:
        answered = await set_settings(on_first, bob, room["id"], level="none")
        for device in (here, there):
            summary = (await device.expect("room.summary"))["room"]
            assert summary["id"] == room["id"] and summary["notifications"] == answered
        assert await notify_of_mention(on_first, alice, there, room["id"], naming(bob)) == (
            "user",
            False,
        )
    finally:
        here.close()
        there.close()
