"""Time as the API shows it: milliseconds since the epoch inside, RFC 3339 UTC outside."""

from __future__ import annotations

import time
from datetime import datetime
from functools import lru_cache


def now_ms() -> int:
    return int(time.time() * 1000)


def rfc3339(ms: int | None) -> str | None:
    """``2026-11-24T10:00:00.123Z`` for a time in milliseconds; None stays None."""
    if ms is None:
        return None
    seconds, millis = divmod(ms, 1000)
    return f"{_second(seconds)}.{millis:03d}Z"


@lru_cache(maxsize=256)
def _second(seconds: int) -> str:
    """Formatting a second is the costly part, and many times fall in the same second."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def parse_rfc3339(text: str) -> int | None:
    """Milliseconds since the epoch of an RFC 3339 time with its offset (``Z`` or
    ``+hh:mm``); None when the text is not one."""
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    if parsed.tzinfo is None or "T" not in text.upper():
        return None
    return int(parsed.timestamp() * 1000)
