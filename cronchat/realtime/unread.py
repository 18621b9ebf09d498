"""Unread and mention counts and read markers of the local members of a room, moved by the
events the hub delivers, so that a new message costs no database work per member.

The unread rule: a member's unread count is the number of messages of others, not deleted,
with a seq past their read marker; their mention count, the number of those that mention
them or the room. The database counts them in SQL (``_UNREAD`` in ``cronchat/repos/rooms.py``,
``UNREAD_MENTIONS`` in ``cronchat/repos/mentions.py``); here :func:`unread_delta` and
:func:`mention_delta` apply the same rules to one change.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from cronchat.event_data import notifications_data
from cronchat.models import NO_MENTIONS, Mentions, NotificationSettings, ReadState
from cronchat.realtime.frames import encode, frame_header, json_bytes
from cronchat.realtime.notices import EventNotice

# Unread changes remembered per room, to bring a database read made a little earlier up to
# date with what was delivered since.
CHANGES_KEPT = 256


class ReadStateReader(Protocol):
    async def read_state(self, user_id: str, room_id: str) -> ReadState | None:
        """A member's read state in one room, as the database has it now."""
        ...


@dataclass(frozen=True, slots=True)
class UnreadChange:
    """What a message event does to the counts: ``delta`` +1 (new), -1 (deleted) or 0 (an
    edit), and the message's mentions ``before`` and ``after`` it."""

    sender_id: str
    message_seq: int
    delta: int
    before: Mentions = NO_MENTIONS
    after: Mentions = NO_MENTIONS

    def newly_mentions(self, user_id: str) -> str | None:
        """How the change newly mentions the member ("user", "room"), or None."""
        if user_id == self.sender_id or self.before.names(user_id):
            return None
        return self.after.kind_for(user_id)


def unread_change(notice: EventNotice) -> UnreadChange | None:
    """A new message counts as unread for the others, a deleted one no longer does; an edit
    that changed the mentions moves mention counts only."""
    if notice.type == "message.created":
        delta = 1
    elif notice.type == "message.deleted":
        delta = -1
    elif notice.type == "message.edited" and notice.mentions_before is not None:
        delta = 0
    else:
        return None
    assert notice.sender_id is not None and notice.message_seq is not None
    before = notice.mentions_before or NO_MENTIONS
    return UnreadChange(notice.sender_id, notice.message_seq, delta, before, notice.mentions)


def unread_delta(change: UnreadChange, user_id: str, last_read_seq: int) -> int:
    """The unread rule for one change and one member: messages of others past the marker."""
    if change.sender_id != user_id and change.message_seq > last_read_seq:
        return change.delta
    return 0


def mention_delta(change: UnreadChange, user_id: str, last_read_seq: int) -> int:
    """The mention rule for one change and one member: of the messages of others past the
    marker, those that mention them or the room."""
    if change.sender_id != user_id and change.message_seq > last_read_seq:
        return int(change.after.names(user_id)) - int(change.before.names(user_id))
    return 0


@lru_cache(maxsize=1024)
def settings_json(settings: NotificationSettings) -> bytes:
    """A member's ``notifications`` as the bytes their summaries carry."""
    return json_bytes(notifications_data(settings))


@dataclass(slots=True)
class MemberView:
    """A local member's counts, read marker and notification settings in one room (the
    settings also as the bytes their summaries carry). Events up to ``counted_to`` were
    already counted by the database read it started from."""

    unread_count: int
    last_read_seq: int
    counted_to: int
    mention_count: int = 0
    settings: NotificationSettings = field(default_factory=NotificationSettings)
    settings_json: bytes = b""

    def __post_init__(self) -> None:
        self.settings_json = settings_json(self.settings)

    def set_settings(self, settings: NotificationSettings) -> None:
        self.settings = settings
        self.settings_json = settings_json(settings)

    def count(self, user_id: str, seq: int, change: UnreadChange) -> None:
        """Count a delivered change, unless the database read already did."""
        if seq > self.counted_to:
            delta = unread_delta(change, user_id, self.last_read_seq)
            self.unread_count = max(0, self.unread_count + delta)
            mentions = mention_delta(change, user_id, self.last_read_seq)
            self.mention_count = max(0, self.mention_count + mentions)


@dataclass(slots=True)
class RoomUnread:
    """The views of a room's local members, and the latest unread changes delivered,
    (seq, change): every one from ``changes_from`` on is here."""

    changes_from: int
    members: dict[str, MemberView] = field(default_factory=dict)
    changes: deque[tuple[int, UnreadChange]] | None = None

    def record(self, seq: int, change: UnreadChange) -> None:
        if self.changes is None:
            self.changes = deque()
        elif len(self.changes) == CHANGES_KEPT:
            self.changes_from = self.changes.popleft()[0] + 1
        self.changes.append((seq, change))

    def settle(
        self,
        user_id: str,
        state: ReadState,
        delivered_to: int,
        blocked: frozenset[str] = frozenset(),
    ) -> bool:
        """Set a member's view from a database read of their room at ``state.last_seq``,
        counting what was delivered since (up to ``delivered_to``) but changes by users they
        block; False when those changes are no longer known."""
        view = self.members.get(user_id)
        if view is None:
            return True
        unread_count, mention_count = state.unread_count, state.unread_mention_count
        if state.last_seq < delivered_to:
            if state.last_seq + 1 < self.changes_from:
                return False
            for seq, change in self.changes or ():
                if seq > state.last_seq and change.sender_id not in blocked:
                    unread_count += unread_delta(change, user_id, state.last_read_seq)
                    mention_count += mention_delta(change, user_id, state.last_read_seq)
        view.unread_count = max(0, unread_count)
        view.mention_count = max(0, mention_count)
        view.last_read_seq = state.last_read_seq
        view.counted_to = state.last_seq
        return True


class SummaryFrames:
    """An event frame carrying each member's own summary of the room (``room``, the object
    ``room.summary`` carries), as the bytes written to each member: one frame per delivery.
    The summaries share the room, seq and last message and differ only in the member's
    numbers and settings, so the event and the shared part are serialised once, and the
    frame for each distinct (unread_count, last_read_seq, mention_count, settings) is put
    together from bytes once, whatever the number of members."""

    __slots__ = ("_prefix", "_built")

    def __init__(self, opening: bytes, room_id: str, last_seq: int, last_message: Any) -> None:
        """``opening`` is the event frame's JSON up to its closing brace (``event_opening``)."""
        self._prefix = (
            opening
            + b',"room":{"id":'
            + json_bytes(room_id)
            + b',"last_seq":'
            + str(last_seq).encode()
            + b',"last_message":'
            + json_bytes(last_message)
            + b',"unread_count":'
        )
        self._built: dict[tuple[int, int, int, bytes], bytes] = {}

    def frame(self, view: MemberView) -> bytes:
        """The event frame of a member with this view."""
        key = (view.unread_count, view.last_read_seq, view.mention_count, view.settings_json)
        built = self._built.get(key)
        if built is None:
            prefix = self._prefix
            tail = b'%d,"last_read_seq":%d,"unread_mention_count":%d,"notifications":%s}}' % key
            header = frame_header(len(prefix) + len(tail))
            built = self._built[key] = b"".join((header, prefix, tail))
        return built


class MentionFrames:
    """The ``mention`` frames of one message event, for the members it newly mentions: they
    differ only in ``kind``, ``read`` and ``notify``, so each variant is built once."""

    __slots__ = ("_message", "_built")

    def __init__(self, message: dict[str, Any]) -> None:
        self._message = message
        self._built: dict[tuple[str, bool, bool], bytes] = {}

    def frame(self, kind: str, read: bool, notify: bool) -> bytes:
        key = (kind, read, notify)
        built = self._built.get(key)
        if built is None:
            message = self._message
            mention = {
                "id": message["id"],
                "room_id": message["room_id"],
                "seq": message["seq"],
                "kind": kind,
                "message": message,
                "read": read,
                "created_at": message["created_at"],
            }
            built = self._built[key] = encode(
                {"type": "mention", "mention": mention, "notify": notify}
            )
        return built
