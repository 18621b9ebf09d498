"""Time as the API shows it: milliseconds since the epoch inside, RFC 3339 UTC outside."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    return int(time.time() * 1000)


def rfc3339(ms: int | None) -> str | None:
    """``2026-11-24T10:00:00.123Z`` for a time in milliseconds; None stays None."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
