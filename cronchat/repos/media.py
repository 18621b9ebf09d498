"""SQL of media records."""

from __future__ import annotations

from cronchat.db import Tx


def owner_of(tx: Tx, media_id: str) -> str | None:
    return tx.scalar("SELECT owner_id FROM media WHERE id = %s", (media_id,))


def mark_used(tx: Tx, media_id: str, now: int) -> None:
    tx.execute("UPDATE media SET used_at = %s WHERE id = %s AND used_at IS NULL", (now, media_id))
