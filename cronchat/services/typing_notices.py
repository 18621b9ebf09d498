"""Typing: a member tells the others of a room that they are typing; nothing is stored."""

from __future__ import annotations

from cronchat.db import Database, Tx
from cronchat.models import User
from cronchat.realtime.notifier import Notifier
from cronchat.services.access import require_member


class TypingNotices:
    def __init__(self, db: Database, notify: Notifier) -> None:
        self.db = db
        self.notify = notify

    async def typing(self, user: User, room_id: str) -> None:
        """Tell the other members; nothing is stored."""
        await self.db.read(self._typing_tx, room_id, user.id)
        await self.notify.typing(room_id, user.id)

    @staticmethod
    def _typing_tx(tx: Tx, room_id: str, user_id: str) -> None:
        require_member(tx, room_id, user_id)
