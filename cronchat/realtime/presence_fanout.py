"""Presence and profile changes, fanned out to the local members of the rooms concerned:
each socket gets one write, however many of the changes and rooms concern it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from cronchat.realtime.frames import encode
from cronchat.realtime.notices import PresenceNotice, UserUpdatedNotice
from cronchat.realtime.sockets import Sockets

# The user ids of a room's local members (none when nobody here follows it).
RoomMembers = Callable[[str], Iterable[str]]


def fan_out_presence(
    notice: PresenceNotice,
    members: RoomMembers,
    sockets: Sockets,
    blocks_of: Callable[[str], frozenset[str]],
) -> None:
    """Users came online or went offline: each member of their rooms hears of it, in one
    write per group of users sharing the same rooms, never of their own nor of users they
    block."""
    groups: dict[tuple[str, ...], list[tuple[str, bytes]]] = defaultdict(list)
    for change in notice.changes:
        frame = encode(
            {
                "type": "presence",
                "user_id": change.user_id,
                "online": change.online,
                "last_seen_at": notice.last_seen_at,
            }
        )
        groups[change.room_ids].append((change.user_id, frame))
    for room_ids, changes in groups.items():
        recipients: set[str] = set()
        for room_id in room_ids:
            recipients.update(members(room_id))
        together = b"".join(frame for _, frame in changes)
        changed = {user_id for user_id, _ in changes}
        for recipient in recipients:
            data = together
            blocked = blocks_of(recipient)
            if recipient in changed or (blocked and not blocked.isdisjoint(changed)):
                data = b"".join(
                    frame
                    for user_id, frame in changes
                    if user_id != recipient and user_id not in blocked
                )
            for connection in sockets.of(recipient) if data else ():
                connection.send_frame(data)


def fan_out_profile(notice: UserUpdatedNotice, members: RoomMembers, sockets: Sockets) -> None:
    """A profile changed: one frame to the user's own sockets and to those of the local
    members of the user's rooms, each socket once however many rooms it shares."""
    recipients = {notice.user_id}
    for room_id in notice.room_ids:
        recipients.update(members(room_id))
    frame = encode({"type": "user.updated", "user": notice.user})
    for recipient in recipients:
        for connection in sockets.of(recipient):
            connection.send_frame(frame)
