"""One frame per delivery: when an event moves a member's own view of a room (a new message,
a deletion), the member's summary travels inside the event frame (``room``), and no
``room.summary`` follows it. A read still sends ``room.summary``; replayed events carry no
``room``."""

from __future__ import annotations

from typing import Any

import pytest

from clients import ApiClient, Frame, User, WsClient, event_of

pytestmark = pytest.mark.gen_test(timeout=60)

SUMMARY_FIELDS = [
    "id",
    "last_seq",
    "last_message",
    "unread_count",
    "last_read_seq",
    "unread_mention_count",
    "notifications",
]


def about_seq(frames: list[Frame], seq: int) -> list[Frame]:
    """The frames that deliver the event ``seq`` or a summary as of it."""
    return [
        frame
        for frame in frames
        if (frame["type"] == "event" and frame["event"]["seq"] == seq)
        or (frame["type"] == "room.summary" and frame["room"]["last_seq"] == seq)
    ]


async def delivery_of(ws: WsClient, room_id: str, seq: int, marker_seq: int) -> Frame:
    """The one frame that delivered the event ``seq`` to this socket, checked to be alone:
    nothing else about it came before the marker event ``marker_seq``."""
    before = await ws.frames_before(event_of(room_id, marker_seq), f"the marker {marker_seq}")
    about = about_seq(before, seq)
    assert len(about) == 1 and about[0]["type"] == "event", (
        f"expected one event frame for seq {seq}, got {about}"
    )
    return about[0]


async def own_view(api: ApiClient, user: User, room_id: str) -> tuple[int, int]:
    """A member's (unread_count, last_read_seq) in a room, as REST has it."""
    reply = await api.get(f"/api/v1/rooms/{room_id}", user["token"])
    assert reply.status == 200, reply.body
    return reply.body["unread_count"], reply.body["last_read_seq"]


async def test_each_member_gets_one_frame_per_message_with_their_own_summary(
    api: ApiClient, connect: Any
) -> None:
    alice, bob, carol = [await api.register() for _ in range(3)]
    room = await api.group(alice, bob, carol)
    room_id = room["id"]
    alice_ws = await connect(alice["token"])
    bob_phone, bob_laptop = await connect(bob["token"]), await connect(bob["token"])
    carol_ws = await connect(carol["token"])
    first = await api.send(alice, room_id, "one")
    await api.send(alice, room_id, "two")
    read = await api.post(f"/api/v1/rooms/{room_id}/read", {"seq": first["seq"]}, bob["token"])
    assert read.status == 200
    assert read.body == {
        "last_read_seq": first["seq"],
        "unread_count": 1,
        "unread_mention_count": 0,
    }
    alice_marker = (await own_view(api, alice, room_id))[1]
    carol_before = await own_view(api, carol, room_id)
    assert carol_before[0] == 2

    sent = await alice_ws.request(
        {"type": "message.send", "room_id": room_id, "client_msg_id": "three", "text": "three"}
    )
    message = sent["result"]["message"]
    marker = await api.send(alice, room_id, "marker")

    expected = {
        alice_ws: (0, alice_marker),
        bob_phone: (2, first["seq"]),
        bob_laptop: (2, first["seq"]),
        carol_ws: (3, carol_before[1]),
    }
    for ws, counts in expected.items():
        frame = await delivery_of(ws, room_id, message["seq"], marker["seq"])
        assert list(frame) == ["type", "event", "room"]
        assert frame["event"]["type"] == "message.created"
        assert frame["event"]["data"]["id"] == message["id"]
        summary = frame["room"]
        assert list(summary) == SUMMARY_FIELDS
        assert summary["id"] == room_id and summary["last_seq"] == message["seq"]
        assert summary["last_message"]["id"] == message["id"]
        assert (summary["unread_count"], summary["last_read_seq"]) == counts
    for user, counts in ((alice, (0, alice_marker)), (bob, (3, first["seq"]))):
        assert await own_view(api, user, room_id) == counts  # one more, the marker
    assert await own_view(api, carol, room_id) == (carol_before[0] + 2, carol_before[1])


async def test_a_deletion_carries_each_members_updated_summary(
    api: ApiClient, connect: Any
) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    room_id = room["id"]
    alice_ws, bob_ws = await connect(alice["token"]), await connect(bob["token"])
    await api.send(alice, room_id, "kept")
    doomed = await api.send(alice, room_id, "doomed")
    for ws in (alice_ws, bob_ws):
        await ws.events(room_id, 2)
    bob_marker = (await own_view(api, bob, room_id))[1]

    deleted = await alice_ws.request(
        {"type": "message.delete", "room_id": room_id, "message_id": doomed["id"]}
    )
    assert deleted["type"] == "ack", deleted
    marker = await api.send(alice, room_id, "marker")
    deletion_seq = marker["seq"] - 1

    for ws, unread_count in ((alice_ws, 0), (bob_ws, 1)):
        frame = await delivery_of(ws, room_id, deletion_seq, marker["seq"])
        assert frame["event"]["type"] == "message.deleted"
        assert frame["event"]["data"]["id"] == doomed["id"]
        summary = frame["room"]
        assert list(summary) == SUMMARY_FIELDS and summary["last_seq"] == deletion_seq
        assert summary["unread_count"] == unread_count
        last_message = summary["last_message"]  # the room's latest: the tombstone
        assert last_message["id"] == doomed["id"] and last_message["deleted"] is True
        assert last_message["text"] is None and "doomed" not in str(summary)
    assert frame["room"]["last_read_seq"] == bob_marker
    assert await own_view(api, bob, room_id) == (2, bob_marker)  # kept and the marker


async def test_a_read_still_sends_room_summary_to_the_readers_devices_only(
    api: ApiClient, connect: Any
) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    room_id = room["id"]
    alice_ws = await connect(alice["token"])
    bob_phone, bob_laptop = await connect(bob["token"]), await connect(bob["token"])
    message = await api.send(alice, room_id, "read me")
    for ws in (alice_ws, bob_phone, bob_laptop):
        assert (await ws.event_frame(room_id, message["seq"]))["room"]["last_seq"] == message["seq"]

    read = await bob_phone.request({"type": "read", "room_id": room_id, "seq": message["seq"]})
    assert read["result"] == {
        "last_read_seq": message["seq"],
        "unread_count": 0,
        "unread_mention_count": 0,
    }
    marker = await api.send(alice, room_id, "marker")
    for device in (bob_phone, bob_laptop):
        before = await device.frames_before(event_of(room_id, marker["seq"]), "the marker")
        summaries = [frame["room"] for frame in before if frame["type"] == "room.summary"]
        assert len(summaries) == 1, before
        assert list(summaries[0]) == SUMMARY_FIELDS
        assert summaries[0]["last_seq"] == message["seq"]
        assert summaries[0]["last_message"]["id"] == message["id"]
        assert (summaries[0]["unread_count"], summaries[0]["last_read_seq"]) == (0, message["seq"])
    seen_by_alice = await alice_ws.frames_before(event_of(room_id, marker["seq"]), "the marker")
    assert [frame["type"] for frame in seen_by_alice if frame["type"] != "presence"] == ["receipt"]


async def test_resume_replays_events_without_a_summary(api: ApiClient, connect: Any) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    room_id = room["id"]
    missed = [await api.send(alice, room_id, f"missed {n}") for n in range(3)]
    deleted = await api.delete(
        f"/api/v1/rooms/{room_id}/messages/{missed[1]['id']}", alice["token"]
    )
    assert deleted.status in (200, 204), deleted.body
    bob_ws = await connect(bob["token"])

    resumed = await bob_ws.request({"type": "resume", "rooms": {room_id: room["last_seq"]}})
    assert resumed["result"] == {"rooms": {room_id: "ok"}}
    replayed = [frame for frame in bob_ws.backlog if frame["type"] == "event"]
    assert [frame["event"]["type"] for frame in replayed] == ["message.created"] * 3 + [
        "message.deleted"
    ]
    assert [list(frame) for frame in replayed] == [["type", "event"]] * 4
    assert [frame for frame in bob_ws.backlog if frame["type"] == "room.summary"] == []
    caught_up = await api.get(
        f"/api/v1/rooms/{room_id}/events?after_seq={room['last_seq']}", bob["token"]
    )
    assert len(caught_up.body["events"]) == 4
    assert all("room" not in event for event in caught_up.body["events"])
