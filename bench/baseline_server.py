"""The baseline: a bare Tornado broadcast server, run as its own process.

It speaks just enough of CronChat's protocol for the same load generator to drive it: the
``Authorization`` header names the user and its rooms (``Bearer USER:ROOM1,ROOM2``), the
socket gets a ``ready`` frame, and a ``message.send`` frame is turned into an ``event``
frame shaped and sized like CronChat's ``message.created`` event, serialised once and
written with ``write_message`` to every socket of the room, then acknowledged. No
database, no authentication, no ``room.summary``: what is left is Tornado's own cost of a
broadcast. ``set_nodelay(True)`` as in CronChat, so that latencies compare.

    python bench/baseline_server.py --port 8099
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections import defaultdict

import tornado.web
import tornado.websocket

_ids = itertools.count(1)


def _now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


class Rooms:
    def __init__(self) -> None:
        self.sockets: dict[str, set[BroadcastSocket]] = defaultdict(set)
        self.seqs: dict[str, int] = defaultdict(int)


class HealthHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write("ok")


class BroadcastSocket(tornado.websocket.WebSocketHandler):
    def initialize(self, rooms: Rooms) -> None:
        self.rooms = rooms
        self.user_id = ""
        self.room_ids: list[str] = []

    def check_origin(self, origin: str) -> bool:
        return True

    def open(self) -> None:
        self.set_nodelay(True)
        token = self.request.headers.get("Authorization", "").partition(" ")[2]
        self.user_id, _, rooms = token.partition(":")
        self.room_ids = [room_id for room_id in rooms.split(",") if room_id]
        for room_id in self.room_ids:
            self.rooms.sockets[room_id].add(self)
        ready = {
            "type": "ready",
            "id": None,
            "user": {"id": self.user_id},
            "session_id": self.user_id,
            "rooms": {room_id: self.rooms.seqs[room_id] for room_id in self.room_ids},
        }
        self.write_message(json.dumps(ready, separators=(",", ":")))

    def on_close(self) -> None:
        for room_id in self.room_ids:
            self.rooms.sockets[room_id].discard(self)

    def on_message(self, raw: str | bytes) -> None:
        frame = json.loads(raw)
        if frame.get("type") == "ping":
            self.write_message(json.dumps({"type": "pong", "id": frame.get("id")}))
            return
        if frame.get("type") != "message.send":
            return
        room_id = frame["room_id"]
        self.rooms.seqs[room_id] += 1
        seq = self.rooms.seqs[room_id]
        at = _now()
        message = {
            "id": f"{next(_ids):026d}",
            "room_id": room_id,
            "seq": seq,
            "sender_id": self.user_id,
            "kind": "text",
            "text": frame.get("text"),
            "media": None,
            "reply_to": None,
            "reactions": [],
            "created_at": at,
            "edited_at": None,
            "deleted": False,
        }
        event = {
            "room_id": room_id,
            "seq": seq,
            "type": "message.created",
            "actor_id": self.user_id,
            "at": at,
            "data": message,
        }
        payload = json.dumps({"type": "event", "event": event}, separators=(",", ":"))
        for socket in list(self.rooms.sockets.get(room_id, ())):
            try:
                socket.write_message(payload)
            except tornado.websocket.WebSocketClosedError:
                pass
        ack = {"type": "ack", "id": frame.get("id"), "result": {"message": message}}
        self.write_message(json.dumps(ack, separators=(",", ":")))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    rooms = Rooms()
    app = tornado.web.Application(
        [(r"/healthz", HealthHandler), (r"/api/v1/ws", BroadcastSocket, {"rooms": rooms})]
    )
    app.listen(args.port, "127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
