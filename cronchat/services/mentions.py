"""The rules of mentions: what a client may ask to mention, and what of it a message keeps.

A message names whom it mentions explicitly (nothing is parsed out of its text): users of
its room, and the room itself. The sender and non-members are dropped; a room mention means
nothing in a direct room, and in a large group only its admins and owner may make one.
"""

from __future__ import annotations

from typing import Any

from cronchat.errors import Forbidden, Invalid
from cronchat.models import NO_MENTIONS, Mentions

MAX_MENTIONED = 50
# Up to this many members, any member may mention the room; above, admins and owners only.
OPEN_ROOM_MENTIONS_UP_TO = 20


def read_mentions(value: dict[str, Any] | None) -> Mentions | None:
    """A request's ``mentions`` (None when absent), checked for shape: ``user_ids`` a list
    of at most MAX_MENTIONED distinct strings, ``room`` a boolean."""
    if value is None:
        return None
    user_ids = value.get("user_ids", [])
    if not isinstance(user_ids, list) or not all(isinstance(item, str) for item in user_ids):
        raise Invalid("mentions.user_ids must be a list of user ids", field="mentions.user_ids")
    distinct = tuple(dict.fromkeys(user_ids))
    if len(distinct) > MAX_MENTIONED:
        raise Invalid(
            f"a message mentions at most {MAX_MENTIONED} users", field="mentions.user_ids"
        )
    room = value.get("room", False)
    if not isinstance(room, bool):
        raise Invalid("mentions.room must be a boolean", field="mentions.room")
    return Mentions(distinct, room) if distinct or room else NO_MENTIONS


def kept_mentions(
    asked: Mentions,
    sender_id: str,
    members: set[str],
    room_kind: str,
    member_count: int,
    sender_role: str,
) -> Mentions:
    """What a message of ``sender_id`` keeps of the mentions asked: members of the room
    (``members`` holds at least those asked for who are), not the sender; the room only in
    a group, and in one above OPEN_ROOM_MENTIONS_UP_TO members only from an admin or owner
    (Forbidden otherwise)."""
    user_ids = tuple(
        user_id for user_id in asked.user_ids if user_id != sender_id and user_id in members
    )
    room = asked.room and room_kind == "group"
    if room and member_count > OPEN_ROOM_MENTIONS_UP_TO and sender_role not in ("owner", "admin"):
        raise Forbidden(
            f"in a group of more than {OPEN_ROOM_MENTIONS_UP_TO} members only admins and the"
            " owner may mention the room",
            field="mentions.room",
        )
    return Mentions(user_ids, room) if user_ids or room else NO_MENTIONS
