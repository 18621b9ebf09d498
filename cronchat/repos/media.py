"""SQL of media records."""

from __future__ import annotations

from cronchat.db import Tx, in_list
from cronchat.models import MediaRecord
from cronchat.repos.rows import MEDIA_COLUMNS, media_record_from_row


def insert_media(tx: Tx, record: MediaRecord) -> None:
    tx.execute(
        f"INSERT INTO media ({MEDIA_COLUMNS})"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            record.id,
            record.owner_id,
            record.purpose,
            record.storage_key,
            record.thumbnail_key,
            record.content_type,
            record.width,
            record.height,
            record.size,
            record.checksum,
            record.created_at,
            record.used_at,
        ),
    )


def find_media(tx: Tx, media_id: str, lock: bool = False) -> MediaRecord | None:
    """The record; ``lock`` holds it until commit (against a concurrent prune)."""
    row = tx.one(
        f"SELECT {MEDIA_COLUMNS} FROM media WHERE id = %s"
        + (tx.dialect.for_update if lock else ""),
        (media_id,),
    )
    return None if row is None else media_record_from_row(row)


def is_shared_with(tx: Tx, media_id: str, user_id: str) -> bool:
    """Whether a live message of a room the user is in carries the media."""
    return (
        tx.scalar(
            "SELECT 1 FROM messages x JOIN room_members m ON m.room_id = x.room_id"
            " WHERE x.media_id = %s AND m.user_id = %s LIMIT 1",
            (media_id, user_id),
        )
        is not None
    )


def is_carried(tx: Tx, media_id: str) -> bool:
    """Whether a live message carries the media (a deleted one carries none)."""
    return tx.scalar("SELECT 1 FROM messages WHERE media_id = %s LIMIT 1", (media_id,)) is not None


def release(tx: Tx, media_id: str) -> MediaRecord | None:
    """Delete the record of media that nothing refers to any more (no live message, no user
    or room avatar, no open report's snapshot), in the caller's transaction; answers it, for
    its files to be removed once committed. The record is locked first, as a send claiming
    it locks it, so that a concurrent send either commits first and is seen here, or finds
    the record gone."""
    record = find_media(tx, media_id, lock=True)
    if record is None:
        return None
    referred = tx.scalar(
        "SELECT 1 FROM messages WHERE media_id = %s"
        " UNION ALL SELECT 1 FROM users WHERE avatar_media_id = %s"
        " UNION ALL SELECT 1 FROM rooms WHERE avatar_media_id = %s"
        " UNION ALL SELECT 1 FROM reports WHERE snapshot_media_id = %s AND status = 'open'"
        " LIMIT 1",
        (media_id, media_id, media_id, media_id),
    )
    if referred is not None:
        return None
    delete_media(tx, [media_id])
    return record


def mark_used(tx: Tx, media_id: str, now: int) -> None:
    tx.execute("UPDATE media SET used_at = %s WHERE id = %s AND used_at IS NULL", (now, media_id))


def unused_before(tx: Tx, cutoff: int, limit: int) -> list[MediaRecord]:
    """Uploads never used and created before ``cutoff``, locked until commit."""
    rows = tx.all(
        f"SELECT {MEDIA_COLUMNS} FROM media WHERE used_at IS NULL AND created_at < %s"
        " ORDER BY created_at LIMIT %s" + tx.dialect.for_update,
        (cutoff, limit),
    )
    return [media_record_from_row(row) for row in rows]


def delete_media(tx: Tx, media_ids: list[str]) -> None:
    if not media_ids:
        return
    marks, params = in_list(media_ids)
    tx.execute(f"DELETE FROM media WHERE id IN ({marks})", params)
