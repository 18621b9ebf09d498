"""Notices through the database, from processes that serve no sockets to those that do.

The ``cronchat`` command acts in a process of its own, which neither an in-process broker
nor (without a started subscription) Redis connects to the servers. The database is the one
thing every process always shares, so the CLI's broker writes each notice into the
``notices`` table right after the act's commit, and every server process polls that table
and hands what it finds to its own hub. Each process reads the table itself, so a notice
reaches each process exactly once, with or without Redis (nothing read here is published
again). The cost is one query on the primary key per interval per process, whatever the
traffic; the CLI prunes what is older than a few minutes when it writes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cronchat.db import Database, Tx
from cronchat.realtime import notices as notices_json
from cronchat.realtime.broker import Subscriber, hand_to
from cronchat.realtime.notices import Notice
from cronchat.repos import notices
from cronchat.repos.notices import StoredNotice
from cronchat.times import now_ms

log = logging.getLogger("cronchat.relay")

# An administrator's act reaches the sockets within about this long. Shorter moves the tail
# latency of busy servers: each poll wakes a database thread, and on a loaded machine the
# IOLoop can wait for it to hand the GIL back (fanout p99 +15 ms at 0.25 s, within noise at 1 s).
POLL_SECONDS = 1.0
BATCH = 200
# Rows live this long: a server whose database was away for less reads them when it returns.
KEEP_MS = 10 * 60 * 1000
# How long a missing id is waited for before it counts as an insert that was rolled back.
HOLE_SECONDS = 5.0
# A database that has not answered a check within this long counts as down.
CHECK_SECONDS = 2.0


class DatabaseBroker:
    """The broker of a process that serves no sockets: publishing records the notice for
    the servers to read. Nothing is delivered in this process, which has nobody to deliver
    to, so subscribers are not kept."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def subscribe(self, subscriber: Subscriber) -> None:
        return None

    async def publish(self, notices: Sequence[Notice]) -> None:
        """Returns once the notices are committed, in one transaction: every server reads
        them within an interval."""
        shaped = [notices_json.to_json(notice) for notice in notices]
        await self.db.run(_record_tx, shaped, now_ms())

    async def start(self) -> None:
        return None

    async def check(self) -> bool:
        return await self.db.check(CHECK_SECONDS)

    async def close(self) -> None:
        return None


def _record_tx(tx: Tx, shaped: list[dict[str, Any]], now: int) -> None:
    for notice in shaped:
        notices.insert_notice(tx, notice, now)
    notices.prune_notices(tx, created_before=now - KEEP_MS)


@dataclass(slots=True)
class ReadCursor:
    """Which notices this process has handed on: every id up to ``floor``, and ``handed``
    above it.

    On MySQL an id is taken at insert but seen at commit, so two CLI acts at once can make a
    higher id visible before a lower one. Reading from ``floor`` (not from the highest id
    seen) finds the lower one when it commits; an id still missing after ``HOLE_SECONDS``
    is taken for a rolled-back insert and passed."""

    floor: int
    handed: set[int] = field(default_factory=set)
    hole_since: float | None = None

    def fresh(self, found: list[StoredNotice], now: float) -> list[StoredNotice]:
        """What of a read of the ids above ``floor`` was not handed on yet; the cursor moves."""
        new = [stored for stored in found if stored.id not in self.handed]
        self.handed.update(stored.id for stored in new)
        self._advance()
        if not self.handed:
            self.hole_since = None
        elif self.hole_since is None:
            self.hole_since = now
        elif now - self.hole_since >= HOLE_SECONDS:
            self.floor = min(self.handed) - 1
            self._advance()
            self.hole_since = now if self.handed else None
        return new

    def _advance(self) -> None:
        while self.floor + 1 in self.handed:
            self.floor += 1
            self.handed.remove(self.floor)


class NoticeRelay:
    """A server process's reader of the table: polls it and hands each new notice, once,
    to the local subscriber (the hub). Reads run in the database pool, never on the IOLoop."""

    def __init__(self, db: Database, deliver: Subscriber, interval: float = POLL_SECONDS) -> None:
        self.db = db
        self._deliver = deliver
        self.interval = interval
        self._cursor: ReadCursor | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def start(self) -> None:
        """Start after the newest notice: what was published before this process ran is
        not replayed."""
        try:
            await self._open()
        except Exception as error:  # the database may be away: the poll opens it later
            self._fails(error)
        self._task = asyncio.create_task(self._poll())

    async def _open(self) -> ReadCursor:
        if self._cursor is None:
            self._cursor = ReadCursor(await self.db.read(notices.newest_notice_id))
        return self._cursor

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                cursor = await self._open()
                found = await self.db.read(notices.notices_after, cursor.floor, BATCH)
            except Exception as error:  # the database may be away: read again next interval
                self._fails(error)
                continue
            if self._failing:
                log.info("notice relay reading again")
                self._failing = False
            fresh = cursor.fresh(found, time.monotonic())
            received = (notices_json.from_json(stored.notice) for stored in fresh)
            hand_to([self._deliver], [notice for notice in received if notice is not None])

    def _fails(self, error: Exception) -> None:
        if not self._failing:
            log.warning("notice relay cannot read error=%s", type(error).__name__)
        self._failing = True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
