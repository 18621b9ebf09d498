"""Messages over REST: sending, idempotency, history, replies, reactions, edits, deletions,
read markers, unread counts and catch-up by events."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import pytest

from clients import ApiClient

pytestmark = pytest.mark.gen_test

MESSAGE_FIELDS = {
    "id",
    "room_id",
    "seq",
    "sender_id",
    "client_msg_id",
    "kind",
    "text",
    "media",
    "reply_to",
    "reactions",
    "created_at",
    "edited_at",
    "deleted",
    "mentions",
}


async def chat(api: ApiClient) -> tuple[dict, dict, dict]:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    return alice, bob, room


async def test_send_answers_the_message(api: ApiClient) -> None:
    alice, bob, room = await chat(api)
    reply = await api.post(
        f"/api/v1/rooms/{room['id']}/messages",
        {"client_msg_id": "m1", "text": "  hello  "},
        alice["token"],
    )
    assert reply.status == 201
    message = reply.body
    assert set(message) == MESSAGE_FIELDS
    assert message["text"] == "hello" and message["kind"] == "text"
    assert message["seq"] == room["last_seq"] + 1
    assert message["sender_id"] == alice["user"]["id"]
    assert (
        message["reactions"] == [] and message["reply_to"] is None and message["deleted"] is False
    )
    fetched = await api.get(f"/api/v1/rooms/{room['id']}/messages/{message['id']}", bob["token"])
    assert fetched.body == message


async def test_repeated_client_msg_id_answers_the_original(api: ApiClient) -> None:
    alice, bob, room = await chat(api)
    path = f"/api/v1/rooms/{room['id']}/messages"
    first = await api.post(path, {"client_msg_id": "same", "text": "once"}, alice["token"])
    again = await api.post(path, {"client_msg_id": "same", "text": "twice?"}, alice["token"])
    assert (first.status, again.status) == (201, 200)
    assert again.body == first.body
    racing = await asyncio.gather(
        *[api.post(path, {"client_msg_id": "raced", "text": "x"}, alice["token"]) for _ in range(5)]
    )
    assert sorted(r.status for r in racing) == [200, 200, 200, 200, 201]
    assert len({r.body["id"] for r in racing}) == 1
    # Another sender may use the same client_msg_id: ids are per sender.
    assert (
        await api.post(path, {"client_msg_id": "same", "text": "bob's"}, bob["token"])
    ).status == 201
    history = await api.get(path, alice["token"])
    assert [m["text"] for m in history.body["messages"]] == ["once", "x", "bob's"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "no id"}, "client_msg_id"),
        ({"client_msg_id": 5, "text": "x"}, "client_msg_id"),
        ({"client_msg_id": "", "text": "x"}, "client_msg_id"),
        ({"client_msg_id": "x" * 65, "text": "x"}, "client_msg_id"),
        ({"client_msg_id": "a"}, "text"),
        ({"client_msg_id": "a", "text": "   "}, "text"),
        ({"client_msg_id": "a", "text": 42}, "text"),
        ({"client_msg_id": "a", "text": "x" * 4001}, "text"),
        ({"client_msg_id": "a", "text": "x", "kind": "system"}, "kind"),
        ({"client_msg_id": "a", "text": "x", "kind": "image"}, "media_id"),
        ({"client_msg_id": "a", "text": "x", "media_id": "nope"}, "media_id"),
        ({"client_msg_id": "a", "text": "x", "reply_to_id": "nope"}, "reply_to_id"),
        ({"client_msg_id": "a", "text": "x", "reply_to_id": 3}, "reply_to_id"),
    ],
)
async def test_send_rejects_bad_fields_and_stores_nothing(
    api: ApiClient, body: dict, field: str
) -> None:
    alice, _, room = await chat(api)
    reply = await api.post(f"/api/v1/rooms/{room['id']}/messages", body, alice["token"])
    assert reply.status == 400, reply.body
    assert reply.body["error"]["details"]["field"] == field
    events = await api.get(
        f"/api/v1/rooms/{room['id']}/events?after_seq={room['last_seq']}", alice["token"]
    )
    assert events.body["events"] == []


async def test_text_of_exactly_the_limit_is_accepted(api: ApiClient) -> None:
    alice, _, room = await chat(api)
    message = await api.send(alice, room["id"], "é" * 4000)
    assert len(message["text"]) == 4000


async def test_reply_shows_an_excerpt_and_the_original_deletion(api: ApiClient) -> None:
    alice, bob, room = await chat(api)
    original = await api.send(alice, room["id"], "a" * 150)
    reply = await api.send(bob, room["id"], "answer", reply_to_id=original["id"])
    assert reply["reply_to"]["id"] == original["id"]
    assert reply["reply_to"]["sender_id"] == alice["user"]["id"]
    assert reply["reply_to"]["excerpt"] == "a" * 99 + "…"
    assert reply["reply_to"]["deleted"] is False
    await api.delete(f"/api/v1/rooms/{room['id']}/messages/{original['id']}", alice["token"])
    again = await api.get(f"/api/v1/rooms/{room['id']}/messages/{reply['id']}", bob["token"])
    assert again.body["reply_to"] == {
        "id": original["id"],
        "sender_id": alice["user"]["id"],
        "excerpt": None,
        "deleted": True,
    }


async def test_reply_to_a_message_of_another_room_is_refused(api: ApiClient) -> None:
    alice, bob, room = await chat(api)
    other = await api.group(alice, name="other")
    elsewhere = await api.send(alice, other["id"], "over there")
    reply = await api.post(
        f"/api/v1/rooms/{room['id']}/messages",
        {"client_msg_id": "r", "text": "x", "reply_to_id": elsewhere["id"]},
        alice["token"],
    )
    assert reply.status == 400 and reply.body["error"]["details"]["field"] == "reply_to_id"


async def test_history_pages_both_ways(api: ApiClient) -> None:
    alice, bob, room = await chat(api)
    sent = [await api.send(alice, room["id"], f"m{n}") for n in range(7)]
    path = f"/api/v1/rooms/{room['id']}/messages"
    newest = await api.get(f"{path}?limit=3", bob["token"])
    assert [m["text"] for m in newest.body["messages"]] == ["m4", "m5", "m6"]
    assert newest.body["has_more"] is True
    older = await api.get(
        f"{path}?limit=3&before_seq={newest.body['messages'][0]['seq']}", bob["token"]
    )
    assert [m["text"] for m in older.body["messages"]] == ["m1", "m2", "m3"]
    oldest = await api.get(
        f"{path}?limit=3&before_seq={older.body['messages'][0]['seq']}", bob["token"]
    )
    assert [m["text"] for m in oldest.body["messages"]] == ["m0"] and oldest.body[
        "has_more"
    ] is False
    forward = await api.get(f"{path}?limit=4&after_seq={sent[1]['seq']}", bob["token"])
    assert [m["text"] for m in forward.body["messages"]] == ["m2", "m3", "m4", "m5"]
    assert forward.body["has_more"] is True
    default = await api.get(path, bob["token"])
    assert len(default.body["messages"]) == 7 and default.body["has_more"] is False
    for bad in (
        "limit=0",
        "limit=201",
        "limit=x",
        "before_seq=-1",
        "after_seq=abc",
        f"before_seq={10**30}",
    ):
        answer = await api.get(f"{path}?{bad}", bob["token"])
        assert answer.status == 400, bad


async def test_edit_by_the_sender_only(api: ApiClient) -> None:
    alice, bob, room = await chat(api)
    message = await api.send(alice, room["id"], "first")
    path = f"/api/v1/rooms/{room['id']}/messages/{message['id']}"
    assert (await api.patch(path, {"text": "hijack"}, bob["token"])).status == 403
    assert (await api.patch(path, {"text": ""}, alice["token"])).status == 400
    assert (await api.patch(path, {}, alice["token"])).body["error"]["details"]["field"] == "text"
    edited = await api.patch(path, {"text": "second"}, alice["token"])
    assert edited.status == 200
    assert edited.body["text"] == "second" and edited.body["edited_at"] is not None
    assert edited.body["seq"] == message["seq"]
    missing = await api.patch(
        f"/api/v1/rooms/{room['id']}/messages/nope", {"text": "x"}, alice["token"]
    )
    assert missing.status == 404


async def test_delete_leaves_a_tombstone_and_is_idempotent(api: ApiClient) -> None:
    alice, bob, room = await chat(api)
    message = await api.send(alice, room["id"], "oops")
    path = f"/api/v1/rooms/{room['id']}/messages/{message['id']}"
    assert (await api.delete(path, bob["token"])).status == 403
    assert (await api.delete(path, alice["token"])).status == 204
    assert (await api.delete(path, alice["token"])).status == 204
    tomb = (await api.get(path, bob["token"])).body
    assert tomb["deleted"] is True and tomb["text"] is None and tomb["media"] is None
    assert (tomb["id"], tomb["seq"]) == (message["id"], message["seq"])
    assert (await api.patch(path, {"text": "revive"}, alice["token"])).status == 409
    events = (
        await api.get(f"/api/v1/rooms/{room['id']}/events?after_seq={message['seq']}", bob["token"])
    ).body
    assert [e["type"] for e in events["events"]] == ["message.deleted"]


async def test_admins_and_owners_delete_others_messages(api: ApiClient) -> None:
    owner, admin, member = await api.register(), await api.register(), await api.register()
    room = await api.group(owner, admin, member)
    await api.patch(
        f"/api/v1/rooms/{room['id']}/members/{admin['user']['id']}",
        {"role": "admin"},
        owner["token"],
    )
    first = await api.send(member, room["id"], "one")
    second = await api.send(member, room["id"], "two")
    assert (
        await api.delete(f"/api/v1/rooms/{room['id']}/messages/{first['id']}", admin["token"])
    ).status == 204
    assert (
        await api.delete(f"/api/v1/rooms/{room['id']}/messages/{second['id']}", owner["token"])
    ).status == 204


async def test_reactions_are_idempotent_with_counts_and_me(api: ApiClient) -> None:
    alice, bob, room = await chat(api)
    message = await api.send(alice, room["id"], "react to me")
    base = f"/api/v1/rooms/{room['id']}/messages/{message['id']}/reactions"
    thumbs, heart = quote("👍"), quote("❤️")
    for user in (alice, bob, bob):
        assert (await api.put(f"{base}/{thumbs}", None, user["token"])).status == 204
    assert (await api.put(f"{base}/{heart}", None, bob["token"])).status == 204
    assert (await api.put(f"{base}/:party:", None, alice["token"])).status == 204
    seen_by_alice = (
        await api.get(f"/api/v1/rooms/{room['id']}/messages/{message['id']}", alice["token"])
    ).body
    assert seen_by_alice["reactions"] == [
        {"emoji": "👍", "count": 2, "me": True},
        {"emoji": "❤️", "count": 1, "me": False},
        {"emoji": ":party:", "count": 1, "me": True},
    ]
    assert (await api.delete(f"{base}/{thumbs}", bob["token"])).status == 204
    assert (await api.delete(f"{base}/{thumbs}", bob["token"])).status == 204
    seen_by_bob = (
        await api.get(f"/api/v1/rooms/{room['id']}/messages/{message['id']}", bob["token"])
    ).body
    assert seen_by_bob["reactions"][0] == {"emoji": "👍", "count": 1, "me": False}
    events = (
        await api.get(f"/api/v1/rooms/{room['id']}/events?after_seq={message['seq']}", bob["token"])
    ).body
    types = [e["type"] for e in events["events"]]
    assert types == ["reaction.added"] * 4 + ["reaction.removed"]
    assert events["events"][-1]["data"] == {
        "message_id": message["id"],
        "emoji": "👍",
        "user_id": bob["user"]["id"],
    }


@pytest.mark.parametrize("emoji", ["a", "ab", "👍👍", ":has space:", "<b>", "::", "👍 ", "👍\n"])
async def test_reaction_must_be_one_emoji_or_shortcode(api: ApiClient, emoji: str) -> None:
    alice, _, room = await chat(api)
    message = await api.send(alice, room["id"], "x")
    reply = await api.put(
        f"/api/v1/rooms/{room['id']}/messages/{message['id']}/reactions/{quote(emoji)}",
        None,
        alice["token"],
    )
    assert reply.status == 400 and reply.body["error"]["details"]["field"] == "emoji"


async def test_read_marker_moves_forward_only_and_counts_unread(api: ApiClient) -> None:
    alice, bob, room = await chat(api)
    sent = [await api.send(alice, room["id"], f"m{n}") for n in range(4)]
    await api.send(bob, room["id"], "bob's own does not count")
    view = (await api.get(f"/api/v1/rooms/{room['id']}", bob["token"])).body
    assert view["unread_count"] == 4
    read = await api.post(f"/api/v1/rooms/{room['id']}/read", {"seq": sent[1]["seq"]}, bob["token"])
    assert read.status == 200
    assert read.body == {
        "last_read_seq": sent[1]["seq"],
        "unread_count": 2,
        "unread_mention_count": 0,
    }
    back = await api.post(f"/api/v1/rooms/{room['id']}/read", {"seq": sent[0]["seq"]}, bob["token"])
    assert back.body == read.body
    await api.delete(f"/api/v1/rooms/{room['id']}/messages/{sent[3]['id']}", alice["token"])
    assert (await api.get(f"/api/v1/rooms/{room['id']}", bob["token"])).body["unread_count"] == 1
    beyond = await api.post(f"/api/v1/rooms/{room['id']}/read", {"seq": 10_000}, bob["token"])
    assert beyond.body["unread_count"] == 0
    assert (
        beyond.body["last_read_seq"]
        == (await api.get(f"/api/v1/rooms/{room['id']}", bob["token"])).body["last_seq"]
    )
    for bad in ({}, {"seq": "3"}, {"seq": -1}, {"seq": 1.5}, {"seq": 10**30}):
        answer = await api.post(f"/api/v1/rooms/{room['id']}/read", bad, bob["token"])
        assert answer.status == 400 and answer.body["error"]["details"]["field"] == "seq"


async def test_events_are_gap_free_and_page_by_seq(api: ApiClient) -> None:
    alice, bob, room = await chat(api)
    message = await api.send(alice, room["id"], "hello")
    await api.patch(
        f"/api/v1/rooms/{room['id']}/messages/{message['id']}", {"text": "hello!"}, alice["token"]
    )
    await api.put(
        f"/api/v1/rooms/{room['id']}/messages/{message['id']}/reactions/{quote('👍')}",
        None,
        bob["token"],
    )
    path = f"/api/v1/rooms/{room['id']}/events"
    before = (await api.get(f"{path}?after_seq=0", bob["token"])).body
    assert before["events"][2]["data"]["text"] == "hello"
    assert before["events"][3]["data"]["text"] == "hello!"
    await api.delete(f"/api/v1/rooms/{room['id']}/messages/{message['id']}", alice["token"])
    every = (await api.get(f"{path}?after_seq=0", bob["token"])).body
    assert [e["seq"] for e in every["events"]] == list(range(1, 7))
    assert [e["type"] for e in every["events"][2:]] == [
        "message.created",
        "message.edited",
        "reaction.added",
        "message.deleted",
    ]
    # Deletion is redaction: the message's earlier events now carry its tombstone.
    assert [every["events"][seq]["data"]["deleted"] for seq in (2, 3, 5)] == [True] * 3
    first_page = (await api.get(f"{path}?after_seq=0&limit=4", bob["token"])).body
    assert [e["seq"] for e in first_page["events"]] == [1, 2, 3, 4] and first_page[
        "has_more"
    ] is True
    rest = (await api.get(f"{path}?after_seq=4&limit=4", bob["token"])).body
    assert [e["seq"] for e in rest["events"]] == [5, 6] and rest["has_more"] is False
    for bad in ("after_seq=-1", "limit=0", "limit=501", "after_seq=x", f"after_seq={10**20}"):
        assert (await api.get(f"{path}?{bad}", bob["token"])).status == 400


async def test_concurrent_senders_get_gap_free_seqs(api: ApiClient) -> None:
    users = [await api.register() for _ in range(5)]
    room = await api.group(users[0], *users[1:])
    start = room["last_seq"]

    async def sender(user: dict, count: int) -> list[int]:
        return [(await api.send(user, room["id"], f"{n}"))["seq"] for n in range(count)]

    seqs = await asyncio.gather(*[sender(user, 10) for user in users])
    flat = sorted(seq for per_user in seqs for seq in per_user)
    assert flat == list(range(start + 1, start + 51))
    for per_user in seqs:
        assert per_user == sorted(per_user)


async def test_concurrent_sends_commit_together_yet_fail_alone(api: ApiClient) -> None:
    alice, bob, room = await chat(api)
    carol = await api.register()
    elsewhere = await api.group(alice)
    foreign = await api.send(alice, elsewhere["id"], "in another room")
    path = f"/api/v1/rooms/{room['id']}/messages"
    good = [
        api.post(path, {"client_msg_id": f"ok-{n}", "text": f"{n}"}, user["token"])
        for n, user in enumerate([alice, bob] * 10)
    ]
    bad = [
        api.post(path, {"client_msg_id": "intruder", "text": "x"}, carol["token"]),
        api.post(
            path,
            {"client_msg_id": "bad-reply", "text": "x", "reply_to_id": foreign["id"]},
            alice["token"],
        ),
        api.post(
            path, {"client_msg_id": "bad-media", "kind": "image", "media_id": "nope"}, bob["token"]
        ),
    ]
    replies = await asyncio.gather(*good, *bad)
    assert [r.status for r in replies[-3:]] == [404, 400, 400]
    sent = [r.body for r in replies[:-3]]
    assert {r.status for r in replies[:-3]} == {201}
    seqs = sorted(message["seq"] for message in sent)
    assert seqs == list(range(room["last_seq"] + 1, room["last_seq"] + 21))
    history = (await api.get(f"{path}?limit=50", alice["token"])).body["messages"]
    assert sorted(m["id"] for m in history) == sorted(m["id"] for m in sent)
    events = (await api.get(f"/api/v1/rooms/{room['id']}/events", alice["token"])).body
    created = [e for e in events["events"] if e["type"] == "message.created"]
    assert [e["seq"] for e in created] == seqs
    # They did share transactions: fewer commits than sends.
    metrics = (await api.get("/metrics")).body.decode().splitlines()
    commits, sends = (
        float(line.split()[-1])
        for name in ("cronchat_sends_per_commit_count", "cronchat_sends_per_commit_sum")
        for line in metrics
        if line.startswith(name)
    )
    assert sends == 24 and commits < sends
