"""The JSON shape of each domain value, one function each, as API.md and openapi.yaml say.

Media URLs are signed and expire, so they are made only when JSON leaves the server: every
function takes ``links`` for that. Without it comes the stored form, kept in room events:
media objects with null URLs, and user objects whose avatar is named by ``avatar_media_id``
instead of a URL. :func:`event_json` with ``links`` turns the stored form into the one sent.
"""

from __future__ import annotations

from typing import Any

from cronchat.media_links import ORIGINAL, THUMBNAIL, MediaLinks
from cronchat.models import (
    AuthResult,
    Event,
    MediaInfo,
    Member,
    Message,
    Room,
    RoomView,
    Summary,
    User,
)
from cronchat.times import rfc3339


def user_json(
    user: User, online: bool | None = False, links: MediaLinks | None = None
) -> dict[str, Any]:
    """The public profile: nothing secret, ever. ``online`` None hides the presence of a user
    who shares no room with the reader: ``online`` and ``last_seen_at`` are null."""
    shaped = {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "bio": user.bio,
        "avatar_url": None,
        "created_at": rfc3339(user.created_at),
        "online": online,
        "last_seen_at": None if online is None else rfc3339(user.last_seen_at),
    }
    if user.avatar_media_id is not None:
        shaped["avatar_media_id"] = user.avatar_media_id
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


def auth_json(result: AuthResult, links: MediaLinks | None = None) -> dict[str, Any]:
    return {
        "user": user_json(result.user, online=False, links=links),
        "access_token": result.access_token,
        "refresh_token": result.refresh_token,
        "token_type": "Bearer",
        "expires_in": result.expires_in,
    }


def media_json(media: MediaInfo, links: MediaLinks | None = None) -> dict[str, Any]:
    shaped = {
        "id": media.id,
        "url": None,
        "thumbnail_url": None,
        "content_type": media.content_type,
        "width": media.width,
        "height": media.height,
        "size": media.size,
    }
    return shaped if links is None else signed_media_json(shaped, links)


def signed_media_json(shaped: dict[str, Any], links: MediaLinks) -> dict[str, Any]:
    """A stored media object as sent: its ``url`` and ``thumbnail_url`` signed."""
    return {
        **shaped,
        "url": links.url(shaped["id"], ORIGINAL),
        "thumbnail_url": links.url(shaped["id"], THUMBNAIL),
    }


def message_json(message: Message, links: MediaLinks | None = None) -> dict[str, Any]:
    reply = message.reply_to
    return {
        "id": message.id,
        "room_id": message.room_id,
        "seq": message.seq,
        "sender_id": message.sender_id,
        "client_msg_id": message.client_msg_id,
        "kind": message.kind,
        "text": message.text,
        "media": media_json(message.media, links) if message.media else None,
        "reply_to": None
        if reply is None
        else {
            "id": reply.id,
            "sender_id": reply.sender_id,
            "excerpt": reply.excerpt,
            "deleted": reply.deleted,
        },
        "reactions": [
            {"emoji": reaction.emoji, "count": reaction.count, "me": reaction.me}
            for reaction in message.reactions
        ],
        "created_at": rfc3339(message.created_at),
        "edited_at": rfc3339(message.edited_at),
        "deleted": message.deleted,
    }


def shared_message_json(message: Message, links: MediaLinks | None = None) -> dict[str, Any]:
    """A message as every member gets it in an event: ``me`` is false in every reaction,
    since one serialisation goes to all (clients learn their own from reaction events)."""
    shaped = message_json(message, links)
    for reaction in shaped["reactions"]:
        reaction["me"] = False
    return shaped


def signed_message_json(shaped: dict[str, Any], links: MediaLinks) -> dict[str, Any]:
    """A stored message object as sent: its media URLs signed."""
    if not shaped.get("media"):
        return shaped
    return {**shaped, "media": signed_media_json(shaped["media"], links)}


def room_json(
    room: Room, peer: User | None = None, links: MediaLinks | None = None
) -> dict[str, Any]:
    """The room itself, as in room events: the fields every member shares. The member's own
    fields (``my_role``, ``last_read_seq``, ``unread_count``) are null here. Without
    ``links``, the stored form: a group room's avatar named by ``avatar_media_id``."""
    shaped = {
        "id": room.id,
        "kind": room.kind,
        "name": peer.display_name if peer is not None else room.name,
        "topic": room.topic,
        "avatar_url": None,
        "member_count": room.member_count,
        "my_role": None,
        "last_seq": room.last_seq,
        "last_read_seq": None,
        "unread_count": None,
        "last_message": None,
        "created_at": rfc3339(room.created_at),
        "updated_at": rfc3339(room.updated_at),
    }
    if room.avatar_media_id is not None and room.kind == "group":
        shaped["avatar_media_id"] = room.avatar_media_id
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
        "muted_until": None,  # timed mutes come later; the field is part of the shape
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
    }
