"""The ``resume`` frame: replay what a socket missed, room by room in the order given, each
room's events in order, leaving out what its cursor says it already has.

Rooms are read a batch at a time, one read transaction per batch, and the work is bounded
per frame (rooms, events) and per second (:class:`ResumeBudget`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cronchat.errors import DomainError, RateLimited
from cronchat.media_links import MediaLinks
from cronchat.models import User
from cronchat.realtime.room_stream import SocketCursor
from cronchat.services.history import CatchUp, History
from cronchat.views import event_json
from cronchat.web import wire

RESUME_MAX_EVENTS = 500  # per room; past it the room answers resync_required
RESUME_FRAME_EVENTS = 5000  # per frame, all rooms together; the rooms past it as above
RESUME_BATCH_ROOMS = 100  # rooms read in one transaction
RESUME_ROOMS_PER_SECOND = 200  # per socket, with a burst of RESUME_MAX_ROOMS


class ResumeBudget:
    """Rooms resumed cost from a per-socket budget refilled at RESUME_ROOMS_PER_SECOND, as a
    leaky bucket: ``until`` is when the rooms resumed so far are paid off."""

    __slots__ = ("until",)

    def __init__(self) -> None:
        self.until = 0.0

    def take(self, rooms: int) -> None:
        now = time.monotonic()
        until = max(now, self.until) + rooms / RESUME_ROOMS_PER_SECOND
        excess = until - now - wire.RESUME_MAX_ROOMS / RESUME_ROOMS_PER_SECOND
        if excess > 0:
            retry_after_ms = int(1000 * excess) + 1
            raise RateLimited("too many rooms resumed; slow down", retry_after_ms)
        self.until = until


@dataclass(slots=True)
class Resume:
    """One socket's resume: whose, from where, and where its frames go."""

    user: User
    history: History
    cursor: SocketCursor
    links: MediaLinks
    send_frame: Callable[[bytes], None]

    async def rooms(self, asked: dict[str, int]) -> dict[str, str]:
        """Replay each room after its seq; answers each room's outcome (``ok``,
        ``resync_required``, ``not_found`` or an error code)."""
        outcome: dict[str, str] = {}
        budget = RESUME_FRAME_EVENTS
        pairs = list(asked.items())
        for start in range(0, len(pairs), RESUME_BATCH_ROOMS):
            batch = dict(pairs[start : start + RESUME_BATCH_ROOMS])
            budget -= await self._batch(batch, budget, outcome)
        return outcome

    async def _batch(self, after_seqs: dict[str, int], budget: int, outcome: dict) -> int:
        """One batch of a resume; answers the number of events replayed."""
        self.cursor.hold(list(after_seqs))
        try:
            caught = await self.history.events_after_many(
                self.user, after_seqs, RESUME_MAX_EVENTS, budget
            )
        except DomainError as error:
            for room_id in after_seqs:
                outcome[room_id] = error.code
                self._release(room_id)
            return 0
        replayed = 0
        for room_id in after_seqs:
            catch_up = caught.get(room_id)
            if catch_up is None:
                outcome[room_id] = "not_found"
            elif not catch_up.complete:
                self.send_frame(wire.resync_required_frame(room_id))
                outcome[room_id] = "resync_required"
            else:
                self._replay(room_id, catch_up)
                replayed += len(catch_up.events)
                outcome[room_id] = "ok"
            self._release(room_id)
        return replayed

    def _replay(self, room_id: str, catch_up: CatchUp) -> None:
        """Send a room's missed events that this socket did not have live."""
        for event in self.cursor.replay(room_id, catch_up.events, catch_up.last_seq):
            self.send_frame(wire.event_frame(event_json(event, self.links)))

    def _release(self, room_id: str) -> None:
        """The room's live events held during its replay, those the replay did not send."""
        for frame in self.cursor.release(room_id):
            self.send_frame(frame)
