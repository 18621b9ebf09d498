"""Presence: a user is online while a socket of theirs is open; members of their rooms hear
when that changes, and profiles keep ``last_seen_at``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from cronchat.db import Database
from cronchat.realtime.broker import Broker
from cronchat.realtime.presence_store import HEARTBEAT_SECONDS, PresenceStore
from cronchat.repos import users
from cronchat.times import now_ms, rfc3339

log = logging.getLogger("cronchat.presence")


class Presence:
    def __init__(
        self,
        db: Database,
        broker: Broker,
        store: PresenceStore,
        local_users: Callable[[], list[str]],
    ) -> None:
        self.db = db
        self.broker = broker
        self.store = store
        self._local_users = local_users
        self._tasks: set[asyncio.Task[None]] = set()
        self._heartbeat: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._heartbeat = asyncio.create_task(self._renew())

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await self.store.heartbeat(self._local_users())

    async def online(self, user_ids: Iterable[str]) -> set[str]:
        """Which of these users have a socket open, on any process."""
        return await self.store.online(user_ids)

    def changed(self, user_id: str, online: bool, room_ids: set[str]) -> None:
        """Hub callback (synchronous): record and announce in the background."""
        task = asyncio.ensure_future(self._announce(user_id, online, sorted(room_ids)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _announce(self, user_id: str, online: bool, room_ids: list[str]) -> None:
        if online:
            await self.store.arrived(user_id)
        elif await self.store.left(user_id):
            return  # still connected through another process: nothing changed for others
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

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.store.close()
