"""This process's open sockets, by user, and what is done to all of them at once: the
keep-alive round, a broadcast, closing the sockets of revoked sessions (and forgetting
that those sessions were live) or of a shutdown."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Protocol

from cronchat.realtime.session_cache import SessionCache

CLOSE_REVOKED = 4003


class Connection(Protocol):
    """A socket as the hub sees it."""

    @property
    def user_id(self) -> str: ...

    @property
    def session_id(self) -> str: ...

    def send_frame(self, frame: bytes) -> None: ...

    def send_event(self, room_id: str, seq: int, frame: bytes) -> None: ...

    def skipped(self, room_id: str, from_seq: int, to_seq: int) -> None: ...

    def close_with(self, code: int, reason: str) -> None: ...

    def keep_alive(self, heard_since: float) -> None: ...


class Sockets:
    def __init__(self, sessions: SessionCache) -> None:
        # The sessions REST requests believe live: a revocation closes the sockets and
        # forgets the sessions in one step, on the notice that reaches every process.
        self.sessions = sessions
        # Lists, not sets: a user has a socket or two, and an empty set costs three times a
        # short list, for every connected user.
        self._by_user: dict[str, list[Connection]] = defaultdict(list)

    def is_online(self, user_id: str) -> bool:
        return bool(self._by_user.get(user_id))

    def online_users(self) -> list[str]:
        """Users with a socket in this process."""
        return list(self._by_user)

    def connection_count(self) -> int:
        return sum(len(sockets) for sockets in self._by_user.values())

    def of(self, user_id: str) -> Iterable[Connection]:
        """The user's sockets here (none when they have none)."""
        return self._by_user.get(user_id, ())

    def add(self, connection: Connection) -> bool:
        """Answers whether it is the user's first socket here."""
        sockets = self._by_user[connection.user_id]
        sockets.append(connection)
        return len(sockets) == 1

    def remove(self, connection: Connection) -> bool:
        """Forget a socket; answers whether it was here (safe to call twice)."""
        sockets = self._by_user.get(connection.user_id)
        if sockets is None or connection not in sockets:
            return False
        sockets.remove(connection)
        if not sockets:
            del self._by_user[connection.user_id]
        return True

    def _all(self) -> Iterator[Connection]:
        """Every socket, from a copy: callers may close some on the way."""
        for sockets in list(self._by_user.values()):
            yield from list(sockets)

    def broadcast(self, frame: bytes) -> None:
        for connection in self._all():
            connection.send_frame(frame)

    def revoke(self, session_ids: Iterable[str], user_id: str | None = None) -> None:
        """Close the sockets of these sessions (4003), and stop believing them live (all of
        the user's, when ``user_id`` is given). Rare (a logout, a password change): a scan
        of the sockets costs less than an index by session kept for every socket."""
        revoked = set(session_ids)
        self.sessions.forget_sessions(revoked)
        if user_id is not None:
            self.sessions.forget_user(user_id)
        for connection in self._all():
            if connection.session_id in revoked:
                connection.close_with(CLOSE_REVOKED, "session revoked")

    def resync(self, frame: bytes) -> None:
        """Notices may have been missed: every socket is told to resume (``frame``), and no
        session is believed live until it is read again."""
        self.sessions.clear()
        self.broadcast(frame)

    def close_all(self, code: int, reason: str) -> None:
        for connection in self._all():
            connection.close_with(code, reason)

    async def keep_alive(self, interval: float) -> None:
        """Ping every socket each ``interval`` seconds; drop those not heard from (a pong or
        any frame) since the previous round. One task for all sockets, not one per socket."""
        while True:
            heard_since = time.monotonic()
            await asyncio.sleep(interval)
            for connection in self._all():
                connection.keep_alive(heard_since)
