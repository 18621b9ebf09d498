"""Rows to domain values: the column lists that SELECTs name and the mapper of each row."""

from __future__ import annotations

from cronchat.db import Row
from cronchat.models import MediaRecord, Room, User

# The user columns, for SELECTs that build a User (optionally under a table alias).
USER_COLUMNS = (
    "id, username, display_name, bio, avatar_media_id, is_admin, disabled, created_at,"
    " last_seen_at, deleted_at"
)

ROOM_COLUMNS = (
    "r.id, r.kind, r.name, r.topic, r.avatar_media_id, r.member_count, r.last_seq,"
    " r.last_message_seq, r.created_at, r.updated_at, r.last_activity_at"
)

MEDIA_COLUMNS = (
    "id, owner_id, purpose, storage_key, thumbnail_key, content_type, width, height, size,"
    " checksum, created_at, used_at"
)


def user_columns(alias: str, prefix: str) -> str:
    """``u.id AS peer_id, ...``: the user columns of a joined table under a prefix."""
    return ", ".join(f"{alias}.{column} AS {prefix}{column}" for column in USER_COLUMNS.split(", "))


def user_from_row(row: Row, prefix: str = "") -> User:
    return User(
        id=row[prefix + "id"],
        username=row[prefix + "username"],
        display_name=row[prefix + "display_name"],
        bio=row[prefix + "bio"],
        avatar_media_id=row[prefix + "avatar_media_id"],
        is_admin=bool(row[prefix + "is_admin"]),
        disabled=bool(row[prefix + "disabled"]),
        created_at=row[prefix + "created_at"],
        last_seen_at=row[prefix + "last_seen_at"],
        deleted=row[prefix + "deleted_at"] is not None,
    )


def room_from_row(row: Row) -> Room:
    return Room(
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


def media_record_from_row(row: Row) -> MediaRecord:
    return MediaRecord(**{name: row[name] for name in MEDIA_COLUMNS.split(", ")})
