"""Edits and deletions of messages: the sender edits; the sender, an admin or the owner
deletes, as redaction (:mod:`cronchat.services.redaction`)."""

from __future__ import annotations

from dataclasses import dataclass

from cronchat.db import Database, Tx
from cronchat.errors import Conflict, Forbidden
from cronchat.event_data import shared_message_data
from cronchat.models import Event, Message, User
from cronchat.realtime.notifier import Notifier
from cronchat.repos import events, messages
from cronchat.services.access import get_message_owner, require_member
from cronchat.services.media import Media
from cronchat.services.redaction import Redacted, redact_tx
from cronchat.services.sending import check_text
from cronchat.times import now_ms


@dataclass(frozen=True, slots=True)
class EditMessage:
    text: str


class Edits:
    def __init__(self, db: Database, notify: Notifier, max_text_length: int, media: Media) -> None:
        self.db = db
        self.notify = notify
        self.media = media
        self.max_text_length = max_text_length

    async def edit(self, user: User, room_id: str, message_id: str, cmd: EditMessage) -> Message:
        text = check_text(cmd.text, self.max_text_length, required=True)
        message, edited = await self.db.run(self._edit_tx, user.id, room_id, message_id, text)
        await self.notify.events(edited)
        return message

    @staticmethod
    def _edit_tx(
        tx: Tx, user_id: str, room_id: str, message_id: str, text: str
    ) -> tuple[Message, list[Event]]:
        require_member(tx, room_id, user_id)
        owner = get_message_owner(tx, room_id, message_id)
        if owner.sender_id != user_id:
            raise Forbidden("only the sender may edit a message")
        if owner.deleted_at is not None:
            raise Conflict("the message is deleted")
        now = now_ms()
        messages.set_text(tx, message_id, text, now)
        message = messages.find_message(tx, room_id, message_id, user_id)
        assert message is not None
        event = events.append(
            tx, room_id, "message.edited", user_id, shared_message_data(message), now
        )
        return message, [event]

    async def delete(self, user: User, room_id: str, message_id: str) -> None:
        """Delete (sender, admin or owner) as redaction, leaving a tombstone; deleting twice
        is harmless. The media's files leave the store once the deletion has committed."""
        redacted = await self.db.run(self._delete_tx, user.id, room_id, message_id)
        if redacted is None:
            return
        await self.notify.summary_events([redacted.event], redacted.last_message)
        if redacted.released_media is not None:
            await self.media.remove_files(redacted.released_media)

    @staticmethod
    def _delete_tx(tx: Tx, user_id: str, room_id: str, message_id: str) -> Redacted | None:
        membership = require_member(tx, room_id, user_id)
        owner = get_message_owner(tx, room_id, message_id)
        if owner.sender_id != user_id and membership.role not in ("owner", "admin"):
            raise Forbidden("only the sender, an admin or the owner may delete a message")
        if owner.deleted_at is not None:
            return None
        return redact_tx(tx, room_id, message_id, owner.media_id, user_id, now_ms())
