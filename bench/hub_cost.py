"""What a mention costs the hub: CPU per delivery of a new message's event to the members of
one room (1,000 by default), plain, naming one member, and mentioning the room, in one
process with sockets that only queue their frames (no network, no database).

    python -m bench.hub_cost [--members 1000] [--messages 300]

Prints one JSON line: microseconds of CPU per delivery for each kind of message, and the
ratio of the room mention to the plain message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from cronchat.models import ReadState
from cronchat.realtime.hub import Hub
from cronchat.realtime.notices import EventSummary, event_notice
from cronchat.realtime.session_cache import SessionCache
from cronchat.realtime.sockets import Sockets


class QueueingSocket:
    """A connection that keeps its frames, as a socket's outgoing list does between writes."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.session_id = f"session-{user_id}"
        self.frames: list[bytes] = []
        self.delivered: dict[str, int] = {}

    def send_frame(self, frame: bytes) -> None:
        self.frames.append(frame)

    def send_event(self, room_id: str, seq: int, frame: bytes) -> None:
        if seq > self.delivered.get(room_id, 0):
            self.delivered[room_id] = seq
            self.frames.append(frame)

    def skipped(self, room_id: str, from_seq: int, to_seq: int) -> None:
        pass

    def close_with(self, code: int, reason: str) -> None:
        pass

    def keep_alive(self, heard_since: float) -> None:
        pass


class _NoReads:
    async def events_between(self, room_id: str, after_seq: int, up_to_seq: int) -> list[Any]:
        return []

    async def read_state(self, user_id: str, room_id: str) -> ReadState | None:
        return None


def _message_event(room_id: str, seq: int, sender: str, mentions: dict[str, Any]) -> Any:
    data = {
        "id": f"m{seq:024d}",
        "room_id": room_id,
        "seq": seq,
        "sender_id": sender,
        "client_msg_id": f"c{seq}",
        "kind": "text",
        "text": f"message {seq} " + "x" * 60,
        "media": None,
        "reply_to": None,
        "reactions": [],
        "created_at": "2026-12-01T12:00:00.000Z",
        "edited_at": None,
        "deleted": False,
        "mentions": mentions,
    }
    event = {
        "room_id": room_id,
        "seq": seq,
        "type": "message.created",
        "actor_id": sender,
        "at": data["created_at"],
        "data": data,
    }
    return event_notice(event, EventSummary(data))


async def measure(members: int, messages: int) -> dict[str, Any]:
    room_id = "r" * 26
    users = [f"u{index:025d}" for index in range(members)]
    sessions = SessionCache(60, on_hit=lambda: None, on_miss=lambda: None)
    hub = Hub(Sockets(sessions), _NoReads(), _NoReads(), lambda *a: None, lambda n: None)
    sockets = [QueueingSocket(user_id) for user_id in users]
    for socket in sockets:
        hub.add(socket, {room_id: ReadState(0, 0, 0)})
    kinds = {
        "plain": {"user_ids": [], "room": False},
        "one_user": {"user_ids": [users[1]], "room": False},
        "room": {"user_ids": [], "room": True},
    }
    seq = 0
    cpu_us: dict[str, float] = {}
    frames: dict[str, int] = {}
    for _ in range(2):  # the first round warms up; the second is measured
        for name, mentions in kinds.items():
            for socket in sockets:
                socket.frames.clear()
            started = time.process_time()
            for _ in range(messages):
                seq += 1
                hub.deliver(_message_event(room_id, seq, users[0], mentions))
            spent = time.process_time() - started
            deliveries = messages * members
            cpu_us[name] = round(spent / deliveries * 1e6, 3)
            frames[name] = sum(len(socket.frames) for socket in sockets)
    return {
        "bench": "hub_cost",
        "members": members,
        "messages": messages,
        "cpu_us_per_delivery": cpu_us,
        "frames": frames,
        "room_over_plain": round(cpu_us["room"] / cpu_us["plain"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=300)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.members, args.messages))))


if __name__ == "__main__":
    main()
