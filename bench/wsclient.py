"""A minimal WebSocket client on a raw asyncio Protocol: the load generator's socket.

tornado.websocket's client costs several times more CPU per received frame (futures, a
coroutine per message, unmasking in Python); on a 2-core machine shared with the server
that would make the generator the bottleneck. This one parses frames straight out of
each chunk the kernel hands over and classifies them by their first bytes; only rare
frames (ready, errors, anything unexpected) are parsed as JSON.

Client frames are masked, as RFC 6455 requires, with an all-zero masking key: a valid
key that leaves the payload as it is, so nothing needs XOR-ing in Python.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import time
from typing import Any

_EVENT = b'{"type":"event","event":{"room_id":"'
_EVENT_ROOM_AT = len(_EVENT)
_ACK = b'{"type":"ack","id":'
_ACK_ID_AT = len(_ACK)
_SUMMARY = b'{"type":"room.summary"'
_MENTION = b'{"type":"mention"'
# Outside strings a JSON quote is never escaped, so this is the key, wherever it stands.
_NOTIFY = b'"notify":true'
# A member's own summary inside an event frame: the last key of the frame.
_INLINE_SUMMARY = b'},"room":{"id":"'
_TEXT = b'"text":"b'
_SEQ = b'","seq":'
_ZERO_MASK = b"\x00\x00\x00\x00"


class BenchSocket(asyncio.Protocol):
    """One client socket. ``counters`` is shared by all sockets of a process."""

    def __init__(self, spec: dict[str, Any], host: str, port: int, counters: Any) -> None:
        self.spec = spec
        self.host = host
        self.port = port
        self.counters = counters
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.head = b""
        self.pending = b""
        self.fragments: list[bytes] | None = None
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[dict] = loop.create_future()
        self.closed: asyncio.Future[int | None] = loop.create_future()
        self.close_code: int | None = None
        self.last_seq: dict[str, int] = {}
        # Sender side: frame id -> frame bytes not yet acknowledged.
        self.unacked: dict[int, bytes] = {}
        self.window: asyncio.Semaphore | None = None
        self.all_acked: asyncio.Event = asyncio.Event()
        self.acked = 0
        self.mentions = 0  # mention frames received

    # -- connection ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            "GET /api/v1/ws HTTP/1.1\r\n"
            f"Host: {self.host}:{self.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {self.spec['token']}\r\n\r\n"
        )
        transport.write(request.encode())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before ready ({self.close_code})"))
        if not self.closed.done():
            self.closed.set_result(self.close_code)

    def send_text(self, payload: bytes) -> None:
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x81, 0x80 | length)
        elif length <= 0xFFFF:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, length)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(header + _ZERO_MASK + payload)

    def _send_control(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(bytes((0x80 | opcode, 0x80 | len(payload))) + _ZERO_MASK + payload)

    def close(self, code: int = 1000) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self._send_control(0x8, struct.pack("!H", code))
        self.transport.close()

    # -- receiving -----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if not self.upgraded:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.head.startswith(b"HTTP/1.1 101"):
                self.counters.handshake_failures += 1
                status = self.head.split(b"\r\n", 1)[0].decode(errors="replace")
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(f"upgrade refused: {status}"))
                if self.transport is not None:
                    self.transport.close()
                return
            self.upgraded = True
            data = self.head[end + 4 :]
            self.head = b""
            if not data:
                return
        if self.pending:
            data = self.pending + data
        now = time.monotonic_ns()
        size = len(data)
        at = 0
        while size - at >= 2:
            length = data[at + 1] & 0x7F
            start = at + 2
            if length == 126:
                if size - at < 4:
                    break
                length = (data[at + 2] << 8) | data[at + 3]
                start = at + 4
            elif length == 127:
                if size - at < 10:
                    break
                length = int.from_bytes(data[at + 2 : at + 10], "big")
                start = at + 10
            end = start + length
            if end > size:
                break
            first = data[at]
            at = end
            opcode = first & 0x0F
            if opcode == 0x1 or opcode == 0x2 or opcode == 0x0:
                payload = data[start:end]
                if not first & 0x80:  # a fragment: keep until the final one
                    self.fragments = (self.fragments or []) + [payload]
                    continue
                if opcode == 0x0 and self.fragments is not None:
                    payload = b"".join(self.fragments) + payload
                    self.fragments = None
                self._on_text(payload, now)
            elif opcode == 0x9:
                self._send_control(0xA, data[start:end])
            elif opcode == 0x8:
                body = data[start:end]
                self.close_code = struct.unpack("!H", body[:2])[0] if len(body) >= 2 else 1005
                self.counters.count_close(self.close_code)
                self.close(self.close_code if self.close_code not in (1005, 1006) else 1000)
                return
        self.pending = data[at:] if at < size else b""

    def _on_text(self, payload: bytes, now: int) -> None:
        counters = self.counters
        counters.frames += 1
        if payload.startswith(_EVENT):
            room_end = payload.find(_SEQ, _EVENT_ROOM_AT)
            seq_end = payload.find(b",", room_end + 8)
            if room_end < 0 or seq_end < 0:
                self._on_other(payload)
                return
            if payload.rfind(_INLINE_SUMMARY, seq_end) > 0:
                counters.summaries += 1
            room_id = payload[_EVENT_ROOM_AT:room_end]
            seq = int(payload[room_end + 8 : seq_end])
            last = self.last_seq.get(room_id)
            if last is not None:
                if seq <= last:
                    counters.duplicates += 1
                    return
                if seq > last + 1:
                    counters.gaps += 1
            self.last_seq[room_id] = seq
            text = payload.find(_TEXT, seq_end)
            if text < 0:
                counters.other_events += 1
                return
            stamp_end = payload.find(b".", text + 9)
            sent_ns = int(payload[text + 9 : stamp_end])
            counters.on_bench_event(now - sent_ns, now)
        elif payload.startswith(_SUMMARY):
            counters.summaries += 1
        elif payload.startswith(_MENTION):
            self._on_mention(_NOTIFY in payload)
        elif payload.startswith(_ACK):
            id_end = payload.find(b",", _ACK_ID_AT)
            try:
                frame_id = int(payload[_ACK_ID_AT:id_end])
            except ValueError:
                self._on_other(payload)
                return
            self._on_ack(frame_id, now)
        else:
            self._on_other(payload)

    def _on_mention(self, notify: bool) -> None:
        self.mentions += 1
        self.counters.mentions += 1
        if notify:
            self.counters.mentions_notify += 1

    def _on_ack(self, frame_id: int, now: int) -> None:
        if self.unacked.pop(frame_id, None) is None:
            self.counters.other_frames += 1
            return
        self.acked += 1
        self.counters.on_ack(now)
        if self.window is not None:
            self.window.release()
        if not self.unacked:
            self.all_acked.set()

    def _on_other(self, payload: bytes) -> None:
        counters = self.counters
        try:
            frame = json.loads(payload)
        except ValueError:
            counters.other_frames += 1
            return
        kind = frame.get("type")
        if kind == "ready":
            rooms = frame.get("rooms") or {}
            for room_id, seq in rooms.items():
                self.last_seq[room_id.encode()] = seq
            if not self.ready.done():
                self.ready.set_result(frame)
        elif kind == "event":
            # Not in the fast layout (should not happen): count it, keep the seq order check.
            event = frame.get("event") or {}
            room_id = str(event.get("room_id", "")).encode()
            self.last_seq[room_id] = max(self.last_seq.get(room_id, 0), event.get("seq", 0))
            counters.other_events += 1
            if "room" in frame:
                counters.summaries += 1
        elif kind == "mention":
            self._on_mention(frame.get("notify") is True)
        elif kind == "error":
            self._on_error(frame)
        elif kind == "presence":
            counters.presence += 1
        else:
            counters.other_frames += 1

    def _on_error(self, frame: dict) -> None:
        frame_id = frame.get("id")
        code = frame.get("code", "?")
        self.counters.count_error(code, frame.get("message", ""))
        if not isinstance(frame_id, int) or frame_id not in self.unacked:
            return
        if code == "rate_limited":
            delay = float(frame.get("retry_after_ms") or 50) / 1000.0
            payload = self.unacked[frame_id]
            asyncio.get_running_loop().call_later(delay, self.send_text, payload)
            return
        # Refused for good: the message was not sent; free its window slot.
        self.unacked.pop(frame_id)
        if self.window is not None:
            self.window.release()
        if not self.unacked:
            self.all_acked.set()
