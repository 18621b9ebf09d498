"""The WebSocket API with real clients: auth, every frame both ways, ordering, catch-up,
membership changes, limits and bad frames."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from clients import ApiClient, WsClient, event_of, eventually, of_type

pytestmark = pytest.mark.gen_test(timeout=60)


async def direct_chat(api: ApiClient, connect: Any) -> tuple[dict, dict, dict, WsClient, WsClient]:
    alice, bob = await api.register(display_name="Alice"), await api.register(display_name="Bob")
    room = await api.direct(alice, bob)
    return alice, bob, room, await connect(alice["token"]), await connect(bob["token"])


async def test_auth_by_header_and_by_first_frame(api: ApiClient, connect: Any) -> None:
    alice = await api.register()
    room = await api.group(alice)
    by_header = await connect(alice["token"], auth="header")
    by_frame = await connect(alice["token"], auth="frame")
    for ws in (by_header, by_frame):
        assert ws.ready["user"]["id"] == alice["user"]["id"]
        assert ws.ready["user"]["online"] is True
        assert ws.ready["session_id"]
        assert ws.ready["rooms"] == {room["id"]: room["last_seq"]}


async def test_bad_token_closes_with_4001(api: ApiClient, connect: Any) -> None:
    ws = await connect()
    await ws.send({"type": "auth", "token": "not a token"})
    assert await ws.closed() == 4001


async def test_frame_before_auth_closes_with_4001(api: ApiClient, connect: Any) -> None:
    ws = await connect()
    await ws.send({"type": "ping", "id": 1})
    assert await ws.closed() == 4001


@pytest.mark.server_settings(ws_auth_timeout=1)
async def test_late_auth_closes_with_4001(api: ApiClient, connect: Any) -> None:
    ws = await connect()
    assert await ws.closed(timeout=5) == 4001


async def test_two_users_hold_a_whole_conversation(api: ApiClient, connect: Any) -> None:
    alice, bob, room, alice_ws, bob_ws = await direct_chat(api, connect)
    room_id = room["id"]

    sent = await alice_ws.request(
        {"type": "message.send", "room_id": room_id, "client_msg_id": "hi-1", "text": "hi Bob"}
    )
    assert sent["type"] == "ack"
    message = sent["result"]["message"]
    assert message["text"] == "hi Bob" and message["seq"] == room["last_seq"] + 1
    delivered = await bob_ws.event_frame(room_id)
    created, summary = delivered["event"], delivered["room"]
    assert created["type"] == "message.created" and created["data"]["id"] == message["id"]
    assert summary["unread_count"] == 1 and summary["last_seq"] == message["seq"]
    assert summary["last_message"]["id"] == message["id"]
    own_delivery = await alice_ws.event_frame(room_id, message["seq"])
    assert own_delivery["room"]["unread_count"] == 0

    answer = await bob_ws.request(
        {
            "type": "message.send",
            "room_id": room_id,
            "client_msg_id": "re-1",
            "text": "hello Alice",
            "reply_to_id": message["id"],
        }
    )
    reply = answer["result"]["message"]
    assert reply["reply_to"]["id"] == message["id"]
    assert (await alice_ws.events(room_id, 1))[0]["data"]["id"] == reply["id"]
    assert (await bob_ws.events(room_id, 1))[0]["data"]["id"] == reply["id"]  # senders see theirs

    added = await alice_ws.request(
        {"type": "reaction.add", "room_id": room_id, "message_id": reply["id"], "emoji": "👍"}
    )
    assert added == {"type": "ack", "id": added["id"], "result": {}}
    (reaction,) = await bob_ws.events(room_id, 1)
    assert reaction["type"] == "reaction.added"
    assert reaction["data"] == {
        "message_id": reply["id"],
        "emoji": "👍",
        "user_id": alice["user"]["id"],
    }
    await alice_ws.request(
        {"type": "reaction.remove", "room_id": room_id, "message_id": reply["id"], "emoji": "👍"}
    )
    assert (await bob_ws.events(room_id, 1))[0]["type"] == "reaction.removed"

    edited = await alice_ws.request(
        {"type": "message.edit", "room_id": room_id, "message_id": message["id"], "text": "hi Bob!"}
    )
    assert edited["result"]["message"]["edited_at"] is not None
    (edit_event,) = await bob_ws.events(room_id, 1)
    assert edit_event["type"] == "message.edited" and edit_event["data"]["text"] == "hi Bob!"

    await alice_ws.request({"type": "typing", "room_id": room_id})
    typing = await bob_ws.expect("typing")
    assert typing == {"type": "typing", "room_id": room_id, "user_id": alice["user"]["id"]}

    read = await bob_ws.request({"type": "read", "room_id": room_id, "seq": edit_event["seq"]})
    assert read["result"] == {
        "last_read_seq": edit_event["seq"],
        "unread_count": 0,
        "unread_mention_count": 0,
    }
    receipt = await alice_ws.expect("receipt")
    assert receipt == {
        "type": "receipt",
        "room_id": room_id,
        "user_id": bob["user"]["id"],
        "seq": edit_event["seq"],
    }
    bob_summary = (await bob_ws.expect("room.summary"))["room"]
    assert bob_summary["last_read_seq"] == edit_event["seq"] and bob_summary["unread_count"] == 0

    deleted = await alice_ws.request(
        {"type": "message.delete", "room_id": room_id, "message_id": message["id"]}
    )
    assert deleted["type"] == "ack"
    deletion = await bob_ws.event_frame(room_id)
    delete_event = deletion["event"]
    assert delete_event["type"] == "message.deleted" and delete_event["data"]["deleted"] is True
    assert deletion["room"]["last_seq"] == delete_event["seq"]
    assert deletion["room"]["unread_count"] == 0

    pong = await alice_ws.request({"type": "ping"})
    assert pong["type"] == "pong"

    # The typist hears no echo of their own typing: only the typing of the other, after it.
    await bob_ws.request({"type": "typing", "room_id": room_id})
    before = await alice_ws.frames_before(
        of_type("typing", user_id=bob["user"]["id"]), "bob's typing"
    )
    assert [f for f in before if f["type"] == "typing"] == []


async def test_group_chat_reaches_every_member_in_order(api: ApiClient, connect: Any) -> None:
    owner, *others = [await api.register() for _ in range(3)]
    room = await api.group(owner, *others)
    sockets = [await connect(user["token"]) for user in (owner, *others)]
    for n in range(5):
        await sockets[n % 3].request(
            {
                "type": "message.send",
                "room_id": room["id"],
                "client_msg_id": f"g{n}",
                "text": f"m{n}",
            }
        )
    for ws in sockets:
        events = await ws.events(room["id"], 5)
        assert [e["data"]["text"] for e in events] == [f"m{n}" for n in range(5)]
        assert [e["seq"] for e in events] == list(range(room["last_seq"] + 1, room["last_seq"] + 6))


async def test_retried_send_creates_no_duplicate(api: ApiClient, connect: Any) -> None:
    alice, bob, room, alice_ws, bob_ws = await direct_chat(api, connect)
    frame = {
        "type": "message.send",
        "room_id": room["id"],
        "client_msg_id": "retry",
        "text": "once",
    }
    first = await alice_ws.request(frame)
    second = await alice_ws.request(frame)
    assert first["result"] == second["result"]
    over_rest = await api.post(
        f"/api/v1/rooms/{room['id']}/messages",
        {"client_msg_id": "retry", "text": "x"},
        alice["token"],
    )
    assert over_rest.status == 200 and over_rest.body["id"] == first["result"]["message"]["id"]
    await bob_ws.events(room["id"], 1)
    await api.send(alice, room["id"], "after the retries")
    (next_event,) = await bob_ws.events(room["id"], 1)
    assert next_event["data"].get("text") == "after the retries", next_event


async def test_non_member_sees_nothing_of_the_room(api: ApiClient, connect: Any) -> None:
    alice, bob, room, alice_ws, bob_ws = await direct_chat(api, connect)
    eve = await api.register()
    eves_room = await api.group(eve, bob, name="Eve's")
    eve_ws = await connect(eve["token"])
    message = await api.send(alice, room["id"], "private")
    frames = [
        {"type": "message.send", "room_id": room["id"], "client_msg_id": "e", "text": "hi"},
        {"type": "message.edit", "room_id": room["id"], "message_id": message["id"], "text": "x"},
        {"type": "message.delete", "room_id": room["id"], "message_id": message["id"]},
        {"type": "reaction.add", "room_id": room["id"], "message_id": message["id"], "emoji": "👍"},
        {
            "type": "reaction.remove",
            "room_id": room["id"],
            "message_id": message["id"],
            "emoji": "👍",
        },
        {"type": "read", "room_id": room["id"], "seq": 1},
        {"type": "typing", "room_id": room["id"]},
    ]
    for frame in frames:
        answer = await eve_ws.request(frame)
        assert answer["type"] == "error" and answer["code"] == "not_found", (frame, answer)
    resumed = await eve_ws.request({"type": "resume", "rooms": {room["id"]: 0}})
    assert resumed["result"] == {"rooms": {room["id"]: "not_found"}}
    await bob_ws.request({"type": "typing", "room_id": room["id"]})
    await bob_ws.request({"type": "read", "room_id": room["id"], "seq": message["seq"]})
    await api.send(bob, room["id"], "still private")
    await alice_ws.expect("receipt")
    marker = await api.send(bob, eves_room["id"], "marker")
    seen = await eve_ws.frames_before(
        event_of(eves_room["id"], marker["seq"]),
        "the marker in eve's room",
    )
    assert [f for f in seen if room["id"] in json.dumps(f)] == []


async def test_twenty_senders_fifty_messages_each_arrive_gap_free_in_order(
    api: ApiClient, connect: Any
) -> None:
    users = [await api.register() for _ in range(20)]
    room = await api.group(users[0], *users[1:])
    sockets = [await connect(user["token"]) for user in users]
    start = room["last_seq"]

    async def sender(ws: WsClient, index: int) -> list[int]:
        seqs = []
        for n in range(50):
            answer = await ws.request(
                {
                    "type": "message.send",
                    "room_id": room["id"],
                    "client_msg_id": f"s{index}-{n}",
                    "text": f"{index}:{n}",
                }
            )
            assert answer["type"] == "ack", answer
            seqs.append(answer["result"]["message"]["seq"])
        return seqs

    per_sender = await asyncio.gather(*[sender(ws, i) for i, ws in enumerate(sockets)])
    assert sorted(seq for seqs in per_sender for seq in seqs) == list(
        range(start + 1, start + 1001)
    )
    for ws in sockets:
        received = await ws.events(room["id"], 1000, timeout=30)
        assert [e["seq"] for e in received] == list(range(start + 1, start + 1001))
    stored = await api.get(
        f"/api/v1/rooms/{room['id']}/events?after_seq={start}&limit=500", users[0]["token"]
    )
    assert [e["seq"] for e in stored.body["events"]] == list(range(start + 1, start + 501))


async def test_reconnecting_client_catches_up_exactly(api: ApiClient, connect: Any) -> None:
    alice, bob, room, alice_ws, bob_ws = await direct_chat(api, connect)
    await api.send(alice, room["id"], "before")
    (last_seen,) = await bob_ws.events(room["id"], 1)
    bob_ws.close()
    for n in range(100):
        await api.send(alice, room["id"], f"missed {n}")

    caught_up, after = [], last_seen["seq"]
    while True:
        page = await api.get(
            f"/api/v1/rooms/{room['id']}/events?after_seq={after}&limit=30", bob["token"]
        )
        caught_up += page.body["events"]
        if not page.body["has_more"]:
            break
        after = page.body["events"][-1]["seq"]
    assert [e["data"]["text"] for e in caught_up] == [f"missed {n}" for n in range(100)]
    assert [e["seq"] for e in caught_up] == list(
        range(last_seen["seq"] + 1, last_seen["seq"] + 101)
    )

    again = await connect(bob["token"])
    assert again.ready["rooms"][room["id"]] == caught_up[-1]["seq"]
    resumed = await again.request({"type": "resume", "rooms": {room["id"]: last_seen["seq"] + 90}})
    replayed = [f["event"]["data"]["text"] for f in again.backlog if f["type"] == "event"]
    assert replayed == [f"missed {n}" for n in range(90, 100)]
    assert resumed["result"] == {"rooms": {room["id"]: "ok"}}


async def test_resume_too_far_behind_says_resync_required(api: ApiClient, connect: Any) -> None:
    alice, bob, room, alice_ws, bob_ws = await direct_chat(api, connect)
    for n in range(501):
        await api.send(alice, room["id"], f"{n}")
    resumed = await bob_ws.request({"type": "resume", "rooms": {room["id"]: 0}})
    assert resumed["result"] == {"rooms": {room["id"]: "resync_required"}}
    assert await bob_ws.expect("resync_required") == {
        "type": "resync_required",
        "room_id": room["id"],
    }


async def test_resume_of_many_rooms_replays_each_room_in_order(
    api: ApiClient, connect: Any
) -> None:
    alice, bob = await api.register(), await api.register()
    rooms = [await api.group(alice, bob, name=f"Room {n}") for n in range(12)]
    quiet = await api.group(alice, bob, name="Quiet")
    stranger = await api.group(await api.register(), name="Not Bob's")
    for n in range(3):
        for index, room in enumerate(rooms):
            await api.send(alice, room["id"], f"{index}:{n}")
    bob_ws = await connect(bob["token"])
    asked = {room["id"]: room["last_seq"] for room in rooms}
    asked[quiet["id"]] = quiet["last_seq"]
    asked[stranger["id"]] = 0
    resumed = await bob_ws.request({"type": "resume", "rooms": asked})
    expected = {room["id"]: "ok" for room in rooms}
    expected.update({quiet["id"]: "ok", stranger["id"]: "not_found"})
    assert resumed["result"] == {"rooms": expected}
    replayed = [f["event"] for f in bob_ws.backlog if f["type"] == "event"]
    for index, room in enumerate(rooms):
        of_room = [e for e in replayed if e["room_id"] == room["id"]]
        assert [e["data"]["text"] for e in of_room] == [f"{index}:{n}" for n in range(3)]
        assert [e["seq"] for e in of_room] == [room["last_seq"] + n for n in (1, 2, 3)]
    assert len(replayed) == 36  # nothing of the quiet room, nothing of the stranger's


async def test_resume_work_per_second_is_bounded(api: ApiClient, connect: Any) -> None:
    alice = await api.register()
    ws = await connect(alice["token"])
    many = {f"room{n:04d}": 0 for n in range(1000)}
    first = await ws.request({"type": "resume", "rooms": many})
    assert first["type"] == "ack" and set(first["result"]["rooms"].values()) == {"not_found"}
    second = await ws.request({"type": "resume", "rooms": many})
    assert second["type"] == "error" and second["code"] == "rate_limited", second
    assert second["retry_after_ms"] > 0
    assert (await ws.request({"type": "ping"}))["type"] == "pong"


async def test_second_device_gets_everything_and_reads_sync(api: ApiClient, connect: Any) -> None:
    alice, bob, room, alice_ws, bob_phone = await direct_chat(api, connect)
    bob_laptop = await connect(bob["token"])
    message = await api.send(alice, room["id"], "to both devices")
    for device in (bob_phone, bob_laptop):
        delivered = await device.event_frame(room["id"])
        assert delivered["event"]["data"]["id"] == message["id"]
        assert delivered["room"]["unread_count"] == 1
    await bob_phone.request({"type": "read", "room_id": room["id"], "seq": message["seq"]})
    synced = await bob_laptop.expect("room.summary")
    assert synced["room"]["unread_count"] == 0 and synced["room"]["last_read_seq"] == message["seq"]


async def test_summaries_count_unread_through_reads_deletions_and_new_sockets(
    api: ApiClient, connect: Any
) -> None:
    alice, bob, room, alice_ws, bob_phone = await direct_chat(api, connect)
    room_id = room["id"]
    bob_laptop = await connect(bob["token"])

    async def unread_on(device: WsClient) -> tuple[int, int]:
        summary = await device.summary()
        return summary["unread_count"], summary["last_read_seq"]

    first, second, third = [await api.send(alice, room_id, f"m{n}") for n in range(3)]
    start = room["last_seq"]  # Bob joined last: his marker starts there
    for device in (bob_phone, bob_laptop):
        assert [await unread_on(device) for _ in range(3)] == [(1, start), (2, start), (3, start)]
    assert [await unread_on(alice_ws) for _ in range(3)] == [(0, room["last_read_seq"])] * 3

    await bob_phone.request({"type": "read", "room_id": room_id, "seq": second["seq"]})
    assert await unread_on(bob_laptop) == (1, second["seq"])
    await api.send(bob, room_id, "own messages are never unread")
    assert await unread_on(bob_laptop) == (1, second["seq"])

    # Deleting a message already read changes nothing; deleting an unread one counts down.
    await alice_ws.request(
        {"type": "message.delete", "room_id": room_id, "message_id": first["id"]}
    )
    assert await unread_on(bob_laptop) == (1, second["seq"])
    await alice_ws.request(
        {"type": "message.delete", "room_id": room_id, "message_id": third["id"]}
    )
    assert await unread_on(bob_laptop) == (0, second["seq"])

    # A socket opened now starts from the database and counts on live like the others.
    bob_tablet = await connect(bob["token"])
    await api.send(alice, room_id, "m3")
    for device in (bob_phone, bob_laptop, bob_tablet):
        while (counts := await unread_on(device)) != (1, second["seq"]):
            assert counts == (0, second["seq"])  # summaries of the deletions above
    listed = await api.get("/api/v1/rooms", bob["token"])
    assert [(r["unread_count"], r["last_read_seq"]) for r in listed.body["rooms"]] == [
        (1, second["seq"])
    ]


async def test_a_burst_of_sends_on_one_socket_commits_in_order(
    api: ApiClient, connect: Any
) -> None:
    alice, bob, room, alice_ws, bob_ws = await direct_chat(api, connect)
    room_id = room["id"]
    frames = [
        {
            "type": "message.send",
            "id": n,
            "room_id": room_id,
            "client_msg_id": f"b{n}",
            "text": f"{n}",
        }
        for n in range(30)
    ]
    frames.insert(10, {"type": "message.send", "id": "bad", "room_id": room_id})  # no client_msg_id
    for frame in frames:
        await alice_ws.send(frame)
    answers = []
    while len(answers) < len(frames):
        frame = await alice_ws._read(10)
        assert frame is not None
        if frame["type"] in ("ack", "error"):
            answers.append(frame)
    assert [a["id"] for a in answers if a["type"] == "error"] == ["bad"]
    acks = [a for a in answers if a["type"] == "ack"]
    assert [a["id"] for a in acks] == list(range(30))  # acks in the order of the sends
    seqs = [a["result"]["message"]["seq"] for a in acks]
    assert seqs == list(range(room["last_seq"] + 1, room["last_seq"] + 31))
    received = await bob_ws.events(room_id, 30)
    assert [e["data"]["text"] for e in received] == [str(n) for n in range(30)]


@pytest.mark.server_settings(db_writers=4)
async def test_sends_to_rooms_committing_side_by_side_keep_each_rooms_order(
    api: ApiClient, connect: Any
) -> None:
    """With several writers, rooms commit side by side; each room's sends still take seqs
    in the order they were sent, gap-free, and every member gets them in that order."""
    alice, bob = await api.register(), await api.register()
    rooms = [await api.group(alice, bob, name=f"Side {n}") for n in range(3)]
    alice_ws, bob_ws = await connect(alice["token"]), await connect(bob["token"])
    for n in range(300):
        room = rooms[n % 3]
        await alice_ws.send(
            {
                "type": "message.send",
                "id": n,
                "room_id": room["id"],
                "client_msg_id": f"side{n}",
                "text": f"{n}",
            }
        )
    acks = {}
    while len(acks) < 300:
        frame = await alice_ws.expect("ack")
        acks[frame["id"]] = frame["result"]["message"]
    for index, room in enumerate(rooms):
        sent = [acks[n] for n in range(index, 300, 3)]
        assert [m["seq"] for m in sent] == list(range(room["last_seq"] + 1, room["last_seq"] + 101))
        assert [m["text"] for m in sent] == [str(n) for n in range(index, 300, 3)]
    for index, room in enumerate(rooms):
        received = await bob_ws.events(room["id"], 100)
        assert [e["data"]["text"] for e in received] == [str(n) for n in range(index, 300, 3)]


async def test_one_client_msg_id_sent_at_once_to_two_rooms(api: ApiClient, connect: Any) -> None:
    alice, bob, room, alice_ws, _ = await direct_chat(api, connect)
    other = await api.group(alice, bob)
    # While the first send commits, the two after it wait for the next commit, together.
    frames = [(room, "first"), (room, "twice"), (other, "twice")]
    for n, (target, client_msg_id) in enumerate(frames):
        await alice_ws.send(
            {
                "type": "message.send",
                "id": n - 1,
                "room_id": target["id"],
                "client_msg_id": client_msg_id,
                "text": "where does it go?",
            }
        )
    await alice_ws.expect("ack", id=-1)
    first = await alice_ws.expect("ack", id=0)
    second = await alice_ws.expect("error", id=1)
    assert first["result"]["message"]["room_id"] == room["id"]
    assert second["code"] == "conflict" and second["details"]["field"] == "client_msg_id"
    history = await api.get(f"/api/v1/rooms/{other['id']}/messages", alice["token"])
    assert history.body["messages"] == []


async def test_membership_changes_act_at_once(api: ApiClient, connect: Any) -> None:
    owner, member, newcomer = await api.register(), await api.register(), await api.register()
    room = await api.group(owner, member)
    elsewhere = await api.group(owner, member, name="Elsewhere")
    owner_ws, member_ws, newcomer_ws = [
        await connect(u["token"]) for u in (owner, member, newcomer)
    ]

    await api.post(
        f"/api/v1/rooms/{room['id']}/members", {"user_id": newcomer["user"]["id"]}, owner["token"]
    )
    (joined,) = await newcomer_ws.events(room["id"], 1)
    assert (
        joined["type"] == "member.joined" and joined["data"]["user"]["id"] == newcomer["user"]["id"]
    )
    await api.send(owner, room["id"], "welcome")
    assert (await newcomer_ws.events(room["id"], 1))[0]["data"]["text"] == "welcome"

    await api.delete(f"/api/v1/rooms/{room['id']}/members/{member['user']['id']}", owner["token"])
    events = await member_ws.events(room["id"], 3)
    assert [e["type"] for e in events] == ["member.joined", "message.created", "member.left"]
    member_ws.backlog.clear()
    await api.send(owner, room["id"], "after removal")
    await owner_ws.request({"type": "typing", "room_id": room["id"]})
    left, after = await newcomer_ws.events(room["id"], 2)
    assert left["type"] == "member.left" and after["data"]["text"] == "after removal"
    marker = await api.send(owner, elsewhere["id"], "marker")
    seen = await member_ws.frames_before(
        event_of(elsewhere["id"], marker["seq"]),
        "the marker in the other room",
    )
    assert [f for f in seen if room["id"] in json.dumps(f)] == []

    await api.delete(f"/api/v1/rooms/{room['id']}", owner["token"])
    for ws in (owner_ws, newcomer_ws):
        while (event := (await ws.events(room["id"], 1))[0])["type"] != "room.deleted":
            pass
        assert event["data"]["id"] == room["id"]
    answer = await owner_ws.request(
        {"type": "message.send", "room_id": room["id"], "client_msg_id": "z", "text": "x"}
    )
    assert answer["code"] == "not_found"


async def test_logout_closes_the_sessions_sockets_with_4003(api: ApiClient, connect: Any) -> None:
    alice = await api.register()
    other_session = await api.post(
        "/api/v1/auth/login", {"username": alice["user"]["username"], "password": alice["password"]}
    )
    ws = await connect(alice["token"])
    other_ws = await connect(other_session.body["access_token"])
    assert (await api.post("/api/v1/auth/logout", token=alice["token"])).status == 204
    assert await ws.closed() == 4003
    assert (await other_ws.request({"type": "ping"}))["type"] == "pong"


async def test_password_change_closes_other_sessions_with_4003(
    api: ApiClient, connect: Any
) -> None:
    alice = await api.register()
    other = await api.post(
        "/api/v1/auth/login", {"username": alice["user"]["username"], "password": alice["password"]}
    )
    other_ws = await connect(other.body["access_token"])
    await api.put(
        "/api/v1/users/me/password",
        {"current_password": alice["password"], "new_password": "brand new words"},
        alice["token"],
    )
    assert await other_ws.closed() == 4003


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ({"type": "message.send", "client_msg_id": "x", "text": "hi"}, "room_id"),
        ({"type": "message.send", "room_id": 5, "client_msg_id": "x", "text": "hi"}, "room_id"),
        ({"type": "message.send", "room_id": "r", "text": "hi"}, "client_msg_id"),
        ({"type": "message.send", "room_id": None, "client_msg_id": "x"}, "room_id"),
        ({"type": "message.send", "room_id": "r", "client_msg_id": "x", "text": 5}, "text"),
        ({"type": "message.send", "room_id": "r", "client_msg_id": "x", "kind": 1}, "kind"),
        (
            {"type": "message.send", "room_id": "r", "client_msg_id": "x", "media_id": {}},
            "media_id",
        ),
        (
            {"type": "message.send", "room_id": "r", "client_msg_id": "x", "reply_to_id": []},
            "reply_to_id",
        ),
        ({"type": "message.edit", "room_id": "r", "text": "x"}, "message_id"),
        ({"type": "reaction.add", "room_id": "r", "message_id": "m"}, "emoji"),
        ({"type": "read", "room_id": "r", "seq": "1"}, "seq"),
        ({"type": "resume", "rooms": [1]}, "rooms"),
        ({"type": "resume", "rooms": {"r": "x"}}, "rooms"),
        ({"type": "resume", "rooms": {"r": 10**20}}, "rooms"),
        ({"type": "auth"}, "token"),
        ({"type": "no.such.frame"}, "type"),
        ({"type": 7}, "type"),
    ],
)
async def test_bad_frames_answer_errors_and_keep_the_socket(
    api: ApiClient, connect: Any, frame: dict, field: str
) -> None:
    alice = await api.register()
    ws = await connect(alice["token"])
    answer = await ws.request(frame)
    assert answer["type"] == "error" and answer["code"] == "invalid_request", answer
    assert answer["details"]["field"] == field
    assert (await ws.request({"type": "ping"}))["type"] == "pong"


async def test_malformed_json_answers_an_error(api: ApiClient, connect: Any) -> None:
    alice = await api.register()
    ws = await connect(alice["token"])
    for raw in ("{not json", "[1, 2]", '"text"'):
        await ws.send(raw)
        error = await ws.expect("error")
        assert error["code"] == "invalid_request" and error["id"] is None
    assert (await ws.request({"type": "ping"}))["type"] == "pong"


async def test_oversize_frame_closes_with_1009(api: ApiClient, connect: Any) -> None:
    alice = await api.register()
    ws = await connect(alice["token"])
    await ws.send({"type": "ping", "padding": "x" * (64 * 1024)})
    assert await ws.closed() == 1009


@pytest.mark.server_settings(rate_limits=True)
async def test_flood_is_limited_then_closed_with_1008(api: ApiClient, connect: Any) -> None:
    alice = await api.register()
    ws = await connect(alice["token"])
    for n in range(300):
        await ws.send({"type": "ping", "id": n})
    assert await ws.closed() == 1008
    limited = [f for f in ws.backlog if f["type"] == "error"]
    assert limited and limited[0]["code"] == "rate_limited" and limited[0]["retry_after_ms"] > 0


def raw_upgrade(port: int, token: str, receive_buffer: int | None = None) -> socket.socket:
    """A hand-made WebSocket client that reads nothing after the handshake (blocking: run it
    in a thread, the server shares the test's IOLoop)."""
    raw = socket.socket()
    if receive_buffer:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    raw.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    raw.sendall(
        (
            f"GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += raw.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    return raw


def client_frame(opcode: int, payload: bytes, final: bool = True) -> bytes:
    """A masked client frame, as RFC 6455 has clients send them."""
    length = len(payload)
    if length < 126:
        header = bytes([(0x80 if final else 0) | opcode, 0x80 | length])
    elif length <= 0xFFFF:
        header = bytes([(0x80 if final else 0) | opcode, 0x80 | 126]) + length.to_bytes(2, "big")
    else:
        header = bytes([(0x80 if final else 0) | opcode, 0x80 | 127]) + length.to_bytes(8, "big")
    mask = os.urandom(4)
    return header + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


def ping_frame(frame_id: int, padding: int = 0) -> bytes:
    body = {"type": "ping", "id": frame_id, "padding": "x" * padding}
    return client_frame(0x1, json.dumps(body).encode())


def answers_until(raw: socket.socket, kind: str, count: int) -> list[tuple[int, Any]]:
    """The next ``count`` frames of one type, skipping others: (opcode, frame or payload)."""
    raw.settimeout(20)
    found: list[tuple[int, Any]] = []
    while len(found) < count:
        opcode, payload = read_server_frame(raw)
        if opcode == 0x1:
            frame = json.loads(payload)
            if frame["type"] == kind:
                found.append((opcode, frame))
        elif kind == f"opcode {opcode}":
            found.append((opcode, payload))
    return found


@contextlib.asynccontextmanager
async def ready_raw_socket(port: int, token: str) -> AsyncIterator[socket.socket]:
    """A raw socket upgraded and authenticated (its ``ready`` frame read), closed after."""
    raw = await asyncio.to_thread(raw_upgrade, port, token)
    try:
        await asyncio.to_thread(answers_until, raw, "ready", 1)
        yield raw
    finally:
        raw.close()


def send_slowly(raw: socket.socket, data: bytes) -> None:
    """One byte per write, so that the server reads the frame in as many pieces."""
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for byte in data:
        raw.sendall(bytes([byte]))
        time.sleep(0.002)


async def test_frames_joined_in_one_write_or_split_in_many_are_each_answered(
    api: ApiClient, http_port: int
) -> None:
    alice = await api.register()
    async with ready_raw_socket(http_port, alice["token"]) as raw:
        # Two frames and the start of a third in one write, its end in another; then a
        # frame of a 16-bit length, and one whose every byte comes alone.
        joined = ping_frame(1) + ping_frame(2) + ping_frame(3)
        raw.sendall(joined[:-5])
        raw.sendall(joined[-5:])
        raw.sendall(ping_frame(4, padding=300))
        await asyncio.to_thread(send_slowly, raw, ping_frame(5, padding=200))
        pongs = await asyncio.to_thread(answers_until, raw, "pong", 5)
        assert [frame["id"] for _, frame in pongs] == [1, 2, 3, 4, 5]


async def test_a_fragmented_frame_with_a_ping_inside_is_read_whole(
    api: ApiClient, http_port: int
) -> None:
    alice = await api.register()
    async with ready_raw_socket(http_port, alice["token"]) as raw:
        text = json.dumps({"type": "ping", "id": "in three parts"}).encode()
        raw.sendall(
            client_frame(0x1, text[:5], final=False)
            + client_frame(0x0, text[5:10], final=False)
            + client_frame(0x9, b"heartbeat")  # a control frame between fragments
            + client_frame(0x0, text[10:])
        )
        (pong,) = await asyncio.to_thread(answers_until, raw, "opcode 10", 1)
        assert pong == (0xA, b"heartbeat")
        (answer,) = await asyncio.to_thread(answers_until, raw, "pong", 1)
        assert answer[1]["id"] == "in three parts"


async def test_a_binary_frame_sends_a_message(api: ApiClient, connect: Any, http_port: int) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    bob_ws = await connect(bob["token"])
    async with ready_raw_socket(http_port, alice["token"]) as raw:
        send = {"type": "message.send", "id": 1, "room_id": room["id"], "client_msg_id": "b1"}
        raw.sendall(client_frame(0x2, json.dumps({**send, "text": "in binary"}).encode()))
        (ack,) = await asyncio.to_thread(answers_until, raw, "ack", 1)
        assert ack[1]["result"]["message"]["text"] == "in binary"
        (event,) = await bob_ws.events(room["id"], 1)
        assert event["data"]["text"] == "in binary"


async def test_a_frame_mentioning_a_send_is_read_as_what_it_is(
    api: ApiClient, connect: Any
) -> None:
    alice = await api.register()
    ws = await connect(alice["token"])
    answer = await ws.request({"type": "ping", "text": "message.send", "room_id": "r"})
    assert answer["type"] == "pong"
    deep: Any = "message.send"
    for _ in range(40):
        deep = [deep]
    await ws.send({"type": "message.send", "room_id": "r", "client_msg_id": "x", "id": deep})
    error = await ws.expect("error")
    assert error["code"] == "invalid_request" and error["id"] is None
    assert "nested deeper" in error["message"]


async def test_a_close_frame_is_answered_with_its_code(
    api: ApiClient, http_port: int, runtime: Any
) -> None:
    alice = await api.register()
    async with ready_raw_socket(http_port, alice["token"]) as raw:
        raw.sendall(client_frame(0x8, (1000).to_bytes(2, "big") + b"bye"))
        (close,) = await asyncio.to_thread(answers_until, raw, "opcode 8", 1)
        assert int.from_bytes(close[1][:2], "big") == 1000
        await eventually(lambda: runtime.hub.connection_count() == 0, 5, "the socket forgotten")


async def test_a_frame_announcing_too_much_closes_with_1009_before_its_payload(
    api: ApiClient, http_port: int
) -> None:
    alice = await api.register()
    async with ready_raw_socket(http_port, alice["token"]) as raw:
        header = bytes([0x81, 0x80 | 127]) + (10**6).to_bytes(8, "big") + os.urandom(4)
        raw.sendall(header + b"x" * 100)  # a megabyte announced, a hundred bytes sent
        (close,) = await asyncio.to_thread(answers_until, raw, "opcode 8", 1)
        assert int.from_bytes(close[1][:2], "big") == 1009


@pytest.mark.server_settings(ws_buffer_bytes=64 * 1024)
async def test_slow_reader_is_dropped_without_delaying_others(
    api: ApiClient, connect: Any, http_port: int, runtime: Any
) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    fast = await connect(bob["token"])
    slow = await asyncio.to_thread(raw_upgrade, http_port, bob["token"], 4096)
    try:
        await eventually(lambda: runtime.hub.connection_count() == 2, 5, "both sockets ready")
        # Kernel buffers take a few MB before the server's own buffer fills: send until the
        # slow socket is dropped (bounded), while the fast reader keeps reading.
        sent = 0
        while runtime.hub.connection_count() == 2 and sent < 2000:
            await api.send(alice, room["id"], f"{sent:04d} " + "x" * 3990)
            sent += 1
            await fast.events(room["id"], 1)
        assert runtime.hub.connection_count() == 1, f"slow reader still there after {sent}"
        await api.send(alice, room["id"], "after the drop")
        (last,) = await fast.events(room["id"], 1)
        assert last["data"]["text"] == "after the drop"
    finally:
        slow.close()


@pytest.mark.server_settings(ws_ping_interval=1)
async def test_dead_peer_is_dropped(api: ApiClient, http_port: int, runtime: Any) -> None:
    alice = await api.register()
    silent = await asyncio.to_thread(raw_upgrade, http_port, alice["token"])
    try:
        await eventually(lambda: runtime.hub.is_online(alice["user"]["id"]), 5, "alice online")
        # A ping after 1 s, no pong within 1 s, then the close handshake's own 5 s timeout.
        await eventually(
            lambda: not runtime.hub.is_online(alice["user"]["id"]), 15, "the dead peer dropped"
        )
    finally:
        silent.close()


def read_server_frame(raw: socket.socket) -> tuple[int, bytes]:
    """One frame from the server on a hand-made client: (opcode, payload). Server frames are
    never masked (blocking: run it in a thread)."""

    def exactly(count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = raw.recv(count - len(data))
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        return data

    first, second = exactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(exactly(2), "big")
    elif length == 127:
        length = int.from_bytes(exactly(8), "big")
    return first & 0x0F, exactly(length)


def close_frame_after_pings(raw: socket.socket) -> tuple[int, bytes, int]:
    """Read, answering nothing, until the close frame: the pings seen, its reason, its code."""
    raw.settimeout(20)
    pings = 0
    while True:
        opcode, payload = read_server_frame(raw)
        if opcode == 0x9:
            pings += 1
        elif opcode == 0x8:
            return pings, payload[2:], int.from_bytes(payload[:2], "big")


@pytest.mark.server_settings(ws_ping_interval=1)
async def test_a_client_that_answers_no_ping_gets_a_1001_close_frame(
    api: ApiClient, http_port: int, runtime: Any
) -> None:
    alice = await api.register()
    silent = await asyncio.to_thread(raw_upgrade, http_port, alice["token"])
    try:
        # A client that still reads but never answers a ping (a half-open connection).
        pings, reason, code = await asyncio.to_thread(close_frame_after_pings, silent)
        assert pings >= 1 and code == 1001, (pings, code, reason)
        assert reason == b"ping timeout"
        assert not runtime.hub.is_online(alice["user"]["id"])
    finally:
        silent.close()


async def test_presence_frames_and_online_in_profiles(api: ApiClient, connect: Any) -> None:
    alice, bob = await api.register(), await api.register()
    await api.direct(alice, bob)
    alice_ws = await connect(alice["token"])
    bob_ws = await connect(bob["token"])
    online = await alice_ws.expect("presence")
    assert online["user_id"] == bob["user"]["id"] and online["online"] is True
    profile = await api.get(f"/api/v1/users/{bob['user']['id']}", alice["token"])
    assert profile.body["online"] is True
    bob_ws.close()
    offline = await alice_ws.expect("presence", online=False)
    assert offline["user_id"] == bob["user"]["id"] and offline["last_seen_at"].endswith("Z")
    profile = await api.get(f"/api/v1/users/{bob['user']['id']}", alice["token"])
    assert profile.body["online"] is False and profile.body["last_seen_at"] is not None


async def test_resume_replays_what_came_before_the_live_stream(
    api: ApiClient, connect: Any
) -> None:
    alice, bob, room, alice_ws, bob_ws = await direct_chat(api, connect)
    start = room["last_seq"]
    bob_ws.close()
    for n in range(4):
        await api.send(alice, room["id"], f"missed {n}")
    again = await connect(bob["token"])
    await api.send(alice, room["id"], "live")  # reaches the socket before it resumes
    (live,) = await again.events(room["id"], 1)
    assert live["data"]["text"] == "live"
    resumed = await again.request({"type": "resume", "rooms": {room["id"]: start}})
    assert resumed["result"] == {"rooms": {room["id"]: "ok"}}
    replayed = [f["event"]["data"]["text"] for f in again.backlog if f["type"] == "event"]
    assert replayed == [f"missed {n}" for n in range(4)]


async def test_auth_frame_on_an_open_socket_extends_it(api: ApiClient, connect: Any) -> None:
    alice = await api.register()
    ws = await connect(alice["token"])
    refreshed = await api.post("/api/v1/auth/refresh", {"refresh_token": alice["refresh_token"]})
    extended = await ws.request({"type": "auth", "token": refreshed.body["access_token"]})
    assert extended["type"] == "ack" and extended["result"]["expires_at"].endswith("Z")
    other_session = await api.post(
        "/api/v1/auth/login", {"username": alice["user"]["username"], "password": alice["password"]}
    )
    refused = await ws.request({"type": "auth", "token": other_session.body["access_token"]})
    assert refused["type"] == "error" and refused["code"] == "invalid_request"


@pytest.mark.server_settings(access_token_ttl=10)
async def test_socket_closes_with_4003_when_its_token_expires(api: ApiClient, connect: Any) -> None:
    alice = await api.register()
    ws = await connect(alice["token"])
    assert await ws.closed(timeout=15) == 4003


@pytest.mark.server_settings(rate_limits=True)
async def test_rate_limited_error_names_the_refused_frame(api: ApiClient, connect: Any) -> None:
    alice = await api.register()
    ws = await connect(alice["token"])
    for n in range(70):
        await ws.send({"type": "ping", "id": f"p{n}"})
    limited = await ws.expect("error", timeout=5)
    assert limited["code"] == "rate_limited" and limited["id"].startswith("p")
