"""Edits and deletions of messages: the sender edits; the sender, an admin or the owner
deletes, as redaction (:mod:`cronchat.services.redaction`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cronchat.db import Database, Tx
from cronchat.errors import Conflict, Forbidden
from cronchat.event_data import shared_message_data
from cronchat.models import Event, Membership, Mentions, Message, User
from cronchat.realtime.notifier import Notifier
from cronchat.repos import audit, events, mentions, messages, rooms
from cronchat.services.access import get_message_owner, require_member
from cronchat.services.media import Media
from cronchat.services.mentions import kept_mentions, read_mentions
from cronchat.services.moderation import require_unmuted
from cronchat.services.redaction import Redacted, redact_tx
from cronchat.services.sending import check_text
from cronchat.times import now_ms


@dataclass(frozen=True, slots=True)
class EditMessage:
    text: str
    mentions: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class _Edited:
    """An edit as committed; ``mentions_before`` is set when it changed the mentions,
    which moves mention counts (``last_message`` then goes with the summaries)."""

    message: Message
    event: Event
    mentions_before: Mentions | None = None
    last_message: Message | None = None


class Edits:
    def __init__(self, db: Database, notify: Notifier, max_text_length: int, media: Media) -> None:
        self.db = db
        self.notify = notify
        self.media = media
        self.max_text_length = max_text_length

    async def edit(self, user: User, room_id: str, message_id: str, cmd: EditMessage) -> Message:
        """Edit the text, and the mentions when given (otherwise they stay)."""
        text = check_text(cmd.text, self.max_text_length, required=True)
        asked = read_mentions(cmd.mentions)
        edited = await self.db.run(self._edit_tx, user.id, room_id, message_id, text, asked)
        if edited.mentions_before is None:
            await self.notify.events([edited.event])
        else:
            await self.notify.summary_events(
                [edited.event], edited.last_message, edited.mentions_before
            )
        return edited.message

    @staticmethod
    def _edit_tx(
        tx: Tx, user_id: str, room_id: str, message_id: str, text: str, asked: Mentions | None
    ) -> _Edited:
        membership = require_member(tx, room_id, user_id)
        now = now_ms()
        require_unmuted(membership.muted_until, now)
        owner = get_message_owner(tx, room_id, message_id)
        if owner.sender_id != user_id:
            raise Forbidden("only the sender may edit a message")
        if owner.deleted_at is not None:
            raise Conflict("the message is deleted")
        kept = None if asked is None else _kept_tx(tx, membership, asked)
        messages.set_text(tx, message_id, text, now)
        changed = kept is not None and kept != owner.mentions
        if kept is not None and changed:
            _replace_mentions(tx, room_id, message_id, owner, kept)
        message = messages.find_message(tx, room_id, message_id, user_id)
        assert message is not None
        event = events.append(
            tx, room_id, "message.edited", user_id, shared_message_data(message), now
        )
        if not changed:
            return _Edited(message, event)
        last = messages.last_messages(tx, [room_id], user_id).get(room_id)
        return _Edited(message, event, owner.mentions, last)

    async def delete(self, user: User, room_id: str, message_id: str) -> None:
        """Delete (sender, admin or owner) as redaction, leaving a tombstone; deleting twice
        is harmless. The media's files leave the store once the deletion has committed."""
        redacted = await self.db.run(self._delete_tx, user.id, room_id, message_id)
        if redacted is None:
            return
        await self.notify.summary_events([redacted.event], redacted.last_message, redacted.mentions)
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
        now = now_ms()
        if owner.sender_id != user_id:
            audit.record(
                tx,
                "message.deleted",
                user_id,
                now,
                room_id=room_id,
                target_user_id=owner.sender_id,
                message_id=message_id,
            )
        return redact_tx(tx, room_id, message_id, owner, user_id, now)


def _kept_tx(tx: Tx, membership: Membership, asked: Mentions) -> Mentions:
    """What an edit keeps of the mentions asked (the rules of a send)."""
    room = rooms.find_room(tx, membership.room_id)
    assert room is not None
    pairs = {(membership.room_id, user_id) for user_id in asked.user_ids}
    members = {user_id for _, user_id in rooms.members_among(tx, pairs)} if pairs else set()
    return kept_mentions(
        asked, membership.user_id, members, room.kind, room.member_count, membership.role
    )


def _replace_mentions(
    tx: Tx, room_id: str, message_id: str, owner: messages.MessageOwner, kept: Mentions
) -> None:
    """The message's mentions become ``kept``: rows of those dropped go, rows of those newly
    mentioned come (dated with the message, so that the feed keeps its order)."""
    before = mentions.row_user_ids(owner.mentions)
    after = mentions.row_user_ids(kept)
    mentions.delete_mentions(
        tx, message_id, [user_id for user_id in before if user_id not in after]
    )
    mentions.insert_mentions(
        tx,
        [
            mentions.MentionRow(
                message_id, user_id, room_id, owner.seq, owner.sender_id, owner.created_at
            )
            for user_id in after
            if user_id not in before
        ],
    )
    messages.set_mentions(tx, message_id, kept)
