"""Domain values passed between layers: plain, frozen dataclasses built from rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cronchat.db import Row


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    display_name: str
    bio: str
    avatar_media_id: str | None
    is_admin: bool
    disabled: bool
    created_at: int
    last_seen_at: int | None

    @classmethod
    def from_row(cls, row: Row, prefix: str = "") -> User:
        return cls(
            id=row[prefix + "id"],
            username=row[prefix + "username"],
            display_name=row[prefix + "display_name"],
            bio=row[prefix + "bio"],
            avatar_media_id=row[prefix + "avatar_media_id"],
            is_admin=bool(row[prefix + "is_admin"]),
            disabled=bool(row[prefix + "disabled"]),
            created_at=row[prefix + "created_at"],
            last_seen_at=row[prefix + "last_seen_at"],
        )


# The user columns, for SELECTs that build a User (optionally under a table alias).
USER_COLUMNS = (
    "id, username, display_name, bio, avatar_media_id, is_admin, disabled, created_at, last_seen_at"
)


def user_columns(alias: str, prefix: str) -> str:
    """``u.id AS peer_id, ...``: the user columns of a joined table under a prefix."""
    return ", ".join(f"{alias}.{column} AS {prefix}{column}" for column in USER_COLUMNS.split(", "))


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an authenticated user and the session their token belongs to."""

    user: User
    session_id: str


@dataclass(frozen=True, slots=True)
class AuthResult:
    user: User
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: str


@dataclass(frozen=True, slots=True)
class Event:
    """A room event: the change, its seq in the room, and its JSON ``data``."""

    room_id: str
    seq: int
    type: str
    actor_id: str
    at: int
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Room:
    id: str
    kind: str
    name: str
    topic: str
    avatar_media_id: str | None
    member_count: int
    last_seq: int
    last_message_seq: int | None
    created_at: int
    updated_at: int
    last_activity_at: int

    @classmethod
    def from_row(cls, row: Row) -> Room:
        return cls(
            id=row["id"],
            kind=row["kind"],
            name=row["name"],
            topic=row["topic"],
            avatar_media_id=row["avatar_media_id"],
            member_count=row["member_count"],
            last_seq=row["last_seq"],
            last_message_seq=row["last_message_seq"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            last_activity_at=row["last_activity_at"],
        )


ROOM_COLUMNS = (
    "r.id, r.kind, r.name, r.topic, r.avatar_media_id, r.member_count, r.last_seq,"
    " r.last_message_seq, r.created_at, r.updated_at, r.last_activity_at"
)


@dataclass(frozen=True, slots=True)
class Membership:
    room_id: str
    user_id: str
    role: str
    joined_at: int
    last_read_seq: int


@dataclass(frozen=True, slots=True)
class Member:
    """A member as listed: the profile with the role and how far they have read."""

    user: User
    role: str
    joined_at: int
    last_read_seq: int = 0


@dataclass(frozen=True, slots=True)
class ReplyRef:
    id: str
    sender_id: str
    excerpt: str | None
    deleted: bool


@dataclass(frozen=True, slots=True)
class ReactionCount:
    emoji: str
    count: int
    me: bool


@dataclass(frozen=True, slots=True)
class MediaInfo:
    id: str
    owner_id: str
    content_type: str
    width: int
    height: int
    size: int


@dataclass(frozen=True, slots=True)
class MediaRecord:
    """An upload as stored: where its bytes are, what it is for, and whether it was used."""

    id: str
    owner_id: str
    purpose: str  # "message" or "avatar"
    storage_key: str
    thumbnail_key: str
    content_type: str
    width: int
    height: int
    size: int
    checksum: str  # sha256 of the stored bytes, hex
    created_at: int
    used_at: int | None

    @classmethod
    def from_row(cls, row: Row) -> MediaRecord:
        return cls(**{name: row[name] for name in MEDIA_COLUMNS.split(", ")})

    def info(self) -> MediaInfo:
        return MediaInfo(
            self.id, self.owner_id, self.content_type, self.width, self.height, self.size
        )


MEDIA_COLUMNS = (
    "id, owner_id, purpose, storage_key, thumbnail_key, content_type, width, height, size,"
    " checksum, created_at, used_at"
)


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    room_id: str
    seq: int
    sender_id: str
    kind: str
    text: str | None
    media: MediaInfo | None
    reply_to: ReplyRef | None
    reactions: tuple[ReactionCount, ...]
    created_at: int
    edited_at: int | None
    deleted: bool
    # Chosen by the sending client, so that the sender's devices match their local echo.
    client_msg_id: str | None = None


@dataclass(frozen=True, slots=True)
class RoomView:
    """A room as one member sees it."""

    room: Room
    my_role: str
    last_read_seq: int
    unread_count: int
    last_message: Message | None
    peer: User | None


@dataclass(frozen=True, slots=True)
class Summary:
    """The part of a member's room view that moves with every message and read."""

    room_id: str
    last_seq: int
    last_message: Message | None
    unread_count: int
    last_read_seq: int


@dataclass(frozen=True, slots=True)
class ReadState:
    """Where a member stands in a room: its last seq, and their unread count and marker."""

    last_seq: int
    unread_count: int
    last_read_seq: int
