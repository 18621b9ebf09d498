"""The hub: this process's open sockets, indexed by user and by room.

It receives every notice from the broker and hands it to the local sockets concerned. Each
notice becomes one frame, built once, and the same bytes go to every recipient. Room events
leave the hub in seq order per room, whatever order their notices arrive in: a notice that
runs ahead of a missing seq waits briefly, then the missing events are read from the
database, so live delivery has no holes even when the publishing process died.

The hub also keeps each local member's unread count and read marker, moved by the events it
delivers, so that a new message costs no database work per member: every member's
``room.summary`` is built from one shared template and written with the event in one write.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cronchat.models import ReadState
from cronchat.realtime.broker import Notice
from cronchat.realtime.frames import SummaryFrames, encode

log = logging.getLogger("cronchat.hub")

CLOSE_REVOKED = 4003
GAP_WAIT_SECONDS = 0.5
# Unread changes remembered per room, to bring a database read made a little earlier up to
# date with what was delivered since.
CHANGES_KEPT = 256

# Reads the stored events of a room in (after_seq, up_to_seq], as event JSON.
LoadEvents = Callable[[str, int, int], Awaitable[list[dict[str, Any]]]]
# Reads a user's read state in one room (user_id, room_id).
LoadReadState = Callable[[str, str], Awaitable[dict[str, ReadState]]]
# How a room event changes unread counts: (sender_id, message_seq, +1 or -1).
UnreadChange = tuple[str, int, int]


class Connection(Protocol):
    @property
    def user_id(self) -> str: ...

    @property
    def session_id(self) -> str: ...

    def send_frame(self, frame: bytes) -> None: ...

    def send_event(self, room_id: str, seq: int, frame: bytes) -> None: ...

    def skipped(self, room_id: str, from_seq: int, to_seq: int) -> None: ...

    def close_with(self, code: int, reason: str) -> None: ...

    def keep_alive(self, heard_since: float) -> None: ...


@dataclass(slots=True)
class MemberView:
    """A local member's unread count and read marker in one room. Events up to
    ``counted_to`` were already counted by the database read it started from."""

    unread_count: int
    last_read_seq: int
    counted_to: int

    def apply(self, user_id: str, change: UnreadChange) -> None:
        self.unread_count = max(0, self.unread_count + _delta(change, user_id, self.last_read_seq))


@dataclass(slots=True)
class RoomStream:
    """The local followers of one room and where its event stream stands."""

    next_seq: int
    members: dict[str, MemberView] = field(default_factory=dict)
    waiting: dict[int, Notice] = field(default_factory=dict)
    gap_timer: asyncio.TimerHandle | None = None
    # The latest unread changes, (seq, change); every one from ``changes_from`` on is here.
    changes: deque[tuple[int, UnreadChange]] | None = None
    changes_from: int = 0

    def __post_init__(self) -> None:
        self.changes_from = self.next_seq

    def record(self, seq: int, change: UnreadChange) -> None:
        if self.changes is None:
            self.changes = deque()
        elif len(self.changes) == CHANGES_KEPT:
            self.changes_from = self.changes.popleft()[0] + 1
        self.changes.append((seq, change))

    def settle(self, user_id: str, state: ReadState) -> bool:
        """Set a member's view from a database read of their room at ``state.last_seq``,
        counting what was delivered since; False when those changes are no longer known."""
        view = self.members.get(user_id)
        if view is None:
            return True
        unread_count = state.unread_count
        if state.last_seq < self.next_seq - 1:
            if state.last_seq + 1 < self.changes_from:
                return False
            for seq, change in self.changes or ():
                if seq > state.last_seq:
                    unread_count += _delta(change, user_id, state.last_read_seq)
        view.unread_count = max(0, unread_count)
        view.last_read_seq = state.last_read_seq
        view.counted_to = state.last_seq
        return True


class Hub:
    def __init__(self) -> None:
        # Lists, not sets: a user has a socket or two and a room rarely twice, and an empty
        # set costs three times a short list, for every connected user.
        self._by_user: dict[str, list[Connection]] = defaultdict(list)
        self._rooms: dict[str, RoomStream] = {}
        self._user_rooms: dict[str, list[str]] = defaultdict(list)
        # Read stored events to fill a hole in live delivery, and a member's read state
        # when their view cannot be brought up to date otherwise (set by the runtime).
        self.load_events: LoadEvents | None = None
        self.load_read_state: LoadReadState | None = None
        # Called with (user_id, online, room_ids) when a user's first socket opens here or
        # their last one closes.
        self.on_presence: Callable[[str, bool, set[str]], None] | None = None
        # Called with the number of sockets each event frame went to (metrics).
        self.on_delivered: Callable[[int], None] | None = None

    # -- who is here ---------------------------------------------------------------------

    def is_online(self, user_id: str) -> bool:
        return bool(self._by_user.get(user_id))

    def online_users(self) -> list[str]:
        """Users with a socket in this process."""
        return list(self._by_user)

    def connection_count(self) -> int:
        return sum(len(sockets) for sockets in self._by_user.values())

    def add(self, connection: Connection, states: dict[str, ReadState]) -> dict[str, int]:
        """Start delivering to a socket: its user's rooms, each with its read state as read
        from the database. Answers each room's last seq from here on: where this process
        already delivered past the database read, the higher one, so that the client resumes
        up to the point where its live stream begins."""
        user_id = connection.user_id
        first = not self._by_user.get(user_id)
        self._by_user[user_id].append(connection)
        current = {}
        for room_id, state in states.items():
            stream = self._rooms.get(room_id)
            if stream is None:
                stream = self._rooms[room_id] = RoomStream(next_seq=state.last_seq + 1)
            if user_id not in stream.members:
                stream.members[user_id] = MemberView(0, state.last_read_seq, state.last_seq)
                self._user_rooms[user_id].append(room_id)
                if not stream.settle(user_id, state):
                    self._refresh(room_id, user_id)
            current[room_id] = max(state.last_seq, stream.next_seq - 1)
        if first and self.on_presence is not None:
            self.on_presence(user_id, True, self.rooms_of(user_id))
        return current

    def remove(self, connection: Connection) -> None:
        """Forget a socket everywhere; safe to call twice."""
        user_id = connection.user_id
        if not _discard(self._by_user, user_id, connection):
            return
        if not self._by_user.get(user_id):
            room_ids = set(self._user_rooms.pop(user_id, ()))
            for room_id in room_ids:
                self._unfollow(user_id, room_id)
            if self.on_presence is not None:
                self.on_presence(user_id, False, room_ids)

    def rooms_of(self, user_id: str) -> set[str]:
        return set(self._user_rooms.get(user_id, ()))

    def _unfollow(self, user_id: str, room_id: str) -> None:
        stream = self._rooms.get(room_id)
        if stream is None:
            return
        stream.members.pop(user_id, None)
        rooms = self._user_rooms.get(user_id)
        if rooms is not None and room_id in rooms:
            rooms.remove(room_id)
        if not stream.members:
            if stream.gap_timer is not None:
                stream.gap_timer.cancel()
            del self._rooms[room_id]

    def _refresh(self, room_id: str, user_id: str) -> None:
        asyncio.ensure_future(self._load_read_state(room_id, user_id))

    async def _load_read_state(self, room_id: str, user_id: str) -> None:
        """A member's view missed changes it can no longer learn from the hub: read it
        again; until then it counts on from where it stood."""
        if self.load_read_state is None:
            return
        try:
            states = await self.load_read_state(user_id, room_id)
        except Exception as error:  # the database may be down: the next read corrects it
            log.warning("read state load failed room_id=%s error=%s", room_id, type(error).__name__)
            return
        stream = self._rooms.get(room_id)
        if stream is not None and room_id in states:
            stream.settle(user_id, states[room_id])

    # -- delivery ------------------------------------------------------------------------

    def deliver(self, notice: Notice) -> None:
        """Broker subscriber: route one notice to the local sockets it concerns."""
        kind = notice.get("kind")
        if kind == "event":
            self._on_event(notice)
        elif kind == "read":
            self._on_read(notice)
        elif kind == "typing":
            frame = encode(
                {"type": "typing", "room_id": notice["room_id"], "user_id": notice["user_id"]}
            )
            self._to_room(notice["room_id"], frame, skip_user=notice["user_id"])
        elif kind == "presence":
            self._on_presence(notice)
        elif kind == "user.updated":
            self._on_user_updated(notice)
        elif kind == "sessions.revoked":
            # Rare (a logout, a password change): a scan of the sockets costs less than an
            # index by session kept for every socket.
            revoked = set(notice["session_ids"])
            for sockets in list(self._by_user.values()):
                for connection in list(sockets):
                    if connection.session_id in revoked:
                        connection.close_with(CLOSE_REVOKED, "session revoked")
        elif kind == "resync":
            self.broadcast(encode({"type": "resync"}))

    def _on_event(self, notice: Notice) -> None:
        event = notice["event"]
        room_id, seq = event["room_id"], event["seq"]
        if event["type"] == "member.joined":
            self._joined(event["data"]["user"]["id"], room_id, seq)
        stream = self._rooms.get(room_id)
        if stream is None or seq < stream.next_seq:
            return  # nobody here follows the room, or already delivered
        if seq > stream.next_seq:
            stream.waiting[seq] = notice
            if stream.gap_timer is None:
                loop = asyncio.get_running_loop()
                stream.gap_timer = loop.call_later(GAP_WAIT_SECONDS, self._fill_gap, room_id)
            return
        self._emit(room_id, stream, notice)
        while stream.next_seq in stream.waiting:
            self._emit(room_id, stream, stream.waiting.pop(stream.next_seq))
        if not stream.waiting and stream.gap_timer is not None:
            stream.gap_timer.cancel()
            stream.gap_timer = None

    def _joined(self, user_id: str, room_id: str, seq: int) -> None:
        """A user with a socket here joined a room: follow it from the join on, everything
        before it read (as their membership starts)."""
        if not self._by_user.get(user_id):
            return
        stream = self._rooms.get(room_id)
        if stream is None:
            stream = self._rooms[room_id] = RoomStream(next_seq=seq)
        if user_id not in stream.members:
            stream.members[user_id] = MemberView(0, seq, seq)
            self._user_rooms[user_id].append(room_id)

    def _emit(self, room_id: str, stream: RoomStream, notice: Notice) -> None:
        event = notice["event"]
        seq = event["seq"]
        stream.next_seq = seq + 1
        frame = encode({"type": "event", "event": event})
        change = _unread_change(event)
        if change is not None:
            stream.record(seq, change)
        summary = notice.get("summary")
        summaries = (
            None if summary is None else SummaryFrames(frame, room_id, seq, summary["last_message"])
        )
        delivered = 0
        # Sockets never leave the hub while it writes to them (a dropped slow reader is
        # removed by its close callback), so the member dict needs no copy here.
        for user_id, view in stream.members.items():
            connections = self._by_user.get(user_id)
            if not connections:
                continue
            if change is not None and seq > view.counted_to:
                view.apply(user_id, change)
            data = frame
            if summaries is not None:
                data = summaries.frames(view.unread_count, view.last_read_seq)
            for connection in connections:
                connection.send_event(room_id, seq, data)
                delivered += 1
        if self.on_delivered is not None:
            self.on_delivered(delivered)
        event_type = event["type"]
        if event_type == "member.left":
            self._unfollow(event["data"]["user"]["id"], room_id)
        elif event_type == "room.deleted":
            for user_id in list(stream.members):
                self._unfollow(user_id, room_id)

    def _fill_gap(self, room_id: str) -> None:
        stream = self._rooms.get(room_id)
        if stream is None:
            return
        stream.gap_timer = None
        if not stream.waiting:
            return
        asyncio.ensure_future(self._load_missing(room_id, stream))

    async def _load_missing(self, room_id: str, stream: RoomStream) -> None:
        """Events published elsewhere never arrived (their process may have died): read them
        from the database, then carry on in order."""
        up_to = max(stream.waiting) - 1
        loaded: list[dict[str, Any]] = []
        if self.load_events is not None:
            try:
                loaded = await self.load_events(room_id, stream.next_seq - 1, up_to)
            except Exception as error:  # the database may be down: tell clients to resume
                log.warning("gap fill failed room_id=%s error=%s", room_id, type(error).__name__)
        if self._rooms.get(room_id) is not stream:
            return
        for event in loaded:
            if event["seq"] >= stream.next_seq:
                stream.waiting.setdefault(event["seq"], {"kind": "event", "event": event})
        if stream.next_seq not in stream.waiting:
            # Still missing: skip ahead and let the clients catch up by seq. Each socket
            # learns which seqs it never got, so that its next resume sends them even
            # though later ones came live.
            log.warning("gap not filled room_id=%s from_seq=%d", room_id, stream.next_seq)
            self._to_room(room_id, encode({"type": "resync"}))
            resumed_at = min(stream.waiting)
            for user_id in stream.members:
                for connection in self._by_user.get(user_id, ()):
                    connection.skipped(room_id, stream.next_seq, resumed_at - 1)
            stream.next_seq = resumed_at
        first = stream.waiting.pop(stream.next_seq)
        self._on_event(first)

    def _on_read(self, notice: Notice) -> None:
        room_id, user_id = notice["room_id"], notice["user_id"]
        receipt = encode(
            {"type": "receipt", "room_id": room_id, "user_id": user_id, "seq": notice["seq"]}
        )
        self._to_room(room_id, receipt)
        summary = notice["summary"]
        stream = self._rooms.get(room_id)
        if stream is not None:
            state = ReadState(
                summary["last_seq"], summary["unread_count"], summary["last_read_seq"]
            )
            if not stream.settle(user_id, state):
                self._refresh(room_id, user_id)
        own = self._by_user.get(user_id)
        if own:
            frame = encode({"type": "room.summary", "room": summary})
            for connection in own:
                connection.send_frame(frame)

    def _on_presence(self, notice: Notice) -> None:
        """Users came online or went offline: each member of their rooms hears of it, in one
        write per group of users sharing the same rooms, never of their own."""
        groups: dict[tuple[str, ...], list[tuple[str, bytes]]] = defaultdict(list)
        for change in notice["changes"]:
            frame = encode(
                {
                    "type": "presence",
                    "user_id": change["user_id"],
                    "online": change["online"],
                    "last_seen_at": notice["last_seen_at"],
                }
            )
            groups[tuple(change["room_ids"])].append((change["user_id"], frame))
        for room_ids, changes in groups.items():
            recipients: set[str] = set()
            for room_id in room_ids:
                stream = self._rooms.get(room_id)
                if stream is not None:
                    recipients.update(stream.members)
            together = b"".join(frame for _, frame in changes)
            changed = {user_id for user_id, _ in changes}
            for recipient in recipients:
                data = together
                if recipient in changed:
                    data = b"".join(frame for user_id, frame in changes if user_id != recipient)
                for connection in self._by_user.get(recipient, ()) if data else ():
                    connection.send_frame(data)

    def _on_user_updated(self, notice: Notice) -> None:
        """A profile changed: one frame to the user's own sockets and to those of the local
        members of the user's rooms, each socket once however many rooms it shares."""
        user_id = notice["user"]["id"]
        recipients = {user_id}
        for room_id in notice["room_ids"]:
            stream = self._rooms.get(room_id)
            if stream is not None:
                recipients.update(stream.members)
        frame = encode({"type": "user.updated", "user": notice["user"]})
        for recipient in recipients:
            for connection in self._by_user.get(recipient, ()):
                connection.send_frame(frame)

    def _to_room(self, room_id: str, frame: bytes, skip_user: str | None = None) -> None:
        stream = self._rooms.get(room_id)
        if stream is None:
            return
        for user_id in stream.members:
            if user_id == skip_user:
                continue
            for connection in self._by_user.get(user_id, ()):
                connection.send_frame(frame)

    def broadcast(self, frame: bytes) -> None:
        for sockets in list(self._by_user.values()):
            for connection in list(sockets):
                connection.send_frame(frame)

    async def keep_alive(self, interval: float) -> None:
        """Ping every socket each ``interval`` seconds; drop those not heard from (a pong or
        any frame) since the previous round. One task for all sockets, not one per socket."""
        while True:
            heard_since = time.monotonic()
            await asyncio.sleep(interval)
            for sockets in list(self._by_user.values()):
                for connection in list(sockets):
                    connection.keep_alive(heard_since)

    def close_all(self, code: int, reason: str) -> None:
        for sockets in list(self._by_user.values()):
            for connection in list(sockets):
                connection.close_with(code, reason)


def _unread_change(event: dict[str, Any]) -> UnreadChange | None:
    """A new message counts as unread for the others, a deleted one no longer does."""
    event_type = event["type"]
    if event_type == "message.created":
        delta = 1
    elif event_type == "message.deleted":
        delta = -1
    else:
        return None
    message = event["data"]
    return message["sender_id"], message["seq"], delta


def _delta(change: UnreadChange, user_id: str, last_read_seq: int) -> int:
    """What a change does to one member's unread count: messages of others past the marker."""
    sender_id, message_seq, delta = change
    return delta if sender_id != user_id and message_seq > last_read_seq else 0


def _discard(index: dict[str, list[Connection]], key: str, connection: Connection) -> bool:
    sockets = index.get(key)
    if sockets is None or connection not in sockets:
        return False
    sockets.remove(connection)
    if not sockets:
        del index[key]
    return True
