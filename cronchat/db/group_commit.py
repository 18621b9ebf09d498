"""Group commit: concurrent callers' writes share one transaction.

A database commits a transaction of a hundred rows nearly as fast as one of a single row, so
when many callers write at once, committing them together multiplies throughput. While one
transaction runs, the items that arrive wait and go into the next one. Each caller still
gets its own outcome, a result or its own error, as if it had committed alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
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
    ) -> None:
        self._db = db
        self._batch_fn = batch_fn
        self._max_items = max_items
        self._observe_size = observe_size
        self._pending: list[tuple[I, asyncio.Future[R]]] = []
        self._drainer: asyncio.Future[None] | None = None  # the loop committing, while it runs

    async def submit(self, item: I) -> R:
        """Commit ``item`` with whatever else is waiting; answers its result or raises its
        error once the transaction that carried it has committed (or failed)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._drainer is None:
            self._drainer = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_items]
                del self._pending[: self._max_items]
                await self._commit(batch)
        finally:
            self._drainer = None

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
