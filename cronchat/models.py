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
