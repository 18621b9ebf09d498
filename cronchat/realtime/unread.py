"""Unread counts and read markers of the local members of a room, moved by the events the
hub delivers, so that a new message costs no database work per member.

The unread rule: a member's unread count is the number of messages of others, not deleted,
with a seq past their read marker. The database counts it in SQL (``_UNREAD`` in
``cronchat/repos/rooms.py``); here :func:`unread_delta` applies the same rule to one change.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from cronchat.models import ReadState
from cronchat.realtime.frames import frame_header, json_bytes
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
    """What a message event does to unread counts: ``delta`` +1 (new) or -1 (deleted)."""

    sender_id: str
    message_seq: int
    delta: int


def unread_change(notice: EventNotice) -> UnreadChange | None:
    """A new message counts as unread for the others, a deleted one no longer does."""
    if notice.type == "message.created":
        delta = 1
    elif notice.type == "message.deleted":
        delta = -1
    else:
        return None
    assert notice.sender_id is not None and notice.message_seq is not None
    return UnreadChange(notice.sender_id, notice.message_seq, delta)


def unread_delta(change: UnreadChange, user_id: str, last_read_seq: int) -> int:
    """The unread rule for one change and one member: messages of others past the marker."""
    if change.sender_id != user_id and change.message_seq > last_read_seq:
        return change.delta
    return 0


@dataclass(slots=True)
class MemberView:
    """A local member's unread count and read marker in one room. Events up to
    ``counted_to`` were already counted by the database read it started from."""

    unread_count: int
    last_read_seq: int
    counted_to: int

    def count(self, user_id: str, seq: int, change: UnreadChange) -> None:
        """Count a delivered change, unless the database read already did."""
        if seq > self.counted_to:
            delta = unread_delta(change, user_id, self.last_read_seq)
            self.unread_count = max(0, self.unread_count + delta)


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

    def settle(self, user_id: str, state: ReadState, delivered_to: int) -> bool:
        """Set a member's view from a database read of their room at ``state.last_seq``,
        counting what was delivered since (up to ``delivered_to``); False when those
        changes are no longer known."""
        view = self.members.get(user_id)
        if view is None:
            return True
        unread_count = state.unread_count
        if state.last_seq < delivered_to:
            if state.last_seq + 1 < self.changes_from:
                return False
            for seq, change in self.changes or ():
                if seq > state.last_seq:
                    unread_count += unread_delta(change, user_id, state.last_read_seq)
        view.unread_count = max(0, unread_count)
        view.last_read_seq = state.last_read_seq
        view.counted_to = state.last_seq
        return True


class SummaryFrames:
    """An event frame carrying each member's own summary of the room (``room``, the object
    ``room.summary`` carries), as the bytes written to each member: one frame per delivery.
    The summaries share the room, seq and last message and differ only in two numbers, so
    the event and the shared part are serialised once, and the frame for each distinct
    (unread_count, last_read_seq) pair is put together from bytes once, whatever the
    number of members."""

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
        self._built: dict[tuple[int, int], bytes] = {}

    def frame(self, unread_count: int, last_read_seq: int) -> bytes:
        """The event frame of a member with these numbers."""
        key = (unread_count, last_read_seq)
        built = self._built.get(key)
        if built is None:
            prefix = self._prefix
            tail = b'%d,"last_read_seq":%d}}' % (unread_count, last_read_seq)
            header = frame_header(len(prefix) + len(tail))
            built = self._built[key] = b"".join((header, prefix, tail))
        return built
