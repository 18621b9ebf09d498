"""Messages: sending (idempotent per client_msg_id), history, edits, deletions, reactions,
read markers, catch-up by events, and typing. REST and WebSocket both call these methods."""

from __future__ import annotations

import time
from dataclasses import dataclass

from cronchat.db import Database, Tx, UniqueViolation
from cronchat.db.group_commit import GroupCommit
from cronchat.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from cronchat.event_data import shared_message_data
from cronchat.ids import new_id
from cronchat.metrics import Metrics
from cronchat.models import Event, Message, Summary, User
from cronchat.repos import events, media, messages, rooms
from cronchat.services.access import require_member
from cronchat.services.emoji import is_emoji
from cronchat.services.media import Media
from cronchat.services.notify import Notifier
from cronchat.services.redaction import Redacted, redact_tx
from cronchat.times import now_ms

HISTORY_DEFAULT, HISTORY_MAX = 50, 200
EVENTS_DEFAULT, EVENTS_MAX = 100, 500
CLIENT_MSG_ID_MAX = 64


@dataclass(frozen=True, slots=True)
class SendMessage:
    client_msg_id: str
    kind: str | None = None
    text: str | None = None
    media_id: str | None = None
    reply_to_id: str | None = None


@dataclass(frozen=True, slots=True)
class EditMessage:
    text: str


@dataclass(frozen=True, slots=True)
class MarkRead:
    seq: int


@dataclass(frozen=True, slots=True)
class CatchUp:
    """What one room's catch-up replays: its events after the client's seq up to
    ``last_seq``, the room's last seq when read; not ``complete`` when there were more than
    the caller allows (none are read then: the client pages ``/events``)."""

    events: list[Event]
    complete: bool
    last_seq: int


@dataclass(frozen=True, slots=True)
class _Send:
    """One send, checked for shape, on its way into a group commit."""

    user_id: str
    room_id: str
    client_msg_id: str
    kind: str
    text: str | None
    media_id: str | None
    reply_to_id: str | None


@dataclass(frozen=True, slots=True)
class _Sent:
    message: Message
    created: bool
    event: Event | None = None


class Messages:
    def __init__(
        self,
        db: Database,
        notify: Notifier,
        max_text_length: int,
        metrics: Metrics,
        media: Media,
    ) -> None:
        self.db = db
        self.notify = notify
        self.media = media
        self.metrics = metrics
        self.max_text_length = max_text_length
        self._sends: GroupCommit[_Send, _Sent] = GroupCommit(
            db, _send_batch_tx, observe_size=metrics.sends_per_commit.observe
        )

    def _check_text(self, text: str | None, required: bool) -> str | None:
        cleaned = (text or "").strip()
        if not cleaned:
            if required:
                raise Invalid("text must not be empty", field="text")
            return None
        if len(cleaned) > self.max_text_length:
            raise Invalid(f"text must be at most {self.max_text_length} characters", field="text")
        return cleaned

    # -- sending -------------------------------------------------------------------------

    async def send(self, user: User, room_id: str, cmd: SendMessage) -> tuple[Message, bool]:
        """Send a message; a repeated ``client_msg_id`` answers the original, created False.
        Concurrent sends share their transactions (a group commit); each is acknowledged
        only once committed."""
        client_msg_id = cmd.client_msg_id.strip()
        if not 1 <= len(client_msg_id) <= CLIENT_MSG_ID_MAX:
            raise Invalid(
                f"client_msg_id must be 1-{CLIENT_MSG_ID_MAX} characters", field="client_msg_id"
            )
        kind = cmd.kind or ("image" if cmd.media_id else "text")
        if kind not in ("text", "image"):
            raise Invalid("kind must be text or image", field="kind")
        if kind == "text" and cmd.media_id is not None:
            raise Invalid("a text message carries no media_id; use kind image", field="media_id")
        if kind == "image" and not cmd.media_id:
            raise Invalid("an image message needs media_id", field="media_id")
        text = self._check_text(cmd.text, required=kind == "text")
        started = time.monotonic()
        send = _Send(user.id, room_id, client_msg_id, kind, text, cmd.media_id, cmd.reply_to_id)
        try:
            sent = await self._sends.submit(send)
        except UniqueViolation:
            # A retry raced the original through another process: it has committed by now.
            sent = await self.db.read(_original_tx, send)
        if sent.event is not None:
            await self.notify.message_created(sent.event)
        self.metrics.send_seconds.observe(time.monotonic() - started)
        return sent.message, sent.created

    # -- reading -------------------------------------------------------------------------

    async def history(
        self,
        user: User,
        room_id: str,
        before_seq: int | None = None,
        after_seq: int | None = None,
        limit: int = HISTORY_DEFAULT,
    ) -> tuple[list[Message], bool]:
        if not 1 <= limit <= HISTORY_MAX:
            raise Invalid(f"limit must be between 1 and {HISTORY_MAX}", field="limit")
        for name, value in (("before_seq", before_seq), ("after_seq", after_seq)):
            if value is not None and value < 0:
                raise Invalid(f"{name} must not be negative", field=name)
        return await self.db.read(self._history_tx, user.id, room_id, before_seq, after_seq, limit)

    @staticmethod
    def _history_tx(
        tx: Tx,
        user_id: str,
        room_id: str,
        before_seq: int | None,
        after_seq: int | None,
        limit: int,
    ) -> tuple[list[Message], bool]:
        require_member(tx, room_id, user_id)
        return messages.page(tx, room_id, user_id, limit, before_seq, after_seq)

    async def get_message(self, user: User, room_id: str, message_id: str) -> Message:
        return await self.db.read(self._get_tx, user.id, room_id, message_id)

    @staticmethod
    def _get_tx(tx: Tx, user_id: str, room_id: str, message_id: str) -> Message:
        require_member(tx, room_id, user_id)
        message = messages.find_message(tx, room_id, message_id, user_id)
        if message is None:
            raise NotFound("no such message")
        return message

    async def events_after(
        self, user: User, room_id: str, after_seq: int = 0, limit: int = EVENTS_DEFAULT
    ) -> tuple[list[Event], bool]:
        """Every event of the room with seq above ``after_seq``, ascending: catch-up."""
        if not 1 <= limit <= EVENTS_MAX:
            raise Invalid(f"limit must be between 1 and {EVENTS_MAX}", field="limit")
        if after_seq < 0:
            raise Invalid("after_seq must not be negative", field="after_seq")
        return await self.db.read(self._events_tx, user.id, room_id, after_seq, limit)

    @staticmethod
    def _events_tx(
        tx: Tx, user_id: str, room_id: str, after_seq: int, limit: int
    ) -> tuple[list[Event], bool]:
        # Members of a deleted room may still read its log, so that ``room.deleted`` can be
        # caught up on like any other event.
        if rooms.find_membership(tx, room_id, user_id, include_deleted=True) is None:
            raise NotFound("no such room")
        return events.events_after(tx, room_id, after_seq, limit)

    async def events_after_many(
        self, user: User, after_seqs: dict[str, int], limit: int, budget: int
    ) -> dict[str, CatchUp]:
        """Catch-up of many rooms in one read transaction of two statements: each room's
        events with seq above the given one, ascending. A room past ``limit`` events, or
        past what is left of ``budget`` (all rooms together, in the order given), is not
        complete. Rooms the user cannot read are left out."""
        return await self.db.read(self._events_many_tx, user.id, after_seqs, limit, budget)

    @staticmethod
    def _events_many_tx(
        tx: Tx, user_id: str, after_seqs: dict[str, int], limit: int, budget: int
    ) -> dict[str, CatchUp]:
        heads = events.readable_heads(tx, user_id, list(after_seqs))
        caught: dict[str, CatchUp] = {}
        ranges: dict[str, tuple[int, int]] = {}
        for room_id, after_seq in after_seqs.items():
            if room_id not in heads:
                continue
            last_seq = heads[room_id]
            missed = max(0, last_seq - after_seq)
            complete = missed <= min(limit, budget)
            caught[room_id] = CatchUp([], complete, last_seq)
            if complete and missed:
                budget -= missed
                ranges[room_id] = (after_seq, last_seq)
        for event in events.events_in_ranges(tx, ranges):
            caught[event.room_id].events.append(event)
        return caught

    async def stored_events(self, room_id: str, after_seq: int, up_to_seq: int) -> list[dict]:
        """Events of a room in (after_seq, up_to_seq] as live delivery sends them, for the hub
        to fill a hole in live delivery. Not for clients: it checks no membership."""
        found = await self.db.read(self._stored_events_tx, room_id, after_seq, up_to_seq)
        return [self.notify.live_event_json(event) for event in found]

    @staticmethod
    def _stored_events_tx(tx: Tx, room_id: str, after_seq: int, up_to_seq: int) -> list[Event]:
        return events.events_between(tx, room_id, after_seq, up_to_seq)

    # -- changing ------------------------------------------------------------------------

    async def edit(self, user: User, room_id: str, message_id: str, cmd: EditMessage) -> Message:
        text = self._check_text(cmd.text, required=True)
        message, edited = await self.db.run(self._edit_tx, user.id, room_id, message_id, text)
        await self.notify.events(edited)
        return message

    @staticmethod
    def _edit_tx(
        tx: Tx, user_id: str, room_id: str, message_id: str, text: str
    ) -> tuple[Message, list[Event]]:
        require_member(tx, room_id, user_id)
        owner = _require_message(tx, room_id, message_id)
        if owner["sender_id"] != user_id:
            raise Forbidden("only the sender may edit a message")
        if owner["deleted_at"] is not None:
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
        owner = _require_message(tx, room_id, message_id)
        if owner["sender_id"] != user_id and membership.role not in ("owner", "admin"):
            raise Forbidden("only the sender, an admin or the owner may delete a message")
        if owner["deleted_at"] is not None:
            return None
        return redact_tx(tx, room_id, message_id, owner["media_id"], user_id, now_ms())

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
        require_member(tx, room_id, user_id)
        owner = _require_message(tx, room_id, message_id)
        if owner["deleted_at"] is not None:
            raise Conflict("the message is deleted")
        now = now_ms()
        if add:
            changed = messages.add_reaction(tx, message_id, user_id, emoji, now)
        else:
            changed = messages.remove_reaction(tx, message_id, user_id, emoji)
        if not changed:
            return []
        data = {"message_id": message_id, "emoji": emoji, "user_id": user_id}
        event_type = "reaction.added" if add else "reaction.removed"
        return [events.append(tx, room_id, event_type, user_id, data, now)]

    async def mark_read(self, user: User, room_id: str, cmd: MarkRead) -> Summary:
        """Move the read marker forward (never back, never past the room's last seq)."""
        if cmd.seq < 0:
            raise Invalid("seq must not be negative", field="seq")
        summary, moved = await self.db.run(self._read_tx, user.id, room_id, cmd.seq)
        if moved:
            await self.notify.read(user.id, summary)
        return summary

    @staticmethod
    def _read_tx(tx: Tx, user_id: str, room_id: str, seq: int) -> tuple[Summary, bool]:
        require_member(tx, room_id, user_id)
        room = rooms.find_room(tx, room_id)
        assert room is not None
        moved = rooms.advance_read_marker(tx, room_id, user_id, min(seq, room.last_seq))
        unread_count, last_read_seq = rooms.unread_of(tx, room_id, user_id)
        last = messages.last_messages(tx, [room_id], user_id).get(room_id)
        summary = Summary(room_id, room.last_seq, last, unread_count, last_read_seq)
        return summary, moved

    async def typing(self, user: User, room_id: str) -> None:
        """Tell the other members; nothing is stored."""
        await self.db.read(self._typing_tx, room_id, user.id)
        await self.notify.typing(room_id, user.id)

    @staticmethod
    def _typing_tx(tx: Tx, room_id: str, user_id: str) -> None:
        require_member(tx, room_id, user_id)


def _send_batch_tx(tx: Tx, sends: list[_Send]) -> list[_Sent | DomainError]:
    """Many sends in one transaction, each checked as if alone: a send that fails is its
    own outcome and writes nothing. A fixed number of statements, whatever the number of
    sends, plus one per image and one per repeated ``client_msg_id``."""
    outcomes: list[_Sent | DomainError | None] = [None] * len(sends)
    last_seqs = rooms.lock_live_rooms(tx, list({send.room_id for send in sends}))
    memberships = rooms.members_among(tx, {(send.room_id, send.user_id) for send in sends})
    repeated = messages.sent_before(tx, {(send.user_id, send.client_msg_id) for send in sends})
    reply_ids = {send.reply_to_id for send in sends if send.reply_to_id is not None}
    reply_rooms = messages.rooms_of_messages(tx, reply_ids) if reply_ids else {}
    now = now_ms()
    new: list[messages.NewMessage] = []
    first_of: dict[tuple[str, str], int] = {}  # a key's first send in this batch
    for index, send in enumerate(sends):
        key = (send.user_id, send.client_msg_id)
        try:
            if send.room_id not in last_seqs or (send.room_id, send.user_id) not in memberships:
                raise NotFound("no such room")
            if key in repeated:
                outcomes[index] = _original_tx(tx, send)
                continue
            if key in first_of:
                if sends[first_of[key]].room_id != send.room_id:
                    raise Conflict("client_msg_id was used in another room", field="client_msg_id")
                continue  # the same send twice at once: answered with the first below
            if send.reply_to_id is not None and reply_rooms.get(send.reply_to_id) != send.room_id:
                raise Invalid("reply_to_id must name a message of this room", field="reply_to_id")
            if send.media_id is not None:
                _claim_media(tx, send.media_id, send.user_id)
        except DomainError as error:
            outcomes[index] = error
            continue
        first_of[key] = index
        last_seqs[send.room_id] += 1
        new.append(
            messages.NewMessage(
                new_id(),
                send.room_id,
                last_seqs[send.room_id],
                send.user_id,
                send.kind,
                send.text,
                send.media_id,
                send.reply_to_id,
                send.client_msg_id,
                now,
            )
        )
    if new:
        advance = {message.room_id: last_seqs[message.room_id] for message in new}
        rooms.advance_rooms(tx, advance, now)
        created = messages.insert_messages(tx, new)
        logged = events.insert_events(
            tx,
            [
                Event(m.room_id, m.seq, "message.created", m.sender_id, now, shared_message_data(m))
                for m in created
            ],
        )
        for spec, message, event in zip(new, created, logged, strict=True):
            outcomes[first_of[(spec.sender_id, spec.client_msg_id)]] = _Sent(message, True, event)
    for index, send in enumerate(sends):
        if outcomes[index] is None:  # a repeat of a send earlier in this batch
            first = outcomes[first_of[(send.user_id, send.client_msg_id)]]
            assert isinstance(first, _Sent)
            outcomes[index] = _Sent(first.message, False)
    return outcomes  # type: ignore[return-value]  # every None was filled above


def _original_tx(tx: Tx, send: _Send) -> _Sent:
    """A send repeated with the same ``client_msg_id``: the original message."""
    require_member(tx, send.room_id, send.user_id)
    original = messages.find_by_client_msg_id(tx, send.user_id, send.client_msg_id, send.user_id)
    if original is None or original.room_id != send.room_id:
        raise Conflict("client_msg_id was used in another room", field="client_msg_id")
    return _Sent(original, False)


def _require_message(tx: Tx, room_id: str, message_id: str) -> dict:
    owner = messages.message_owner(tx, room_id, message_id)
    if owner is None:
        raise NotFound("no such message")
    return owner


def _claim_media(tx: Tx, media_id: str, user_id: str) -> None:
    """An image message may carry only the sender's own upload, never an avatar. The row
    stays locked until commit, so that a concurrent prune cannot remove it meanwhile."""
    record = media.find_media(tx, media_id, lock=True)
    if record is None or record.owner_id != user_id or record.purpose != "message":
        raise Invalid("media_id must be one of your uploads", field="media_id")
    media.mark_used(tx, media_id, now_ms())
