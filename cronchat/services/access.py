"""Access rules: who acts in a room, and with what authority.

A room a user is not a member of does not exist for them: every lookup answers NotFound.
The server's operator (the CLI) acts with an owner's authority in every room.
"""

from __future__ import annotations

from dataclasses import dataclass

from cronchat.db import Tx
from cronchat.errors import Forbidden, NotFound
from cronchat.models import Membership, Room, User
from cronchat.repos import messages, rooms

# The stored ``actor_id`` of what the operator does (events, as the CLI has always written).
OPERATOR_ACTOR_ID = "system"


@dataclass(frozen=True, slots=True)
class MemberActor:
    """A user, acting in a room with the role of their membership (or not at all)."""

    user_id: str

    @property
    def actor_id(self) -> str:
        return self.user_id


@dataclass(frozen=True, slots=True)
class Operator:
    """The server's operator (the CLI): an owner of every room, a member of none."""

    @property
    def actor_id(self) -> str:
        return OPERATOR_ACTOR_ID


Actor = MemberActor | Operator


@dataclass(frozen=True, slots=True)
class RoomAdmin:
    """An actor checked to be an owner or admin of a group room, with that room."""

    actor: Actor
    role: str
    room: Room


def require_member(tx: Tx, room_id: str, user_id: str, lock: bool = False) -> Membership:
    """The caller's membership, or NotFound: a room you are not in does not exist for you."""
    membership = rooms.find_membership(tx, room_id, user_id, lock)
    if membership is None:
        raise NotFound("no such room")
    return membership


def get_room(tx: Tx, room_id: str, lock: bool = False) -> Room:
    """A live room, or NotFound; ``lock`` holds its row until commit."""
    room = rooms.find_room(tx, room_id, lock)
    if room is None:
        raise NotFound("no such room")
    return room


def role_of(tx: Tx, room_id: str, actor: Actor, lock: bool = False) -> str:
    """The role an actor acts with in a room: the operator's is an owner's (the room must
    exist), a member's is their membership's; anyone else gets NotFound."""
    if isinstance(actor, Operator):
        get_room(tx, room_id)
        return "owner"
    return require_member(tx, room_id, actor.user_id, lock).role


def require_group(tx: Tx, room_id: str, lock: bool = False) -> Room:
    room = get_room(tx, room_id, lock)
    if room.kind != "group":
        raise Forbidden("direct rooms have exactly their two members and no settings")
    return room


def require_room_admin(tx: Tx, room_id: str, actor: Actor, lock: bool = False) -> RoomAdmin:
    """The group room whose settings an owner or admin changes; ``lock`` holds its row."""
    role = role_of(tx, room_id, actor)
    room = require_group(tx, room_id, lock)
    if role not in ("owner", "admin"):
        raise Forbidden("only an owner or admin may change the room")
    return RoomAdmin(actor, role, room)


def get_message_owner(tx: Tx, room_id: str, message_id: str) -> messages.MessageOwner:
    """Who sent a message of the room, and whether it is deleted; NotFound otherwise."""
    owner = messages.message_owner(tx, room_id, message_id)
    if owner is None:
        raise NotFound("no such message")
    return owner


def require_server_admin(user: User) -> None:
    """Server administration (``/admin``) is for users with ``is_admin``: anyone else 403."""
    if not user.is_admin:
        raise Forbidden("only server admins may do this")
