"""SQL of bans: who may not be a member of a room, until when. A ban whose ``expires_at``
has passed no longer holds; its row stays until the user is banned again or unbanned."""

from __future__ import annotations

from cronchat.db import Row, Tx
from cronchat.models import Ban
from cronchat.repos.rows import user_columns, user_from_row

# A ban that holds at a time (the parameter): no expiry, or one still ahead.
_HOLDS = "(b.expires_at IS NULL OR b.expires_at > %s)"

_USER_COLUMNS = user_columns("u", "u_")
_BAN_COLUMNS = f"b.room_id, b.banned_by, b.reason, b.created_at, b.expires_at, {_USER_COLUMNS}"


def _ban(row: Row) -> Ban:
    return Ban(
        row["room_id"],
        user_from_row(row, "u_"),
        row["banned_by"],
        row["reason"],
        row["created_at"],
        row["expires_at"],
    )


def find_ban(tx: Tx, room_id: str, user_id: str, now: int) -> Ban | None:
    """The ban of a user from a room that holds at ``now``."""
    row = tx.one(
        f"SELECT {_BAN_COLUMNS} FROM bans b JOIN users u ON u.id = b.user_id"
        f" WHERE b.room_id = %s AND b.user_id = %s AND {_HOLDS}",
        (room_id, user_id, now),
    )
    return None if row is None else _ban(row)


def is_banned(tx: Tx, room_id: str, user_id: str, now: int) -> bool:
    return (
        tx.scalar(
            f"SELECT 1 FROM bans b WHERE b.room_id = %s AND b.user_id = %s AND {_HOLDS}",
            (room_id, user_id, now),
        )
        is not None
    )


def insert_ban(
    tx: Tx,
    room_id: str,
    user_id: str,
    banned_by: str | None,
    reason: str,
    now: int,
    expires_at: int | None,
) -> None:
    """Ban a user; an expired ban of theirs that is still stored gives way to this one."""
    tx.execute("DELETE FROM bans WHERE room_id = %s AND user_id = %s", (room_id, user_id))
    tx.execute(
        "INSERT INTO bans (room_id, user_id, banned_by, reason, created_at, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (room_id, user_id, banned_by, reason, now, expires_at),
    )


def delete_ban(tx: Tx, room_id: str, user_id: str) -> None:
    tx.execute("DELETE FROM bans WHERE room_id = %s AND user_id = %s", (room_id, user_id))


def list_bans(tx: Tx, room_id: str, now: int) -> list[Ban]:
    """The bans of a room that hold at ``now``, newest first."""
    rows = tx.all(
        f"SELECT {_BAN_COLUMNS} FROM bans b JOIN users u ON u.id = b.user_id"
        f" WHERE b.room_id = %s AND {_HOLDS} ORDER BY b.created_at DESC, b.user_id",
        (room_id, now),
    )
    return [_ban(row) for row in rows]
