"""The stored form of room event ``data``: what ``room_events.data`` holds for each kind of
event, built from domain values in the transaction that writes the event.

It is the API's JSON shape without anything that expires: media objects with null URLs,
and users and group rooms whose avatar is named by ``avatar_media_id`` instead of a URL.
:mod:`cronchat.views` builds the API shapes on these and signs the URLs when JSON leaves
the server.
"""

from __future__ import annotations

from typing import Any

from cronchat.models import MediaInfo, Mentions, Message, NotificationSettings, Room, User
from cronchat.times import rfc3339


def user_data(user: User, online: bool | None = False) -> dict[str, Any]:
    """The public profile: nothing secret, ever. ``online`` None hides the presence of a user
    who shares no room with the reader: ``online`` and ``last_seen_at`` are null."""
    shaped: dict[str, Any] = {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "bio": user.bio,
        "avatar_url": None,
        "created_at": rfc3339(user.created_at),
        "online": online,
        "last_seen_at": None if online is None else rfc3339(user.last_seen_at),
    }
    if user.deleted:
        shaped["deleted"] = True  # "Deleted user", with no avatar (see services/lifecycle.py)
    elif user.avatar_media_id is not None:
        shaped["avatar_media_id"] = user.avatar_media_id
    return shaped


def media_data(media: MediaInfo) -> dict[str, Any]:
    return {
        "id": media.id,
        "url": None,
        "thumbnail_url": None,
        "content_type": media.content_type,
        "width": media.width,
        "height": media.height,
        "size": media.size,
    }


def message_data(message: Message) -> dict[str, Any]:
    """A message as its reader sees it (``me`` in each reaction is the reader's own)."""
    reply = message.reply_to
    return {
        "id": message.id,
        "room_id": message.room_id,
        "seq": message.seq,
        "sender_id": message.sender_id,
        "client_msg_id": message.client_msg_id,
        "kind": message.kind,
        "text": message.text,
        "media": media_data(message.media) if message.media else None,
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
        "mentions": mentions_data(message.mentions),
    }


def mentions_data(mentions: Mentions) -> dict[str, Any]:
    return {"user_ids": list(mentions.user_ids), "room": mentions.room}


def notifications_data(settings: NotificationSettings) -> dict[str, Any]:
    return {
        "level": settings.level,
        "room_mentions": settings.room_mentions,
        "muted_until": rfc3339(settings.muted_until),
    }


def shared_message_data(message: Message) -> dict[str, Any]:
    """A message as every member gets it in an event: ``me`` is false in every reaction,
    since one serialisation goes to all (clients learn their own from reaction events)."""
    shaped = message_data(message)
    for reaction in shaped["reactions"]:
        reaction["me"] = False
    return shaped


def room_data(room: Room, peer: User | None = None) -> dict[str, Any]:
    """The room itself, as in room events: the fields every member shares. The member's own
    fields (``my_role``, ``last_read_seq``, the counts, ``notifications``) are null here; a
    group room's avatar is named by ``avatar_media_id``."""
    shaped: dict[str, Any] = {
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
        "unread_mention_count": None,
        "notifications": None,
        "last_message": None,
        "created_at": rfc3339(room.created_at),
        "updated_at": rfc3339(room.updated_at),
    }
    if room.avatar_media_id is not None and room.kind == "group":
        shaped["avatar_media_id"] = room.avatar_media_id
    return shaped


def member_data(user: User, role: str) -> dict[str, Any]:
    """The data of ``member.joined``, ``member.left`` and ``member.role_changed``."""
    return {"user": user_data(user), "role": role}
