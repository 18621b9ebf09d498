"""The JSON shape of each domain value, one function each, as API.md and openapi.yaml say."""

from __future__ import annotations

from typing import Any

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


def user_json(user: User, online: bool = False) -> dict[str, Any]:
    """The public profile: nothing secret, ever."""
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "bio": user.bio,
        "avatar_url": None,
        "created_at": rfc3339(user.created_at),
        "online": online,
        "last_seen_at": rfc3339(user.last_seen_at),
    }


def auth_json(result: AuthResult) -> dict[str, Any]:
    return {
        "user": user_json(result.user, online=False),
        "access_token": result.access_token,
        "refresh_token": result.refresh_token,
        "token_type": "Bearer",
        "expires_in": result.expires_in,
    }


def media_json(media: MediaInfo) -> dict[str, Any]:
    return {
        "id": media.id,
        "url": None,
        "thumbnail_url": None,
        "content_type": media.content_type,
        "width": media.width,
        "height": media.height,
        "size": media.size,
    }


def message_json(message: Message) -> dict[str, Any]:
    reply = message.reply_to
    return {
        "id": message.id,
        "room_id": message.room_id,
        "seq": message.seq,
        "sender_id": message.sender_id,
        "kind": message.kind,
        "text": message.text,
        "media": media_json(message.media) if message.media else None,
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


def shared_message_json(message: Message) -> dict[str, Any]:
    """A message as every member gets it in an event: ``me`` is false in every reaction,
    since one serialisation goes to all (clients learn their own from reaction events)."""
    shaped = message_json(message)
    for reaction in shaped["reactions"]:
        reaction["me"] = False
    return shaped


def room_json(room: Room, peer: User | None = None) -> dict[str, Any]:
    """The room itself, as in room events: the fields every member shares. The member's own
    fields (``my_role``, ``last_read_seq``, ``unread_count``) are null here."""
    return {
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


def room_view_json(view: RoomView, peer_online: bool = False) -> dict[str, Any]:
    """The room as one member sees it."""
    shaped = room_json(view.room, view.peer)
    shaped.update(
        my_role=view.my_role,
        last_read_seq=view.last_read_seq,
        unread_count=view.unread_count,
        last_message=message_json(view.last_message) if view.last_message else None,
    )
    if view.room.kind == "direct":
        shaped["peer"] = user_json(view.peer, peer_online) if view.peer else None
    return shaped


def member_json(member: Member, online: bool = False) -> dict[str, Any]:
    return {
        "user": user_json(member.user, online),
        "role": member.role,
        "joined_at": rfc3339(member.joined_at),
    }


def event_json(event: Event) -> dict[str, Any]:
    return {
        "room_id": event.room_id,
        "seq": event.seq,
        "type": event.type,
        "actor_id": event.actor_id,
        "at": rfc3339(event.at),
        "data": event.data,
    }


def summary_json(summary: Summary) -> dict[str, Any]:
    return {
        "id": summary.room_id,
        "last_seq": summary.last_seq,
        "last_message": message_json(summary.last_message) if summary.last_message else None,
        "unread_count": summary.unread_count,
        "last_read_seq": summary.last_read_seq,
    }
