"""Which sessions are live, from memory: a REST request is authenticated without a database
round trip, and a revocation still answers 401 at once.

An entry is remembered after a database read found the session live and its user enabled.
It is forgotten when a revocation notice names its session or its user (on every process:
the notices reach each one's hub, which closes the sockets of those sessions in the same
step), when the broker may have missed notices (a resync), and at the latest ``ttl`` seconds
after the read, which bounds what a lost notice can cost. Only live answers are kept: an
unknown, revoked or disabled session is read again each time, as it was before.

Used on the IOLoop only, so nothing here needs a lock.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from cronchat.models import User

# Sessions kept at most; past it the least recently used go first (about 1 KiB each).
MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class _Entry:
    user: User
    expires_at: float  # monotonic seconds


class SessionCache:
    def __init__(
        self,
        ttl: float,
        on_hit: Callable[[], None],
        on_miss: Callable[[], None],
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self._on_hit = on_hit
        self._on_miss = on_miss
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        # Moves at every forgetting: a read that began before one is not remembered, since
        # the revocation it would have dropped may have committed after the read.
        self._generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def live_user(
        self, session_id: str, user_id: str, read: Callable[[], Awaitable[User | None]]
    ) -> User | None:
        """The user of the session if it is live, else None; ``read`` asks the database
        (once, on a miss) and its live answer is remembered."""
        entry = self._entries.get(session_id)
        if entry is not None and entry.user.id == user_id and entry.expires_at > self._clock():
            self._entries.move_to_end(session_id)
            self._on_hit()
            return entry.user
        self._on_miss()
        return await self.read_through(session_id, read)

    async def read_through(
        self, session_id: str, read: Callable[[], Awaitable[User | None]]
    ) -> User | None:
        """Read the session from the database whatever is remembered (a socket shows the
        user's profile as it is now), and remember a live answer."""
        generation = self._generation
        user = await read()
        if user is not None and generation == self._generation:
            self._remember(session_id, user)
        return user

    def _remember(self, session_id: str, user: User) -> None:
        if self.ttl <= 0:
            return
        self._entries[session_id] = _Entry(user, self._clock() + self.ttl)
        self._entries.move_to_end(session_id)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def forget_sessions(self, session_ids: Iterable[str]) -> None:
        self._generation += 1
        for session_id in session_ids:
            self._entries.pop(session_id, None)

    def forget_user(self, user_id: str) -> None:
        """Every session of the user, also one opened while the act that ended them ran.
        Rare (a user disabled, a password set): a scan costs less than an index by user."""
        self._generation += 1
        for session_id in [sid for sid, entry in self._entries.items() if entry.user.id == user_id]:
            del self._entries[session_id]

    def clear(self) -> None:
        """Notices may have been missed: nothing is believed live until read again."""
        self._generation += 1
        self._entries.clear()
