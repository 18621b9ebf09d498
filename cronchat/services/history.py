"""History: a room's messages page by page, one message, and catch-up by events (one room
or many at once), for members; and the stored events live delivery fills holes with."""

from __future__ import annotations

from dataclasses import dataclass

from cronchat.db import Database, Tx
from cronchat.errors import Invalid, NotFound
from cronchat.models import Event, Message, User
from cronchat.realtime.notifier import Notifier
from cronchat.repos import events, messages, rooms
from cronchat.services.access import require_member

HISTORY_DEFAULT, HISTORY_MAX = 50, 200
EVENTS_DEFAULT, EVENTS_MAX = 100, 500


@dataclass(frozen=True, slots=True)
class CatchUp:
    """What one room's catch-up replays: its events after the client's seq up to
    ``last_seq``, the room's last seq when read; not ``complete`` when there were more than
    the caller allows (none are read then: the client pages ``/events``)."""

    events: list[Event]
    complete: bool
    last_seq: int


class History:
    def __init__(self, db: Database, notify: Notifier) -> None:
        self.db = db
        self.notify = notify

    async def page(
        self,
        user: User,
        room_id: str,
        before_seq: int | None = None,
        after_seq: int | None = None,
        limit: int = HISTORY_DEFAULT,
    ) -> tuple[list[Message], bool]:
        """A page of the room's messages, ascending by seq (see :func:`messages.page`)."""
        if not 1 <= limit <= HISTORY_MAX:
            raise Invalid(f"limit must be between 1 and {HISTORY_MAX}", field="limit")
        for name, value in (("before_seq", before_seq), ("after_seq", after_seq)):
            if value is not None and value < 0:
                raise Invalid(f"{name} must not be negative", field=name)
        return await self.db.read(self._page_tx, user.id, room_id, before_seq, after_seq, limit)

    @staticmethod
    def _page_tx(
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
