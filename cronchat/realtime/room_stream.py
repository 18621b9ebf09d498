"""Room events reach each socket in seq order, at most once, with no holes.

Two halves own the guarantee, both here: :class:`RoomStream` orders one room's events for
the whole process (the hub), :class:`SocketCursor` remembers what one socket was sent, live
or by ``resume``.

Why it holds, for one room and one socket:

- In order, no holes, live. Seqs are gap-free per room (assigned in the transaction).
  ``RoomStream`` emits seq ``next_seq`` only, then ``next_seq + 1``...; a notice ahead of
  ``next_seq`` waits in ``waiting``. After ``GAP_WAIT_SECONDS`` the missing seqs are read
  from the database (their process may have died before publishing). So the emitted seqs
  are consecutive, except where the database could not give them either: then the stream
  skips ahead, every socket of the room gets ``resync`` and its cursor records the skipped
  range as a hole.
- Nothing twice, live. A seq below ``next_seq`` is dropped (the relay and Redis may both
  bring it), and the cursor drops any seq up to the highest it sent (``delivered``).
- Resume. While a room resumes, its live events wait in the cursor (``resuming``). The
  replay sends the stored events the client asked for, leaving out those sent live on this
  socket: every seq in ``[first_live, delivered]`` but the holes, since live delivery has
  none there otherwise. Then the waiting live events go through the same check as any live
  event, so those the replay already sent are dropped.
- The first live seq. When a socket starts following a room, the hub answers the room's
  last seq as the higher of the database read and what the stream already emitted, so that
  a client resuming from it misses nothing between its read and its first live event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from cronchat.realtime.notices import EventNotice

log = logging.getLogger("cronchat.hub")

GAP_WAIT_SECONDS = 0.5


class EventReader(Protocol):
    async def events_between(
        self, room_id: str, after_seq: int, up_to_seq: int
    ) -> list[EventNotice]:
        """The stored events of a room in (after_seq, up_to_seq], as notices."""
        ...


class Delivery(Protocol):
    """What a stream hands its ordered events to (the hub)."""

    events: EventReader

    def emit(self, stream: RoomStream, notice: EventNotice) -> None: ...

    def skip(self, stream: RoomStream, from_seq: int, to_seq: int) -> None: ...


@dataclass(slots=True)
class RoomStream:
    """Where one room's live stream stands in this process."""

    room_id: str
    next_seq: int
    waiting: dict[int, EventNotice] = field(default_factory=dict)
    gap_timer: asyncio.TimerHandle | None = None
    followed: bool = True

    def offer(self, notice: EventNotice, delivery: Delivery) -> None:
        """Emit the notice in its turn: at once, after the hole before it is filled, or
        never when it was already emitted."""
        seq = notice.seq
        if seq < self.next_seq:
            return
        if seq > self.next_seq:
            self.waiting[seq] = notice
            if self.gap_timer is None:
                loop = asyncio.get_running_loop()
                self.gap_timer = loop.call_later(GAP_WAIT_SECONDS, self._fill_gap, delivery)
            return
        self.next_seq = seq + 1
        delivery.emit(self, notice)
        while self.followed and self.next_seq in self.waiting:
            ready = self.waiting.pop(self.next_seq)
            self.next_seq += 1
            delivery.emit(self, ready)
        if not self.waiting and self.gap_timer is not None:
            self.gap_timer.cancel()
            self.gap_timer = None

    def close(self) -> None:
        """Nobody here follows the room any more."""
        self.followed = False
        if self.gap_timer is not None:
            self.gap_timer.cancel()
            self.gap_timer = None

    def _fill_gap(self, delivery: Delivery) -> None:
        self.gap_timer = None
        if self.followed and self.waiting:
            asyncio.ensure_future(self._load_missing(delivery))

    async def _load_missing(self, delivery: Delivery) -> None:
        """Events published elsewhere never arrived (their process may have died): read them
        from the database, then carry on in order."""
        up_to = max(self.waiting) - 1
        loaded: list[EventNotice] = []
        try:
            loaded = await delivery.events.events_between(self.room_id, self.next_seq - 1, up_to)
        except Exception as error:  # the database may be down: tell clients to resume
            log.warning("gap fill failed room_id=%s error=%s", self.room_id, type(error).__name__)
        if not self.followed or not self.waiting:
            return
        for notice in loaded:
            if notice.seq >= self.next_seq:
                self.waiting.setdefault(notice.seq, notice)
        if self.next_seq not in self.waiting:
            # Still missing: skip ahead and let the clients catch up by seq.
            log.warning("gap not filled room_id=%s from_seq=%d", self.room_id, self.next_seq)
            resumed_at = min(self.waiting)
            delivery.skip(self, self.next_seq, resumed_at - 1)
            self.next_seq = resumed_at
        self.offer(self.waiting.pop(self.next_seq), delivery)


class HasSeq(Protocol):
    @property
    def seq(self) -> int: ...


Replayed = TypeVar("Replayed", bound=HasSeq)


class SocketCursor:
    """What one socket was sent of each room: the highest seq (``delivered``), the first
    one sent live (``first_live``), the live holes after it (``holes``, rare, so None until
    then), and the live frames held while the room resumes (``resuming``)."""

    __slots__ = ("delivered", "first_live", "holes", "resuming")

    def __init__(self) -> None:
        self.delivered: dict[str, int] = {}
        self.first_live: dict[str, int] = {}
        self.holes: dict[str, list[tuple[int, int]]] | None = None
        self.resuming: dict[str, list[tuple[int, bytes]]] = {}

    def live(self, room_id: str, seq: int, frame: bytes) -> bool:
        """Whether a live event goes out now: not while its room resumes (it is held), not
        when this socket already has it."""
        resuming = self.resuming.get(room_id)
        if resuming is not None:
            resuming.append((seq, frame))
            return False
        if seq <= self.delivered.get(room_id, 0):
            return False
        self.delivered[room_id] = seq
        self.first_live.setdefault(room_id, seq)
        return True

    def skipped(self, room_id: str, from_seq: int, to_seq: int) -> None:
        """Live delivery jumped over these seqs: the next resume sends them even though
        later ones already came live."""
        if room_id not in self.first_live:
            return  # nothing came live yet: a resume sends everything
        if self.holes is None:
            self.holes = {}
        self.holes.setdefault(room_id, []).append((from_seq, to_seq))

    def hold(self, room_ids: Sequence[str]) -> None:
        """These rooms resume: their live events wait until :meth:`release`."""
        for room_id in room_ids:
            self.resuming[room_id] = []

    def replay(self, room_id: str, events: Sequence[Replayed], last_seq: int) -> list[Replayed]:
        """Of a room's stored events up to ``last_seq``, those to send: all but the ones
        sent live on this socket (from its first live event up to the highest one sent,
        but for the holes)."""
        first_live = self.first_live.get(room_id)
        delivered = self.delivered.get(room_id, 0)
        holes = self.holes.get(room_id, []) if self.holes is not None else []
        missed = []
        for event in events:
            seq = event.seq
            if first_live is not None and first_live <= seq <= delivered:
                if not any(start <= seq <= end for start, end in holes):
                    continue  # already sent live on this socket
            delivered = max(delivered, seq)
            missed.append(event)
        self.delivered[room_id] = delivered
        if holes and self.holes is not None:
            left = [hole for hole in holes if hole[1] > last_seq]
            if left:
                self.holes[room_id] = left
            else:
                del self.holes[room_id]
        return missed

    def release(self, room_id: str) -> list[bytes]:
        """The room's resume is done: its held live frames that the replay did not send."""
        held = self.resuming.pop(room_id, [])
        return [frame for seq, frame in held if self.live(room_id, seq, frame)]
