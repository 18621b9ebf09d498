"""Presence: a user is online while a socket of theirs is open; members of their rooms hear
when that changes, and profiles keep ``last_seen_at``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from cronchat.db import Database
from cronchat.realtime.broker import Broker
from cronchat.realtime.notices import PresenceChange, PresenceNotice
from cronchat.realtime.presence_store import HEARTBEAT_SECONDS, PresenceStore
from cronchat.repos import users
from cronchat.times import now_ms, rfc3339

log = logging.getLogger("cronchat.presence")

ANNOUNCE_DELAY_SECONDS = 0.05


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
        self._tasks: set[asyncio.Future[None]] = set()
        # Changes not yet announced: user id -> (online, their room ids).
        self._changes: dict[str, tuple[bool, list[str]]] = {}
        self._announcing = asyncio.Lock()
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
        self._spawn(self._record(user_id, online, sorted(room_ids)))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, user_id: str, online: bool, room_ids: list[str]) -> None:
        if online:
            await self.store.arrived(user_id)
        elif await self.store.left(user_id):
            return  # still connected through another process: nothing changed for others
        if not self._changes:
            self._spawn(self._announce_soon())
        self._changes[user_id] = (online, room_ids)

    async def _announce_soon(self) -> None:
        """Changes of the last moment in one notice and one write: when a thousand members
        of a room come online at once, each of them gets a few frames, not a thousand."""
        await asyncio.sleep(ANNOUNCE_DELAY_SECONDS)
        changes, self._changes = self._changes, {}
        async with self._announcing:  # in the order the changes happened
            await self._announce(changes)

    async def _announce(self, changes: dict[str, tuple[bool, list[str]]]) -> None:
        seen = now_ms()
        try:
            await self.db.run(users.set_last_seen, list(changes), seen)
        except Exception as error:  # presence is best effort; the database may be down
            log.warning(
                "last_seen_at not saved users=%d error=%s", len(changes), type(error).__name__
            )
        announced = tuple(
            PresenceChange(user_id, online, tuple(room_ids))
            for user_id, (online, room_ids) in changes.items()
        )
        await self.broker.publish([PresenceNotice(rfc3339(seen), announced)])

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.store.close()
