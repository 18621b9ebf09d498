"""Reactions: a member adds or removes their emoji on a message; idempotent."""

from __future__ import annotations

from cronchat.db import Database, Tx
from cronchat.errors import Conflict, Invalid
from cronchat.models import Event, User
from cronchat.realtime.notifier import Notifier
from cronchat.repos import events, messages
from cronchat.services.access import get_message_owner, require_member
from cronchat.services.emoji import is_emoji
from cronchat.services.moderation import require_unmuted
from cronchat.times import now_ms


class Reactions:
    def __init__(self, db: Database, notify: Notifier) -> None:
        self.db = db
        self.notify = notify

    async def react(self, user: User, room_id: str, message_id: str, emoji: str, add: bool) -> None:
        """Add or remove the caller's reaction; idempotent, an event only when it changes."""
        if not is_emoji(emoji):
            raise Invalid("emoji must be one emoji or a :shortcode:", field="emoji")
        changed = await self.db.run(self._react_tx, user.id, room_id, message_id, emoji, add)
        await self.notify.events(changed)

    @staticmethod
    def _react_tx(
        tx: Tx, user_id: str, room_id: str, message_id: str, emoji: str, add: bool
    ) -> list[Event]:
        now = now_ms()
        require_unmuted(require_member(tx, room_id, user_id).muted_until, now)
        owner = get_message_owner(tx, room_id, message_id)
        if owner.deleted_at is not None:
            raise Conflict("the message is deleted")
        if add:
            changed = messages.add_reaction(tx, message_id, user_id, emoji, now)
        else:
            changed = messages.remove_reaction(tx, message_id, user_id, emoji)
        if not changed:
            return []
        data = {"message_id": message_id, "emoji": emoji, "user_id": user_id}
        event_type = "reaction.added" if add else "reaction.removed"
        return [events.append(tx, room_id, event_type, user_id, data, now)]
