"""The JSON shape of each domain value, one function each, as API.md and openapi.yaml say.

Media URLs are signed and expire, so they are made only when JSON leaves the server: every
function takes ``links`` for that. Without it comes the stored form of
:mod:`cronchat.event_data`, kept in room events. :func:`event_json` with ``links`` turns
the stored form into the one sent.
"""

from __future__ import annotations

from typing import Any

from cronchat.event_data import (
    media_data,
    message_data,
    notifications_data,
    room_data,
    shared_message_data,
    user_data,
)
from cronchat.media_links import ORIGINAL, THUMBNAIL, MediaLinks
from cronchat.models import (
    AuditEntry,
    AuthResult,
    Ban,
    Event,
    Export,
    MediaInfo,
    Member,
    Mention,
    Message,
    Pusher,
    Report,
    Room,
    RoomView,
    Summary,
    User,
)
from cronchat.times import now_ms, rfc3339


def user_json(
    user: User, online: bool | None = False, links: MediaLinks | None = None
) -> dict[str, Any]:
    """The public profile; ``online`` None hides the presence (see :func:`user_data`)."""
    shaped = user_data(user, online)
    return shaped if links is None else signed_user_json(shaped, links)


def signed_user_json(shaped: dict[str, Any], links: MediaLinks) -> dict[str, Any]:
    """A stored user object as sent: ``avatar_media_id`` becomes a signed ``avatar_url``."""
    return _signed_avatar(shaped, links)


def _signed_avatar(shaped: dict[str, Any], links: MediaLinks) -> dict[str, Any]:
    signed = dict(shaped)
    avatar_media_id = signed.pop("avatar_media_id", None)
    if avatar_media_id is not None:
        signed["avatar_url"] = links.url(avatar_media_id, ORIGINAL)
    return signed


def own_user_json(shaped: dict[str, Any], user: User) -> dict[str, Any]:
    """A user object as the user themselves sees it: with ``is_admin``."""
    return {**shaped, "is_admin": user.is_admin}


def admin_user_json(user: User, links: MediaLinks | None = None) -> dict[str, Any]:
    """A user as server admins see them: the public profile (presence hidden), with
    ``is_admin`` and ``disabled``."""
    shaped = user_json(user, online=None, links=links)
    return {**shaped, "is_admin": user.is_admin, "disabled": user.disabled}


def export_json(export: Export, url: str | None) -> dict[str, Any]:
    """An export as its owner sees it: ``url``, ``expires_at`` and ``size`` once ready."""
    shaped: dict[str, Any] = {"id": export.id, "status": export.status}
    if export.status == "ready":
        shaped.update(url=url, expires_at=rfc3339(export.expires_at), size=export.size)
    return shaped


def auth_json(result: AuthResult, links: MediaLinks | None = None) -> dict[str, Any]:
    return {
        "user": own_user_json(user_json(result.user, online=False, links=links), result.user),
        "access_token": result.access_token,
        "refresh_token": result.refresh_token,
        "token_type": "Bearer",
        "expires_in": result.expires_in,
    }


def media_json(media: MediaInfo, links: MediaLinks | None = None) -> dict[str, Any]:
    shaped = media_data(media)
    return shaped if links is None else signed_media_json(shaped, links)


def signed_media_json(shaped: dict[str, Any], links: MediaLinks) -> dict[str, Any]:
    """A stored media object as sent: its ``url`` and ``thumbnail_url`` signed."""
    return {
        **shaped,
        "url": links.url(shaped["id"], ORIGINAL),
        "thumbnail_url": links.url(shaped["id"], THUMBNAIL),
    }


def message_json(message: Message, links: MediaLinks | None = None) -> dict[str, Any]:
    shaped = message_data(message)
    return shaped if links is None else signed_message_json(shaped, links)


def shared_message_json(message: Message, links: MediaLinks | None = None) -> dict[str, Any]:
    """A message as every member gets it in an event (see :func:`shared_message_data`)."""
    shaped = shared_message_data(message)
    return shaped if links is None else signed_message_json(shaped, links)


def signed_message_json(shaped: dict[str, Any], links: MediaLinks) -> dict[str, Any]:
    """A stored message object as sent: its media URLs signed."""
    if not shaped.get("media"):
        return shaped
    return {**shaped, "media": signed_media_json(shaped["media"], links)}


def room_json(
    room: Room, peer: User | None = None, links: MediaLinks | None = None
) -> dict[str, Any]:
    """The room itself, as in room events (see :func:`room_data`); with ``links``, as sent."""
    shaped = room_data(room, peer)
    return shaped if links is None else signed_room_json(shaped, links)


def signed_room_json(shaped: dict[str, Any], links: MediaLinks) -> dict[str, Any]:
    """A stored room object as sent: ``avatar_media_id`` becomes a signed ``avatar_url``."""
    return _signed_avatar(shaped, links)


def room_view_json(
    view: RoomView, peer_online: bool | None = False, links: MediaLinks | None = None
) -> dict[str, Any]:
    """The room as one member sees it; ``peer_online`` None hides the peer's presence."""
    shaped = room_json(view.room, view.peer, links)
    shaped.update(
        my_role=view.my_role,
        last_read_seq=view.last_read_seq,
        unread_count=view.unread_count,
        unread_mention_count=view.unread_mention_count,
        notifications=notifications_data(view.notifications),
        last_message=message_json(view.last_message, links) if view.last_message else None,
    )
    if view.room.kind == "direct":
        shaped["peer"] = user_json(view.peer, peer_online, links) if view.peer else None
    return shaped


def member_json(
    member: Member, online: bool = False, links: MediaLinks | None = None
) -> dict[str, Any]:
    return {
        "user": user_json(member.user, online, links),
        "role": member.role,
        "joined_at": rfc3339(member.joined_at),
        "last_read_seq": member.last_read_seq,
        "muted_until": _while_ahead(member.muted_until),
    }


def _while_ahead(ms: int | None) -> str | None:
    """A time that ends something (a mute, a ban) as shown: null once it has passed."""
    return rfc3339(ms) if ms is not None and ms > now_ms() else None


def ban_json(ban: Ban, links: MediaLinks | None = None) -> dict[str, Any]:
    return {
        "user": user_json(ban.user, None, links),
        "banned_by": ban.banned_by,
        "reason": ban.reason,
        "created_at": rfc3339(ban.created_at),
        "expires_at": rfc3339(ban.expires_at),
    }


def audit_entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": rfc3339(entry.at),
        "actor_id": entry.actor_id,
        "action": entry.action,
        "room_id": entry.room_id,
        "target_user_id": entry.target_user_id,
        "message_id": entry.message_id,
        "data": entry.data,
    }


def event_json(event: Event, links: MediaLinks | None = None) -> dict[str, Any]:
    """An event; with ``links``, its stored data as sent (media and avatar URLs signed)."""
    data = event.data
    if links is not None:
        if event.type.startswith("message."):
            data = signed_message_json(data, links)
        elif event.type.startswith("member."):
            data = {**data, "user": signed_user_json(data["user"], links)}
        elif event.type.startswith("room."):
            data = signed_room_json(data, links)
    return {
        "room_id": event.room_id,
        "seq": event.seq,
        "type": event.type,
        "actor_id": event.actor_id,
        "at": rfc3339(event.at),
        "data": data,
    }


def summary_json(summary: Summary, links: MediaLinks | None = None) -> dict[str, Any]:
    last = summary.last_message
    return {
        "id": summary.room_id,
        "last_seq": summary.last_seq,
        "last_message": message_json(last, links) if last else None,
        "unread_count": summary.unread_count,
        "last_read_seq": summary.last_read_seq,
        "unread_mention_count": summary.unread_mention_count,
        "notifications": notifications_data(summary.notifications),
    }


def read_json(summary: Summary) -> dict[str, Any]:
    """The answer to a read: where the reader's marker and counts stand."""
    return {
        "last_read_seq": summary.last_read_seq,
        "unread_count": summary.unread_count,
        "unread_mention_count": summary.unread_mention_count,
    }


def mention_json(mention: Mention, links: MediaLinks | None = None) -> dict[str, Any]:
    """A mention as the feed and the ``mention`` frame show it; its id is its message's (a
    message mentions a user once)."""
    message = mention.message
    return {
        "id": message.id,
        "room_id": message.room_id,
        "seq": message.seq,
        "kind": mention.kind,
        "message": message_json(message, links),
        "read": mention.read,
        "created_at": rfc3339(message.created_at),
    }


def report_json(report: Report, show_reporter: bool) -> dict[str, Any]:
    """A report; ``reporter_id`` only for those who may know it (server admins), null for
    everyone else."""
    snapshot = report.snapshot
    return {
        "id": report.id,
        "room_id": report.room_id,
        "message_id": report.message_id,
        "reason": report.reason,
        "comment": report.comment,
        "status": report.status,
        "snapshot": {
            "sender_id": snapshot.sender_id,
            "kind": snapshot.kind,
            "text": snapshot.text,
            "media_id": snapshot.media_id,
            "created_at": rfc3339(snapshot.created_at),
            "edited_at": rfc3339(snapshot.edited_at),
        },
        "reporter_id": report.reporter_id if show_reporter else None,
        "created_at": rfc3339(report.created_at),
        "handled_by": report.handled_by,
        "handled_at": rfc3339(report.handled_at),
        "note": report.note,
    }


def report_frame(report: Report, show_reporter: bool) -> dict[str, Any]:
    """The ``report`` frame, to a moderator's sockets when a report is filed or handled."""
    return {"type": "report", "report": report_json(report, show_reporter)}


def pusher_json(pusher: Pusher) -> dict[str, Any]:
    """A push device as its owner sees it: what reaches it, never its keys."""
    shaped: dict[str, Any] = {"id": pusher.id, "kind": pusher.kind}
    if pusher.kind == "webpush":
        shaped["endpoint"] = pusher.url
    else:
        shaped.update(url=pusher.url, pushkey=pusher.pushkey, app_id=pusher.app_id)
    shaped["created_at"] = rfc3339(pusher.created_at)
    return shaped
