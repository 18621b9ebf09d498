"""Brokers carry notices (room events, summaries, typing, revocations...) to every process.

A notice is a JSON-able dict with a ``kind``. The in-process broker hands it straight to the
local subscribers; the Redis broker (same interface) crosses processes and machines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("cronchat.broker")

Notice = dict[str, Any]
Subscriber = Callable[[Notice], None]


def hand_to(subscribers: list[Subscriber], notice: Notice) -> None:
    """Give a notice to each local subscriber; one failing does not stop the others."""
    for subscriber in subscribers:
        try:
            subscriber(notice)
        except Exception:
            log.exception("subscriber failed kind=%s", notice.get("kind"))


class Broker(Protocol):
    def subscribe(self, subscriber: Subscriber) -> None: ...

    async def publish(self, notice: Notice) -> None: ...

    async def start(self) -> None: ...

    async def check(self) -> bool: ...

    async def close(self) -> None: ...


class InProcessBroker:
    """One process: publishing is calling the subscribers."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    async def publish(self, notice: Notice) -> None:
        hand_to(self._subscribers, notice)

    async def start(self) -> None:
        return None

    async def check(self) -> bool:
        return True

    async def close(self) -> None:
        self._subscribers.clear()
