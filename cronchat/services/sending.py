"""Sending: a message, idempotent per ``(sender, client_msg_id)``. Concurrent sends share
their transactions (a group commit); each is acknowledged only once committed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cronchat.db import Database, Tx, UniqueViolation
from cronchat.db.group_commit import GroupCommit
from cronchat.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from cronchat.event_data import shared_message_data
from cronchat.ids import new_id
from cronchat.metrics import Metrics
from cronchat.models import NO_MENTIONS, Event, Mentions, Message, User
from cronchat.realtime.notifier import Notifier
from cronchat.repos import blocks, events, media, messages, push_outbox, rooms
from cronchat.services.access import require_member
from cronchat.services.mentions import kept_mentions, read_mentions
from cronchat.services.moderation import require_unmuted
from cronchat.times import now_ms

CLIENT_MSG_ID_MAX = 64


@dataclass(frozen=True, slots=True)
class SendMessage:
    client_msg_id: str
    kind: str | None = None
    text: str | None = None
    media_id: str | None = None
    reply_to_id: str | None = None
    mentions: dict[str, Any] | None = None


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
    mentions: Mentions  # as asked; the batch keeps what the rules allow


@dataclass(frozen=True, slots=True)
class _Sent:
    message: Message
    created: bool
    event: Event | None = None
    push_owed: bool = False  # a push job was written with it


def check_text(text: str | None, max_length: int, required: bool) -> str | None:
    """A message's text, stripped; None when empty and not ``required``."""
    cleaned = (text or "").strip()
    if not cleaned:
        if required:
            raise Invalid("text must not be empty", field="text")
        return None
    if len(cleaned) > max_length:
        raise Invalid(f"text must be at most {max_length} characters", field="text")
    return cleaned


class Sending:
    def __init__(
        self, db: Database, notify: Notifier, max_text_length: int, metrics: Metrics
    ) -> None:
        self.db = db
        self.notify = notify
        self.metrics = metrics
        self.max_text_length = max_text_length
        # Called once a send committed a new message (its push job): wakes the push planner.
        self.on_committed: Callable[[], None] | None = None
        # One transaction per room at a time keeps each room's sends in order; rooms
        # commit side by side.
        self._sends: GroupCommit[_Send, _Sent] = GroupCommit(
            db,
            _send_batch_tx,
            observe_size=metrics.sends_per_commit.observe,
            key=lambda send: send.room_id,
            max_in_flight=db.writers,
        )

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
        text = check_text(cmd.text, self.max_text_length, required=kind == "text")
        mentions = read_mentions(cmd.mentions) or NO_MENTIONS
        started = time.monotonic()
        send = _Send(
            user.id, room_id, client_msg_id, kind, text, cmd.media_id, cmd.reply_to_id, mentions
        )
        try:
            sent = await self._sends.submit(send)
        except UniqueViolation:
            # A retry raced the original through another process: it has committed by now.
            sent = await self.db.read(_original_tx, send)
        if sent.event is not None:
            if sent.push_owed and self.on_committed is not None:
                self.on_committed()
            await self.notify.message_created(sent.event)
        self.metrics.send_seconds.observe(time.monotonic() - started)
        return sent.message, sent.created


def _send_batch_tx(tx: Tx, sends: list[_Send]) -> list[_Sent | Exception]:
    """Many sends in one transaction, each checked as if alone: a send that fails is its
    own outcome and writes nothing. A fixed number of statements, whatever the number of
    sends, plus one per image and one per repeated ``client_msg_id``."""
    outcomes: list[_Sent | Exception | None] = [None] * len(sends)
    reply_ids = {send.reply_to_id for send in sends if send.reply_to_id is not None}
    senders = {(send.room_id, send.user_id) for send in sends}
    # Memberships of the senders and of the users they mention.
    pairs = senders | {
        (send.room_id, user_id) for send in sends for user_id in send.mentions.user_ids
    }
    room_mentioners = {(send.room_id, send.user_id) for send in sends if send.mentions.room}
    room_ids = {send.room_id for send in sends}
    # Every read of the batch in one round trip: the rooms locked, memberships, repeats,
    # senders blocked in direct rooms, the rooms with a member who has a push device, the
    # rooms of the messages replied to and the standing of those who mention their room.
    last_seqs, memberships, repeated, blocked, pushed, *more = tx.fetch(
        rooms.locked_live_rooms(tx.dialect, list(room_ids)),
        rooms.memberships_among(pairs),
        messages.already_sent({(send.user_id, send.client_msg_id) for send in sends}),
        blocks.blocked_in_direct_rooms(senders),
        push_outbox.rooms_with_pushers(room_ids),
        *([messages.message_rooms(reply_ids)] if reply_ids else []),
        *([rooms.standings_among(room_mentioners)] if room_mentioners else []),
    )
    reply_rooms: dict[str, str] = more.pop(0) if reply_ids else {}
    standings: dict[tuple[str, str], rooms.Standing] = more.pop(0) if room_mentioners else {}
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
            if (send.room_id, send.user_id) in blocked:
                raise Forbidden("this user does not accept messages from you", reason="blocked")
            require_unmuted(memberships[(send.room_id, send.user_id)], now)
            if key in first_of:
                if sends[first_of[key]].room_id != send.room_id:
                    raise Conflict("client_msg_id was used in another room", field="client_msg_id")
                continue  # the same send twice at once: answered with the first below
            if send.reply_to_id is not None and reply_rooms.get(send.reply_to_id) != send.room_id:
                raise Invalid("reply_to_id must name a message of this room", field="reply_to_id")
            mentions = _kept(send, memberships, standings)
            if send.media_id is not None:
                _claim_media(tx, send.media_id, send.user_id)
        except DomainError as error:
            outcomes[index] = error
            continue
        first_of[key] = index
        last_seqs[send.room_id] += 1
        new.append(_new_message(send, last_seqs[send.room_id], now, mentions))
    inserted = _insert_messages_tx(tx, new, last_seqs, pushed, now)
    for spec, sent in zip(new, inserted, strict=True):
        outcomes[first_of[(spec.sender_id, spec.client_msg_id)]] = sent
    for index, send in enumerate(sends):
        if outcomes[index] is None:  # a repeat of a send earlier in this batch
            first = outcomes[first_of[(send.user_id, send.client_msg_id)]]
            assert isinstance(first, _Sent)
            outcomes[index] = _Sent(first.message, False)
    return outcomes  # type: ignore[return-value]  # every None was filled above


def _kept(
    send: _Send,
    memberships: dict[tuple[str, str], int | None],
    standings: dict[tuple[str, str], rooms.Standing],
) -> Mentions:
    """The mentions a send keeps (see :func:`kept_mentions`)."""
    if send.mentions is NO_MENTIONS:
        return NO_MENTIONS
    # Of those named, the members (the batch read every named user's membership).
    members = {u for u in send.mentions.user_ids if (send.room_id, u) in memberships}
    standing = standings.get((send.room_id, send.user_id))
    return kept_mentions(
        send.mentions,
        send.user_id,
        members,
        standing.room_kind if standing else "group",
        standing.member_count if standing else 0,
        standing.role if standing else "member",
    )


def _new_message(send: _Send, seq: int, now: int, mentions: Mentions) -> messages.NewMessage:
    return messages.NewMessage(
        new_id(),
        send.room_id,
        seq,
        send.user_id,
        send.kind,
        send.text,
        send.media_id,
        send.reply_to_id,
        send.client_msg_id,
        now,
        mentions,
    )


def _insert_messages_tx(
    tx: Tx,
    new: list[messages.NewMessage],
    last_seqs: dict[str, int],
    pushed: set[str],
    now: int,
) -> list[_Sent]:
    """Write the new messages, their ``message.created`` events and their rooms' seqs, in a
    fixed number of statements; answers each one's outcome, in order."""
    if not new:
        return []
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
    # Who is pushed is planned off this path: one job per message of a room where someone
    # has a push device, held until the commit.
    push_outbox.add_jobs(tx, [(m.room_id, m.seq) for m in created if m.room_id in pushed], now)
    return [
        _Sent(message, True, event, message.room_id in pushed)
        for message, event in zip(created, logged, strict=True)
    ]


def _original_tx(tx: Tx, send: _Send) -> _Sent:
    """A send repeated with the same ``client_msg_id``: the original message."""
    require_member(tx, send.room_id, send.user_id)
    original = messages.find_by_client_msg_id(tx, send.user_id, send.client_msg_id, send.user_id)
    if original is None or original.room_id != send.room_id:
        raise Conflict("client_msg_id was used in another room", field="client_msg_id")
    return _Sent(original, False)


def _claim_media(tx: Tx, media_id: str, user_id: str) -> None:
    """An image message may carry only the sender's own upload, never an avatar. The row
    stays locked until commit, so that a concurrent prune cannot remove it meanwhile."""
    record = media.find_media(tx, media_id, lock=True)
    if record is None or record.owner_id != user_id or record.purpose != "message":
        raise Invalid("media_id must be one of your uploads", field="media_id")
    media.mark_used(tx, media_id, now_ms())
