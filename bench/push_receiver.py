"""The bench's push receiver: a process of its own serving ``POST /push/<device>`` on
loopback, standing for a Web Push service (answers 201) or a Matrix-style push gateway
(answers 200 ``{"rejected": []}``).

While the run measures it only records each request (its arrival time, device and body),
so that what it costs stays small and out of the server's figures; once the run is over it
reads them: Web Push bodies decrypted with the device's keys (RFC 8291, with ``http_ece``,
the library the server encrypts with: the bench counts pushes, it does not check them, as
tests/push_receivers.py does), gateway bodies as JSON. The send time the sender wrote at
the start of each message text (``b<monotonic ns>.``) comes back in the excerpt: latency
is send to arrival, both on ``time.monotonic_ns()``, one clock for the machine's processes.

Steered over a pipe, like the load generator:

    orchestrator -> receiver             receiver -> orchestrator
                                         {"phase": "ready", "port", "devices"}
    {"expect": n, "start_at": ns, ...}
                                         {"phase": "done", ...figures}
    {"close": true}                      (stops, exits)
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import time
from array import array
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

HOST = "127.0.0.1"
STAMP = re.compile(r"b(\d+)\.")
DRAIN_IDLE_SECONDS = 5.0


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Device:
    """One registered push device: what ``POST /users/me/push`` is given, and for Web Push
    the key pair and auth secret a browser would keep to decrypt."""

    def __init__(self, kind: str, index: int, port: int) -> None:
        self.kind = kind
        self.url = f"http://{HOST}:{port}/push/{index}"
        self.private_key: ec.EllipticCurvePrivateKey | None = None
        self.auth_secret = b""
        if kind == "webpush":
            self.private_key = ec.generate_private_key(ec.SECP256R1())
            self.auth_secret = secrets.token_bytes(16)
        self.pushkey = f"bench-device-{index}"

    def registration(self) -> dict[str, Any]:
        if self.kind == "gateway":
            return {"kind": "gateway", "url": self.url, "pushkey": self.pushkey, "app_id": "bench"}
        assert self.private_key is not None
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "kind": "webpush",
            "endpoint": self.url,
            "keys": {"p256dh": b64url(public), "auth": b64url(self.auth_secret)},
        }

    def read(self, body: bytes) -> dict[str, Any]:
        """The push as the device reads it: ``type``, ``message_id``, ``text`` (the excerpt)."""
        if self.kind == "webpush":
            # Imported here: the bench also drives servers from before push, whose
            # environment may not have it.
            import http_ece  # type: ignore[import-untyped]

            plain = http_ece.decrypt(
                body,
                private_key=self.private_key,
                auth_secret=self.auth_secret,
                version="aes128gcm",
            )
            push = json.loads(plain)
            return {
                "type": push.get("type"),
                "message_id": push.get("message_id"),
                "text": push.get("excerpt") or "",
            }
        notification = json.loads(body)["notification"]
        content = notification.get("content") or {}
        return {
            "type": "message" if notification.get("event_id") else "read",
            "message_id": notification.get("event_id"),
            "text": content.get("body") or "",
        }


class _PushHandler(RequestHandler):
    def initialize(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def post(self, index: str) -> None:
        self.receiver.arrived(int(index), self.request.body)
        if self.receiver.kind == "gateway":
            self.set_header("Content-Type", "application/json")
            self.write(b'{"rejected":[]}')
        else:
            self.set_status(201)

    def log_exception(self, *args: Any) -> None:  # a bad index is the server's bug: counted
        self.receiver.bad_requests += 1


class Receiver:
    def __init__(self, pipe: Connection, config: dict[str, Any]) -> None:
        self.pipe = pipe
        self.kind = config["kind"]
        self.device_count = config["devices"]
        self.devices: list[Device] = []
        self.arrival_ns = array("q")
        self.arrivals: list[tuple[int, bytes]] = []
        self.bad_requests = 0

    def arrived(self, index: int, body: bytes) -> None:
        self.arrival_ns.append(time.monotonic_ns())
        self.arrivals.append((index, body))

    async def receive(self) -> dict[str, Any]:
        return await asyncio.get_running_loop().run_in_executor(None, self.pipe.recv)

    async def run(self) -> None:
        listening = bind_sockets(0, HOST)
        port = listening[0].getsockname()[1]
        server = HTTPServer(
            Application([(r"/push/(\d+)", _PushHandler, {"receiver": self})]), xheaders=False
        )
        server.add_sockets(listening)
        self.devices = [Device(self.kind, i, port) for i in range(self.device_count)]
        self.pipe.send(
            {
                "phase": "ready",
                "port": port,
                "devices": [device.registration() for device in self.devices],
            }
        )
        while True:
            command = await self.receive()
            if "expect" in command:
                await self.drain(command["expect"], command["drain_max_seconds"])
                self.pipe.send({"phase": "done", **self.figures(command["start_at"])})
            elif command.get("close"):
                break
        server.stop()

    async def drain(self, expected: int, max_seconds: float) -> None:
        """Wait for ``expected`` pushes while they keep coming."""
        hard_stop = time.monotonic() + max_seconds
        last_count, last_progress = -1, time.monotonic()
        while len(self.arrivals) < expected and time.monotonic() < hard_stop:
            if len(self.arrivals) != last_count:
                last_count, last_progress = len(self.arrivals), time.monotonic()
            elif time.monotonic() - last_progress > DRAIN_IDLE_SECONDS:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # duplicates, if any, show up right behind

    def figures(self, start_at: int) -> dict[str, Any]:
        """What arrived, read now that the measurement is over."""
        latencies_us = array("q")
        message_ns = array("q")
        kinds: Counter[str] = Counter()
        seen: set[tuple[int, str]] = set()
        duplicates = unreadable = unstamped = 0
        for arrived_ns, (index, body) in zip(self.arrival_ns, self.arrivals, strict=True):
            try:
                push = self.devices[index].read(body)
            except (ValueError, KeyError, TypeError, IndexError):
                unreadable += 1
                continue
            kinds[str(push["type"])] += 1
            if push["type"] != "message":
                continue
            key = (index, str(push["message_id"]))
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            message_ns.append(arrived_ns)
            stamp = STAMP.match(push["text"])
            if stamp is None:
                unstamped += 1
                continue
            latencies_us.append((arrived_ns - int(stamp.group(1))) // 1000)
        per_second: Counter[int] = Counter((ns - start_at) // 1_000_000_000 for ns in message_ns)
        return {
            "requests": len(self.arrivals),
            "message_pushes": len(message_ns),
            "pushes_by_type": dict(kinds),
            "duplicates": duplicates,
            "unreadable": unreadable,
            "unstamped": unstamped,
            "bad_requests": self.bad_requests,
            "devices_pushed": len({index for index, _ in seen}),
            "arrival_ns": message_ns.tobytes(),
            "latencies_us": latencies_us.tobytes(),
            "per_second": [per_second.get(s, 0) for s in range(max(per_second, default=-1) + 1)],
        }


def receiver_main(pipe: Connection, config: dict[str, Any]) -> None:
    """Entry point of the receiver process (multiprocessing, spawn)."""
    asyncio.run(Receiver(pipe, config).run())
