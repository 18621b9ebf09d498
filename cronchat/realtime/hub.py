"""The hub: which local sockets follow which rooms, and the dispatch of every notice from
the broker to the sockets it concerns.

Each notice becomes one frame, built once, and the same bytes go to every recipient. Room
events go through the room's :class:`~cronchat.realtime.room_stream.RoomStream` (in order,
no holes) and each socket's cursor (nothing twice); when the event moves its members'
summaries, each member's own summary travels inside the event frame (``room``), built from
the template of :mod:`cronchat.realtime.unread`: one frame per delivery.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cronchat.alerts import should_alert
from cronchat.models import ReadState
from cronchat.realtime.frames import encode, event_frame, event_opening
from cronchat.realtime.notices import (
    BlocksNotice,
    EventNotice,
    Notice,
    NotificationsNotice,
    PresenceNotice,
    ReadNotice,
    ResyncNotice,
    SessionsRevokedNotice,
    TypingNotice,
    UsersNotice,
    UserUpdatedNotice,
)
from cronchat.realtime.presence_fanout import fan_out_presence, fan_out_profile
from cronchat.realtime.room_stream import EventReader, RoomStream
from cronchat.realtime.sockets import Connection, Sockets
from cronchat.realtime.unread import (
    MemberView,
    MentionFrames,
    ReadStateReader,
    RoomUnread,
    SummaryFrames,
    unread_change,
)

log = logging.getLogger("cronchat.hub")

RESYNC_FRAME = encode({"type": "resync"})

# Events after which their member's sockets no longer follow the room (they get the event).
_MEMBERSHIP_ENDS = ("member.left", "member.banned")

# Called with (user_id, online, room_ids) when a user's first socket opens here or their
# last one closes.
OnPresence = Callable[[str, bool, set[str]], None]
# Called with the number of sockets each event frame went to (metrics).
OnDelivered = Callable[[int], None]


@dataclass(slots=True)
class _Room:
    """A room some local socket follows: its stream and its members' unread views."""

    stream: RoomStream
    unread: RoomUnread


class Hub:
    def __init__(
        self,
        sockets: Sockets,
        events: EventReader,
        read_states: ReadStateReader,
        on_presence: OnPresence,
        on_delivered: OnDelivered,
    ) -> None:
        self.sockets = sockets
        self.events = events
        self._read_states = read_states
        self._on_presence = on_presence
        self._on_delivered = on_delivered
        self._rooms: dict[str, _Room] = {}
        self._user_rooms: dict[str, list[str]] = defaultdict(list)
        # Whom each local user blocks, for those who block anyone.
        self._blocks: dict[str, frozenset[str]] = {}

    # -- who is here ---------------------------------------------------------------------

    def is_online(self, user_id: str) -> bool:
        return self.sockets.is_online(user_id)

    def connection_count(self) -> int:
        return self.sockets.connection_count()

    def close_all(self, code: int, reason: str) -> None:
        self.sockets.close_all(code, reason)

    def rooms_of(self, user_id: str) -> set[str]:
        return set(self._user_rooms.get(user_id, ()))

    def blocks_of(self, user_id: str) -> frozenset[str]:
        """Whom a local user blocks."""
        return self._blocks.get(user_id, frozenset())

    def _members(self, room_id: str) -> Iterable[str]:
        room = self._rooms.get(room_id)
        return room.unread.members if room is not None else ()

    def add(
        self,
        connection: Connection,
        states: dict[str, ReadState],
        blocked: frozenset[str] = frozenset(),
    ) -> dict[str, int]:
        """Start delivering to a socket: its user's rooms, each with its read state as read
        from the database, and whom the user blocks. Answers each room's last seq from here
        on: where this process already delivered past the database read, the higher one, so
        that the client resumes up to the point where its live stream begins."""
        user_id = connection.user_id
        first = self.sockets.add(connection)
        if blocked:
            self._blocks[user_id] = blocked
        current = {}
        for room_id, state in states.items():
            room = self._follow(room_id, user_id, state.last_seq + 1, state)
            current[room_id] = max(state.last_seq, room.stream.next_seq - 1)
        if first:
            self._on_presence(user_id, True, self.rooms_of(user_id))
        return current

    def remove(self, connection: Connection) -> None:
        """Forget a socket everywhere; safe to call twice."""
        user_id = connection.user_id
        if not self.sockets.remove(connection) or self.sockets.is_online(user_id):
            return
        room_ids = set(self._user_rooms.pop(user_id, ()))
        self._blocks.pop(user_id, None)
        for room_id in room_ids:
            self._unfollow(user_id, room_id)
        self._on_presence(user_id, False, room_ids)

    def _follow(
        self, room_id: str, user_id: str, next_seq: int, state: ReadState, settle: bool = True
    ) -> _Room:
        """The user follows the room from this read state on (if not already); ``settle``
        counts what the stream delivered past the read."""
        room = self._rooms.get(room_id)
        if room is None:
            room = _Room(RoomStream(room_id, next_seq), RoomUnread(changes_from=next_seq))
            self._rooms[room_id] = room
        if user_id not in room.unread.members:
            room.unread.members[user_id] = MemberView(
                0, state.last_read_seq, state.last_seq, settings=state.notifications
            )
            self._user_rooms[user_id].append(room_id)
            delivered_to = room.stream.next_seq - 1
            if settle and not room.unread.settle(
                user_id, state, delivered_to, self.blocks_of(user_id)
            ):
                asyncio.ensure_future(self._load_read_state(room_id, user_id))
        return room

    def _unfollow(self, user_id: str, room_id: str) -> None:
        room = self._rooms.get(room_id)
        if room is None:
            return
        room.unread.members.pop(user_id, None)
        rooms = self._user_rooms.get(user_id)
        if rooms is not None and room_id in rooms:
            rooms.remove(room_id)
        if not room.unread.members:
            room.stream.close()
            del self._rooms[room_id]

    async def _load_read_state(self, room_id: str, user_id: str) -> None:
        """A member's view missed changes it can no longer learn from the hub: read it
        again; until then it counts on from where it stood."""
        try:
            state = await self._read_states.read_state(user_id, room_id)
        except Exception as error:  # the database may be down: the next read corrects it
            log.warning("read state load failed room_id=%s error=%s", room_id, type(error).__name__)
            return
        room = self._rooms.get(room_id)
        if room is not None and state is not None:
            room.unread.settle(user_id, state, room.stream.next_seq - 1, self.blocks_of(user_id))

    # -- delivery ------------------------------------------------------------------------

    def deliver(self, notice: Notice) -> None:
        """Broker subscriber: route one notice to the local sockets it concerns."""
        if isinstance(notice, EventNotice):
            if notice.type == "member.joined":
                self._joined(notice)
            room = self._rooms.get(notice.room_id)
            if room is not None:
                room.stream.offer(notice, self)
        elif isinstance(notice, ReadNotice):
            self._on_read(notice)
        elif isinstance(notice, NotificationsNotice):
            self._on_notifications(notice)
        elif isinstance(notice, TypingNotice):
            frame = encode({"type": "typing", "room_id": notice.room_id, "user_id": notice.user_id})
            self._to_room(notice.room_id, frame, from_user=notice.user_id)
        elif isinstance(notice, PresenceNotice):
            fan_out_presence(notice, self._members, self.sockets, self.blocks_of)
        elif isinstance(notice, UserUpdatedNotice):
            fan_out_profile(notice, self._members, self.sockets)
        elif isinstance(notice, BlocksNotice):
            self._on_blocks(notice)
        elif isinstance(notice, UsersNotice):
            frame = encode(notice.frame)
            for user_id in notice.user_ids:
                for connection in self.sockets.of(user_id):
                    connection.send_frame(frame)
        elif isinstance(notice, SessionsRevokedNotice):
            self.sockets.revoke(notice.session_ids, notice.user_id)
        elif isinstance(notice, ResyncNotice):
            self.sockets.resync(RESYNC_FRAME)

    def _joined(self, notice: EventNotice) -> None:
        """A user with a socket here joined a room: follow it from the join on, everything
        before it read (as their membership starts)."""
        user_id, seq = notice.member_id, notice.seq
        if user_id is not None and self.sockets.is_online(user_id):
            self._follow(notice.room_id, user_id, seq, ReadState(seq, 0, seq), settle=False)

    def emit(self, stream: RoomStream, notice: EventNotice) -> None:
        """The room's stream says this event is next: to every local member's sockets, with
        each one's own summary inside the event frame when the event moves it, and a
        ``mention`` frame after it to each member it newly mentions."""
        room_id, seq = notice.room_id, notice.seq
        if notice.type == "member.joined":
            self._joined(notice)  # as in deliver, for an event read to fill a hole
        room = self._rooms[room_id]
        opening = event_opening(notice.event)
        change = unread_change(notice)
        if change is not None:
            room.unread.record(seq, change)
        summary = notice.summary
        # Either one frame for everyone, or each member's own, with their summary inside.
        frame, summaries = b"", None
        if summary is None:
            frame = event_frame(opening)
        else:
            summaries = SummaryFrames(opening, room_id, seq, summary.last_message)
        mentions = None
        if change is not None and (change.after.user_ids or change.after.room):
            mentions = MentionFrames(notice.event["data"])
        now = int(time.time() * 1000)
        sender_id = change.sender_id if change is not None else None
        blocks = self._blocks
        delivered = 0
        # Sockets never leave the hub while it writes to them (a dropped slow reader is
        # removed by its close callback), so the member dict needs no copy here.
        for user_id, view in room.unread.members.items():
            connections = self.sockets.of(user_id)
            if not connections:
                continue
            # A change by a user the member blocks counts for nothing and mentions no one.
            counting = change
            if blocks and sender_id in blocks.get(user_id, ()):
                counting = None
            if counting is not None:
                view.count(user_id, seq, counting)
            data = frame
            if summaries is not None:
                data = summaries.frame(view)
            for connection in connections:
                connection.send_event(room_id, seq, data)
                delivered += 1
            if mentions is not None and counting is not None:
                kind = counting.newly_mentions(user_id)
                if kind is not None:
                    read = counting.message_seq <= view.last_read_seq
                    mention = mentions.frame(kind, read, should_alert(view.settings, kind, now))
                    for connection in connections:
                        connection.send_frame(mention)
        self._on_delivered(delivered)
        if notice.from_store and notice.type in ("message.edited", "message.deleted"):
            # Read back to fill a hole, it does not say what the message mentioned before:
            # the members' counts are read again instead.
            for user_id in room.unread.members:
                asyncio.ensure_future(self._load_read_state(room_id, user_id))
        if notice.type in _MEMBERSHIP_ENDS and notice.member_id is not None:
            self._unfollow(notice.member_id, room_id)
        elif notice.type == "room.deleted":
            for user_id in list(room.unread.members):
                self._unfollow(user_id, room_id)

    def skip(self, stream: RoomStream, from_seq: int, to_seq: int) -> None:
        """The room's stream could not fill a hole: its sockets are told to ``resync`` and
        each learns which seqs it never got, so that its next resume sends them even though
        later ones came live."""
        room_id = stream.room_id
        self._to_room(room_id, RESYNC_FRAME)
        for user_id in self._members(room_id):
            for connection in self.sockets.of(user_id):
                connection.skipped(room_id, from_seq, to_seq)

    def _on_read(self, notice: ReadNotice) -> None:
        room_id, user_id = notice.room_id, notice.user_id
        receipt = encode(
            {"type": "receipt", "room_id": room_id, "user_id": user_id, "seq": notice.last_read_seq}
        )
        self._to_room(room_id, receipt)
        room = self._rooms.get(room_id)
        if room is not None:
            state = ReadState(
                notice.last_seq,
                notice.unread_count,
                notice.last_read_seq,
                notice.unread_mention_count,
            )
            delivered_to = room.stream.next_seq - 1
            if not room.unread.settle(user_id, state, delivered_to, self.blocks_of(user_id)):
                asyncio.ensure_future(self._load_read_state(room_id, user_id))
        own = self.sockets.of(user_id)
        if own:
            frame = encode({"type": "room.summary", "room": notice.room})
            for connection in own:
                connection.send_frame(frame)

    def _on_notifications(self, notice: NotificationsNotice) -> None:
        """A member's settings changed: what decides their alerts here, and their devices'
        summaries."""
        room = self._rooms.get(notice.room_id)
        view = room.unread.members.get(notice.user_id) if room is not None else None
        if view is not None:
            view.set_settings(notice.settings)
        own = self.sockets.of(notice.user_id)
        if own:
            frame = encode({"type": "room.summary", "room": notice.room})
            for connection in own:
                connection.send_frame(frame)

    def _on_blocks(self, notice: BlocksNotice) -> None:
        """A local user's blocks changed: what their counts leave out from now on (their
        views are read again, since the counts of what they had not read change), and a
        ``blocks`` frame for their devices."""
        user_id = notice.user_id
        if not self.sockets.is_online(user_id):
            return
        if notice.blocked_ids:
            self._blocks[user_id] = frozenset(notice.blocked_ids)
        else:
            self._blocks.pop(user_id, None)
        for room_id in self._user_rooms.get(user_id, ()):
            asyncio.ensure_future(self._load_read_state(room_id, user_id))
        frame = encode({"type": "blocks", "user_ids": list(notice.blocked_ids)})
        for connection in self.sockets.of(user_id):
            connection.send_frame(frame)

    def _to_room(self, room_id: str, frame: bytes, from_user: str | None = None) -> None:
        """A frame to the local members of a room; one ``from_user`` (typing) goes neither to
        them nor to members who block them."""
        for user_id in self._members(room_id):
            if from_user is not None and (
                user_id == from_user or from_user in self._blocks.get(user_id, ())
            ):
                continue
            for connection in self.sockets.of(user_id):
                connection.send_frame(frame)
