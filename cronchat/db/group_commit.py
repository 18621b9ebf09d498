"""Group commit: concurrent callers' writes share one transaction.

A database commits a transaction of a hundred rows nearly as fast as one of a single row, so
when many callers write at once, committing them together multiplies throughput. While a
transaction runs, the items that arrive wait and go into the next one. Each caller still
gets its own outcome, a result or its own error, as if it had committed alone.

Items carry a key (a send, its room). A key is in at most one transaction at a time and its
items go in the order they were submitted; transactions of disjoint keys run side by side,
up to ``max_in_flight`` of them, each on a connection of its own. So a room's writes keep
their order (a sender's messages take seqs in the order sent), while a send to another room
does not wait for this room's commit, and the next batch of a busy room is gathered while
the current one commits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

from cronchat.db.database import Database, Tx
from cronchat.errors import Unavailable

log = logging.getLogger("cronchat.db")

I = TypeVar("I")  # noqa: E741 - an item, as R is a result
R = TypeVar("R")

# Runs in one transaction: one outcome per item, in order; an item's own failure is its
# outcome (an exception), so that it does not fail the others.
# (A Sequence, not a list, so that a function whose errors are a narrower type fits.)
BatchFn = Callable[[Tx, list[I]], Sequence["R | Exception"]]

MAX_ITEMS = 200


class GroupCommit(Generic[I, R]):
    def __init__(
        self,
        db: Database,
        batch_fn: BatchFn[I, R],
        max_items: int = MAX_ITEMS,
        observe_size: Callable[[int], None] | None = None,
        key: Callable[[I], Hashable] | None = None,
        max_in_flight: int = 1,
    ) -> None:
        self._db = db
        self._batch_fn = batch_fn
        self._max_items = max_items
        self._observe_size = observe_size
        self._key = key or (lambda item: None)
        self._max_in_flight = max_in_flight if key is not None else 1
        self._pending: list[tuple[I, asyncio.Future[R]]] = []
        self._busy: set[Hashable] = set()  # keys of the transactions in flight
        self._in_flight = 0

    async def submit(self, item: I) -> R:
        """Commit ``item`` with whatever else is waiting; answers its result or raises its
        error once the transaction that carried it has committed (or failed)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._start_batches()
        return await future

    def _start_batches(self) -> None:
        """Start transactions while there are free slots and items whose keys are free."""
        while self._pending and self._in_flight < self._max_in_flight:
            batch, keys = self._take_batch()
            if not batch:
                return  # every waiting item's key is in flight: its commit starts the next
            self._in_flight += 1
            self._busy |= keys
            asyncio.ensure_future(self._run(batch, keys))

    def _take_batch(self) -> tuple[list[tuple[I, asyncio.Future[R]]], set[Hashable]]:
        """The oldest items whose keys are not in flight, in order, up to ``max_items``."""
        batch: list[tuple[I, asyncio.Future[R]]] = []
        keys: set[Hashable] = set()
        left: list[tuple[I, asyncio.Future[R]]] = []
        for entry in self._pending:
            key = self._key(entry[0])
            if len(batch) < self._max_items and key not in self._busy:
                batch.append(entry)
                keys.add(key)
            else:
                left.append(entry)
        self._pending = left
        return batch, keys

    async def _run(self, batch: list[tuple[I, asyncio.Future[R]]], keys: set[Hashable]) -> None:
        try:
            await self._commit(batch)
        finally:
            self._in_flight -= 1
            self._busy -= keys
            self._start_batches()

    async def _commit(self, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        if self._observe_size is not None:
            self._observe_size(len(batch))
        try:
            outcomes = await self._db.run(self._batch_fn, [item for item, _ in batch])
        except Exception as error:
            if len(batch) == 1 or isinstance(error, Unavailable):
                for _, future in batch:
                    _settle(future, error)
                return
            # The transaction failed for a reason of its items (a unique key raced another
            # process, say): each item alone, so that it fails only its own caller.
            log.info("group commit of %d split error=%s", len(batch), type(error).__name__)
            for entry in batch:
                await self._commit([entry])
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            _settle(future, outcome)


def _settle(future: asyncio.Future, outcome: object) -> None:
    if future.done():  # the caller went away
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
