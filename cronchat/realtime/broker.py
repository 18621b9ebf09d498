"""Brokers carry notices (room events, summaries, typing, revocations...) to every process.

The in-process broker hands notices straight to the local subscribers; the Redis broker
(same interface) crosses processes and machines. A publication is a list: the notices of
one commit go together, in order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from cronchat.realtime.notices import Notice

log = logging.getLogger("cronchat.broker")

Subscriber = Callable[[Notice], None]


def hand_to(subscribers: list[Subscriber], notices: Sequence[Notice]) -> None:
    """Give notices to each local subscriber in order; one failing does not stop the others."""
    for notice in notices:
        for subscriber in subscribers:
            try:
                subscriber(notice)
            except Exception:
                log.exception("subscriber failed kind=%s", type(notice).__name__)


class Broker(Protocol):
    def subscribe(self, subscriber: Subscriber) -> None: ...

    async def publish(self, notices: Sequence[Notice]) -> None: ...

    async def start(self) -> None: ...

    async def check(self) -> bool: ...

    async def close(self) -> None: ...


class InProcessBroker:
    """One process: publishing is calling the subscribers."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    async def publish(self, notices: Sequence[Notice]) -> None:
        hand_to(self._subscribers, notices)

    async def start(self) -> None:
        return None

    async def check(self) -> bool:
        return True

    async def close(self) -> None:
        self._subscribers.clear()
