"""Time as the API shows it: milliseconds since the epoch inside, RFC 3339 UTC outside."""

from __future__ import annotations

import time
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
