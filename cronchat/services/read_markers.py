"""Read markers: how far a member has read a room, which their unread count follows."""

from __future__ import annotations

from dataclasses import dataclass

from cronchat.db import Database, Tx
from cronchat.errors import Invalid
from cronchat.models import Summary, User
from cronchat.push.delivery import read_owed_tx
from cronchat.realtime.notifier import Notifier
from cronchat.repos import messages, rooms
from cronchat.services.access import require_member


@dataclass(frozen=True, slots=True)
class MarkRead:
    seq: int


class ReadMarkers:
    def __init__(self, db: Database, notify: Notifier) -> None:
        self.db = db
        self.notify = notify

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
        summary = summary_tx(tx, room_id, user_id)
        if moved:
            # The member's other devices clear the room's notifications.
            read_owed_tx(tx, user_id, room_id, summary.unread_count)
        return summary, moved


def summary_tx(tx: Tx, room_id: str, user_id: str) -> Summary:
    """A member's summary of a live room, as their devices show it."""
    state = rooms.read_state(tx, room_id, user_id)
    assert state is not None
    last = messages.last_messages(tx, [room_id], user_id).get(room_id)
    return Summary(
        room_id,
        state.last_seq,
        last,
        state.unread_count,
        state.last_read_seq,
        state.unread_mention_count,
        state.notifications,
    )
