"""SQL of exports: their records, and the pages of a user's own rows that an export reads.

Every page is keyed on an index (``after`` is the last key of the previous page), so that
an account of any size is read a page at a time, each page found without a sort of all.
"""

from __future__ import annotations

from cronchat.db import Row, Tx, in_list
from cronchat.models import Export, MediaRecord
from cronchat.repos.rows import MEDIA_COLUMNS, media_record_from_row

_EXPORT_COLUMNS = "id, user_id, status, storage_key, size, created_at, ready_at, expires_at"
# The purposes of media a user uploaded and owns (a room's avatar belongs to the room).
OWN_MEDIA = ("message", "avatar")


def _export(row: Row) -> Export:
    return Export(**{name: row[name] for name in _EXPORT_COLUMNS.split(", ")})


def insert_export(tx: Tx, export_id: str, user_id: str, now: int) -> Export:
    tx.execute(
        "INSERT INTO exports (id, user_id, status, created_at) VALUES (%s, %s, 'pending', %s)",
        (export_id, user_id, now),
    )
    return Export(export_id, user_id, "pending", None, None, now, None, None)


def find_export(tx: Tx, user_id: str, export_id: str) -> Export | None:
    """The user's export of this id (another user's does not exist for them)."""
    row = tx.one(
        f"SELECT {_EXPORT_COLUMNS} FROM exports WHERE id = %s AND user_id = %s",
        (export_id, user_id),
    )
    return None if row is None else _export(row)


def find_export_by_id(tx: Tx, export_id: str) -> Export | None:
    row = tx.one(f"SELECT {_EXPORT_COLUMNS} FROM exports WHERE id = %s", (export_id,))
    return None if row is None else _export(row)


def last_requested_at(tx: Tx, user_id: str) -> int | None:
    """When the user last asked for an export that did not fail."""
    return tx.scalar(
        "SELECT MAX(created_at) FROM exports WHERE user_id = %s AND status <> 'failed'",
        (user_id,),
    )


def mark_ready(
    tx: Tx, export_id: str, storage_key: str, size: int, now: int, expires_at: int
) -> None:
    tx.execute(
        "UPDATE exports SET status = 'ready', storage_key = %s, size = %s, ready_at = %s,"
        " expires_at = %s WHERE id = %s",
        (storage_key, size, now, expires_at, export_id),
    )


def mark_failed(tx: Tx, export_id: str) -> None:
    tx.execute("UPDATE exports SET status = 'failed' WHERE id = %s", (export_id,))


def delete_exports_of(tx: Tx, user_id: str) -> list[str]:
    """Remove a user's exports; answers the storage keys of their files."""
    keys = [
        row["storage_key"]
        for row in tx.all(
            "SELECT storage_key FROM exports WHERE user_id = %s AND storage_key IS NOT NULL",
            (user_id,),
        )
    ]
    tx.execute("DELETE FROM exports WHERE user_id = %s", (user_id,))
    return keys


# -- the rows of an export ---------------------------------------------------------------


def profile_of(tx: Tx, user_id: str) -> Row | None:
    return tx.one(
        "SELECT id, username, display_name, bio, avatar_media_id, is_admin, created_at,"
        " updated_at, last_seen_at FROM users WHERE id = %s",
        (user_id,),
    )


def sessions_of(tx: Tx, user_id: str) -> list[Row]:
    """The user's sessions, without anything that authenticates (no token, no hash)."""
    return tx.all(
        "SELECT id, created_at, last_used_at, revoked_at, user_agent FROM sessions"
        " WHERE user_id = %s ORDER BY created_at, id",
        (user_id,),
    )


def memberships_of(tx: Tx, user_id: str) -> list[Row]:
    """The user's rooms, with their role, read marker and notification settings."""
    return tx.all(
        "SELECT m.room_id, r.kind, r.name, m.role, m.joined_at, m.last_read_seq,"
        " m.notify_level, m.notify_room_mentions, m.notify_muted_until, m.muted_until"
        " FROM room_members m JOIN rooms r ON r.id = m.room_id"
        " WHERE m.user_id = %s AND r.deleted_at IS NULL ORDER BY m.joined_at, m.room_id",
        (user_id,),
    )


def messages_page(tx: Tx, user_id: str, after: str, limit: int) -> list[Row]:
    """The user's messages with an id above ``after``, in id order (index messages_sender)."""
    return tx.all(
        "SELECT id, room_id, seq, kind, text, media_id, reply_to_id, client_msg_id,"
        " created_at, edited_at, deleted_at FROM messages"
        " WHERE sender_id = %s AND id > %s ORDER BY sender_id, id LIMIT %s",
        (user_id, after, limit),
    )


def edits_of(tx: Tx, message_ids: list[str]) -> list[Row]:
    """The ``message.edited`` events of these messages, as stored (one query for a page)."""
    if not message_ids:
        return []
    marks, params = in_list(message_ids)
    return tx.all(
        "SELECT message_id, at, data FROM room_events"
        f" WHERE message_id IN ({marks}) AND type = 'message.edited' ORDER BY room_id, seq",
        params,
    )


def reactions_page(tx: Tx, user_id: str, after: tuple[str, str], limit: int) -> list[Row]:
    """The user's reactions after ``(message_id, emoji)``, in that order (reactions_user)."""
    return tx.all(
        "SELECT x.message_id, m.room_id, x.emoji, x.created_at FROM reactions x"
        " JOIN messages m ON m.id = x.message_id"
        " WHERE x.user_id = %s AND (x.message_id > %s OR (x.message_id = %s AND x.emoji > %s))"
        " ORDER BY x.user_id, x.message_id, x.emoji LIMIT %s",
        (user_id, after[0], after[0], after[1], limit),
    )


def uploads_page(tx: Tx, owner_id: str, after: str, limit: int | None = None) -> list[MediaRecord]:
    """The media the user uploaded and owns, by id above ``after`` (all with no limit)."""
    marks, params = in_list(list(OWN_MEDIA))
    rows = tx.all(
        f"SELECT {MEDIA_COLUMNS} FROM media WHERE owner_id = %s AND purpose IN ({marks})"
        " AND id > %s ORDER BY id" + (" LIMIT %s" if limit is not None else ""),
        (owner_id, *params, after, *((limit,) if limit is not None else ())),
    )
    return [media_record_from_row(row) for row in rows]


def blocks_of(tx: Tx, user_id: str) -> list[Row]:
    return tx.all(
        "SELECT blocked_id, created_at FROM blocks WHERE user_id = %s ORDER BY created_at",
        (user_id,),
    )


def reports_filed_by(tx: Tx, user_id: str) -> list[Row]:
    """The reports the user filed, without the reported content (it is another's)."""
    return tx.all(
        "SELECT id, room_id, message_id, reason, comment, status, created_at, handled_at"
        " FROM reports WHERE reporter_id = %s ORDER BY created_at, id",
        (user_id,),
    )
