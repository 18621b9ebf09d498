"""The hub: this process's open sockets, indexed by user, session and room.

It receives every notice from the broker and delivers it to the local sockets concerned.
Each notice is serialised once; the same frame goes to every recipient.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Protocol

from cronchat.realtime.broker import Notice

log = logging.getLogger("cronchat.hub")

CLOSE_REVOKED = 4003


class Connection(Protocol):
    user_id: str
    session_id: str

    def close_with(self, code: int, reason: str) -> None: ...


class Hub:
    def __init__(self) -> None:
        self._by_user: dict[str, set[Connection]] = defaultdict(set)
        self._by_session: dict[str, set[Connection]] = defaultdict(set)

    def is_online(self, user_id: str) -> bool:
        return bool(self._by_user.get(user_id))

    def add(self, connection: Connection) -> None:
        self._by_user[connection.user_id].add(connection)
        self._by_session[connection.session_id].add(connection)

    def remove(self, connection: Connection) -> None:
        """Forget a socket everywhere; safe to call twice."""
        for index, key in (
            (self._by_user, connection.user_id),
            (self._by_session, connection.session_id),
        ):
            sockets = index.get(key)
            if sockets is not None:
                sockets.discard(connection)
                if not sockets:
                    del index[key]

    def deliver(self, notice: Notice) -> None:
        """Broker subscriber: route one notice to the local sockets it concerns."""
        if notice.get("kind") == "sessions.revoked":
            for session_id in notice["session_ids"]:
                for connection in list(self._by_session.get(session_id, ())):
                    connection.close_with(CLOSE_REVOKED, "session revoked")

    def close_all(self, code: int, reason: str) -> None:
        for sockets in list(self._by_user.values()):
            for connection in list(sockets):
                connection.close_with(code, reason)
