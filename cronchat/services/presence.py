"""Presence: a user is online while a socket of theirs is open; members of their rooms hear
when that changes, and profiles keep ``last_seen_at``."""

from __future__ import annotations

import asyncio
import logging

from cronchat.db import Database
from cronchat.realtime.broker import Broker
from cronchat.repos import users
from cronchat.times import now_ms, rfc3339

log = logging.getLogger("cronchat.presence")


class Presence:
    def __init__(self, db: Database, broker: Broker) -> None:
        self.db = db
        self.broker = broker
        self._tasks: set[asyncio.Task[None]] = set()

    def changed(self, user_id: str, online: bool, room_ids: set[str]) -> None:
        """Hub callback (synchronous): record and announce in the background."""
        task = asyncio.ensure_future(self._announce(user_id, online, sorted(room_ids)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _announce(self, user_id: str, online: bool, room_ids: list[str]) -> None:
        seen = now_ms()
        try:
            await self.db.run(users.set_last_seen, user_id, seen)
        except Exception as error:  # presence is best effort; the database may be down
            log.warning("last_seen_at not saved user_id=%s error=%s", user_id, type(error).__name__)
        await self.broker.publish(
            {
                "kind": "presence",
                "user_id": user_id,
                "online": online,
                "last_seen_at": rfc3339(seen),
                "room_ids": room_ids,
            }
        )

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
