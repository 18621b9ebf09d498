"""Blocks: a user blocks another, who can then no longer reach them.

For the blocker, the blocked user's messages count in no unread or mention count and alert
nothing, and their typing and presence are withheld; their events are still delivered (a
room's seqs stay gap-free for everyone) and clients hide them. The blocked user cannot open
a direct room with the blocker, send in their direct room, or add them to a group
(403, ``details.reason`` ``blocked``: :func:`refuse_if_blocked`).
"""

from __future__ import annotations

from cronchat.db import Database, Tx
from cronchat.errors import Forbidden, Invalid, NotFound
from cronchat.models import User
from cronchat.realtime.notifier import Notifier
from cronchat.repos import blocks, users
from cronchat.times import now_ms


def refuse_if_blocked(tx: Tx, user_id: str, by_user_id: str) -> None:
    """Forbidden (reason ``blocked``) when ``by_user_id`` blocks ``user_id``."""
    if blocks.blocks(tx, by_user_id, user_id):
        raise Forbidden("this user does not accept it from you", reason="blocked")


class Blocks:
    def __init__(self, db: Database, notify: Notifier) -> None:
        self.db = db
        self.notify = notify

    async def blocked_users(self, user: User) -> list[User]:
        return await self.db.read(blocks.blocked_users, user.id)

    async def set_blocked(self, user: User, target_id: str, blocked: bool) -> None:
        """Block or unblock (idempotent); the user's devices, on every process, learn whom
        they block now."""
        if target_id == user.id:
            raise Invalid("you cannot block yourself", field="user_id")
        changed, now_blocked = await self.db.run(self._set_tx, user.id, target_id, blocked)
        if changed:
            await self.notify.blocks(user.id, now_blocked)

    @staticmethod
    def _set_tx(tx: Tx, user_id: str, target_id: str, blocked: bool) -> tuple[bool, frozenset[str]]:
        if users.find_user(tx, target_id) is None:
            raise NotFound("no such user", field="user_id")
        if blocked:
            changed = blocks.add(tx, user_id, target_id, now_ms())
        else:
            changed = blocks.remove(tx, user_id, target_id)
        return changed, blocks.blocked_ids(tx, user_id)
