"""WebSocket frames on the wire, built once per message and written as-is to every socket.

Server frames are never masked and never compressed, so one frame's bytes are the same for
every recipient: building them once instead of per socket doubles fan-out throughput.
"""

from __future__ import annotations

import json
import struct
from typing import Any

_TEXT_FINAL = 0x81


def wire_frame(payload: bytes) -> bytes:
    """A final text frame carrying ``payload``."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", _TEXT_FINAL, length)
    elif length <= 0xFFFF:
        header = struct.pack("!BBH", _TEXT_FINAL, 126, length)
    else:
        header = struct.pack("!BBQ", _TEXT_FINAL, 127, length)
    return header + payload


def encode(frame: dict[str, Any]) -> bytes:
    """A frame dict as JSON in a wire-ready WebSocket frame."""
    return wire_frame(_json(frame))


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class SummaryFrames:
    """An event frame followed by each member's ``room.summary``, as the bytes written to
    each member. The summaries share the room, seq and last message and differ only in two
    numbers, so the shared part is serialised once, and the bytes for each distinct
    (unread_count, last_read_seq) pair are built once, whatever the number of members."""

    __slots__ = ("_event_frame", "_prefix", "_built")

    def __init__(self, event_frame: bytes, room_id: str, last_seq: int, last_message: Any) -> None:
        self._event_frame = event_frame
        self._prefix = (
            b'{"type":"room.summary","room":{"id":'
            + _json(room_id)
            + b',"last_seq":'
            + str(last_seq).encode()
            + b',"last_message":'
            + _json(last_message)
            + b',"unread_count":'
        )
        self._built: dict[tuple[int, int], bytes] = {}

    def frames(self, unread_count: int, last_read_seq: int) -> bytes:
        """The event frame, then the summary of a member with these numbers."""
        key = (unread_count, last_read_seq)
        built = self._built.get(key)
        if built is None:
            payload = b'%s%d,"last_read_seq":%d}}' % (self._prefix, unread_count, last_read_seq)
            built = self._built[key] = self._event_frame + wire_frame(payload)
        return built
