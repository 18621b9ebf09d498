"""Notices: what a commit tells the sockets of every process, one frozen type per kind.

Inside a process notices travel typed; they become JSON only at the process edges (the
Redis broker and the database notice relay), through :func:`to_json` and :func:`from_json`,
and nowhere else. The JSON shape is the one processes of earlier versions publish and read.
The parts clients receive as they are (an event, a summary, a profile) are carried already
rendered (``event``, ``room``, ``user``): the frame built from them once per notice is the
same for every recipient.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from cronchat.models import NO_MENTIONS, Mentions, NotificationSettings
from cronchat.times import parse_rfc3339

log = logging.getLogger("cronchat.notices")


@dataclass(frozen=True, slots=True)
class EventSummary:
    """Every member's summary of the room travels in the event's frame, with this last
    message (None when the room has none left); each member's own numbers are the hub's
    to fill in."""

    last_message: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class EventNotice:
    """A room event, ``event`` its JSON as sent (media URLs signed). ``sender_id``,
    ``message_seq`` and ``mentions`` are set for message events, ``member_id`` for
    membership events. ``mentions_before`` is what a deleted message, or an edited one whose
    mentions changed, mentioned before (mention counts move with it); an event read back
    from the database (``from_store``) does not know it."""

    room_id: str
    seq: int
    type: str
    event: dict[str, Any]
    summary: EventSummary | None = None
    sender_id: str | None = None
    message_seq: int | None = None
    member_id: str | None = None
    mentions: Mentions = NO_MENTIONS
    mentions_before: Mentions | None = None
    from_store: bool = False


@dataclass(frozen=True, slots=True)
class ReadNotice:
    """A member read up to ``last_read_seq``; ``room`` is their summary as sent."""

    room_id: str
    user_id: str
    last_read_seq: int
    last_seq: int
    unread_count: int
    room: dict[str, Any]
    unread_mention_count: int = 0


@dataclass(frozen=True, slots=True)
class NotificationsNotice:
    """A member changed their notification settings of a room; ``room`` is their summary
    as sent."""

    room_id: str
    user_id: str
    settings: NotificationSettings
    room: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TypingNotice:
    room_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class PresenceChange:
    user_id: str
    online: bool
    room_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PresenceNotice:
    """Users who came online or went offline at ``last_seen_at`` (RFC 3339)."""

    last_seen_at: str | None
    changes: tuple[PresenceChange, ...]


@dataclass(frozen=True, slots=True)
class UserUpdatedNotice:
    """A profile changed: ``user`` as sent, for the user and the members of ``room_ids``."""

    user_id: str
    user: dict[str, Any]
    room_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BlocksNotice:
    """A user's blocks changed: ``blocked_ids`` is whom they block now."""

    user_id: str
    blocked_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UsersNotice:
    """A frame for the sockets of these users (``blocks`` to a user's devices, ``report``
    to a room's moderators): ``frame`` as sent, the same for every recipient."""

    user_ids: tuple[str, ...]
    frame: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SessionsRevokedNotice:
    """These sessions ended. ``user_id`` is set when the user's sessions ended together (a
    password set, the user disabled): every process then forgets all it remembers of the
    user's sessions, also of one opened while the act ran."""

    session_ids: tuple[str, ...]
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class ResyncNotice:
    """Live delivery may have missed notices: every socket is told to ``resume``."""


Notice = (
    EventNotice
    | ReadNotice
    | NotificationsNotice
    | TypingNotice
    | PresenceNotice
    | UserUpdatedNotice
    | UsersNotice
    | BlocksNotice
    | SessionsRevokedNotice
    | ResyncNotice
)

# Not worth sending late to other processes.
EPHEMERAL = (TypingNotice,)


def event_notice(
    event: dict[str, Any],
    summary: EventSummary | None = None,
    mentions_before: Mentions | None = None,
) -> EventNotice:
    """The notice of an event given as sent: what the hub needs of it, read once here."""
    event_type = event["type"]
    data = event["data"]
    sender_id = message_seq = member_id = None
    mentions = NO_MENTIONS
    if event_type.startswith("message."):
        sender_id, message_seq = data.get("sender_id"), data.get("seq")
        mentions = mentions_from_json(data.get("mentions"))
    elif event_type.startswith("member."):
        member_id = data["user"]["id"]
    return EventNotice(
        event["room_id"],
        event["seq"],
        event_type,
        event,
        summary,
        sender_id,
        message_seq,
        member_id,
        mentions,
        mentions_before,
    )


def mentions_from_json(shaped: dict[str, Any] | None) -> Mentions:
    """A message's ``mentions`` as sent (absent in events of earlier versions)."""
    if not shaped or (not shaped["user_ids"] and not shaped["room"]):
        return NO_MENTIONS
    return Mentions(tuple(shaped["user_ids"]), bool(shaped["room"]))


def _mentions_json(mentions: Mentions) -> dict[str, Any]:
    return {"user_ids": list(mentions.user_ids), "room": mentions.room}


def settings_from_json(shaped: dict[str, Any]) -> NotificationSettings:
    """A summary's ``notifications`` as sent."""
    muted_until = shaped["muted_until"]
    return NotificationSettings(
        shaped["level"],
        bool(shaped["room_mentions"]),
        None if muted_until is None else parse_rfc3339(muted_until),
    )


def to_json(notice: Notice) -> dict[str, Any]:
    """A notice as it crosses processes."""
    if isinstance(notice, EventNotice):
        shaped: dict[str, Any] = {"kind": "event", "event": notice.event}
        if notice.summary is not None:
            shaped["summary"] = {"last_message": notice.summary.last_message}
        if notice.mentions_before is not None:
            shaped["mentions_before"] = _mentions_json(notice.mentions_before)
        return shaped
    if isinstance(notice, ReadNotice):
        return {
            "kind": "read",
            "room_id": notice.room_id,
            "user_id": notice.user_id,
            "seq": notice.last_read_seq,
            "summary": notice.room,
        }
    if isinstance(notice, NotificationsNotice):
        return {
            "kind": "notifications",
            "room_id": notice.room_id,
            "user_id": notice.user_id,
            "summary": notice.room,
        }
    if isinstance(notice, TypingNotice):
        return {"kind": "typing", "room_id": notice.room_id, "user_id": notice.user_id}
    if isinstance(notice, PresenceNotice):
        changes = [
            {"user_id": change.user_id, "online": change.online, "room_ids": list(change.room_ids)}
            for change in notice.changes
        ]
        return {"kind": "presence", "last_seen_at": notice.last_seen_at, "changes": changes}
    if isinstance(notice, UserUpdatedNotice):
        return {"kind": "user.updated", "user": notice.user, "room_ids": list(notice.room_ids)}
    if isinstance(notice, UsersNotice):
        return {"kind": "users", "user_ids": list(notice.user_ids), "frame": notice.frame}
    if isinstance(notice, BlocksNotice):
        return {"kind": "blocks", "user_id": notice.user_id, "user_ids": list(notice.blocked_ids)}
    if isinstance(notice, SessionsRevokedNotice):
        shaped = {"kind": "sessions.revoked", "session_ids": list(notice.session_ids)}
        if notice.user_id is not None:
            shaped["user_id"] = notice.user_id
        return shaped
    return {"kind": "resync"}


def from_json(shaped: Any) -> Notice | None:
    """A notice read from another process; None (logged) for one not understood."""
    try:
        return _from_json(shaped)
    except (KeyError, TypeError, ValueError, AttributeError):
        log.warning("notice not understood; skipped")
        return None


def _from_json(shaped: dict[str, Any]) -> Notice | None:
    kind = shaped.get("kind")
    if kind == "event":
        summary = shaped.get("summary")
        before = shaped.get("mentions_before")
        return event_notice(
            shaped["event"],
            None if summary is None else EventSummary(summary["last_message"]),
            None if before is None else mentions_from_json(before),
        )
    if kind == "read":
        room = shaped["summary"]
        return ReadNotice(
            shaped["room_id"],
            shaped["user_id"],
            shaped["seq"],
            room["last_seq"],
            room["unread_count"],
            room,
            room.get("unread_mention_count", 0),
        )
    if kind == "notifications":
        room = shaped["summary"]
        return NotificationsNotice(
            shaped["room_id"], shaped["user_id"], settings_from_json(room["notifications"]), room
        )
    if kind == "typing":
        return TypingNotice(shaped["room_id"], shaped["user_id"])
    if kind == "presence":
        changes = tuple(
            PresenceChange(change["user_id"], change["online"], tuple(change["room_ids"]))
            for change in shaped["changes"]
        )
        return PresenceNotice(shaped["last_seen_at"], changes)
    if kind == "user.updated":
        user = shaped["user"]
        return UserUpdatedNotice(user["id"], user, tuple(shaped["room_ids"]))
    if kind == "users":
        return UsersNotice(tuple(shaped["user_ids"]), shaped["frame"])
    if kind == "blocks":
        return BlocksNotice(shaped["user_id"], tuple(shaped["user_ids"]))
    if kind == "sessions.revoked":
        user_id = shaped.get("user_id")
        return SessionsRevokedNotice(
            tuple(shaped["session_ids"]), user_id if isinstance(user_id, str) else None
        )
    if kind == "resync":
        return ResyncNotice()
    log.warning("notice of unknown kind skipped kind=%s", kind)
    return None
