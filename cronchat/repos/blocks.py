"""SQL of blocks: who blocks whom."""

from __future__ import annotations

from cronchat.db import Query, Tx, pairs_match
from cronchat.models import User
from cronchat.repos.rows import user_columns, user_from_row

# The senders a member (``m``) blocks, for the count rules of rooms.py and mentions.py.
BLOCKED_BY_MEMBER = "(SELECT b.blocked_id FROM blocks b WHERE b.user_id = m.user_id)"


def add(tx: Tx, user_id: str, blocked_id: str, now: int) -> bool:
    """Block; False when already blocked."""
    return (
        tx.execute(
            f"{tx.dialect.insert_ignore} INTO blocks (user_id, blocked_id, created_at)"
            " VALUES (%s, %s, %s)",
            (user_id, blocked_id, now),
        )
        == 1
    )


def remove(tx: Tx, user_id: str, blocked_id: str) -> bool:
    """Unblock; False when not blocked."""
    return (
        tx.execute(
            "DELETE FROM blocks WHERE user_id = %s AND blocked_id = %s", (user_id, blocked_id)
        )
        == 1
    )


def blocked_ids(tx: Tx, user_id: str) -> frozenset[str]:
    rows = tx.all("SELECT blocked_id FROM blocks WHERE user_id = %s", (user_id,))
    return frozenset(row["blocked_id"] for row in rows)


def blocked_users(tx: Tx, user_id: str) -> list[User]:
    """The users a user blocks, most recently blocked first."""
    rows = tx.all(
        f"SELECT {user_columns('u', 'u_')} FROM blocks b JOIN users u ON u.id = b.blocked_id"
        " WHERE b.user_id = %s ORDER BY b.created_at DESC, u.id",
        (user_id,),
    )
    return [user_from_row(row, "u_") for row in rows]


def blocks(tx: Tx, user_id: str, blocked_id: str) -> bool:
    """Whether ``user_id`` blocks ``blocked_id``."""
    return (
        tx.scalar(
            "SELECT 1 FROM blocks WHERE user_id = %s AND blocked_id = %s", (user_id, blocked_id)
        )
        is not None
    )


def blocked_in_direct_rooms(pairs: set[tuple[str, str]]) -> Query[set[tuple[str, str]]]:
    """Of these (room_id, sender_id) pairs, those of a direct room whose other member blocks
    the sender, as a query to send with others (``Tx.fetch``)."""
    condition, params = pairs_match("m.room_id", "m.user_id", pairs)
    return Query(
        "SELECT m.room_id, m.user_id FROM room_members m"
        " JOIN rooms r ON r.id = m.room_id AND r.kind = 'direct'"
        " JOIN room_members peer ON peer.room_id = m.room_id AND peer.user_id <> m.user_id"
        " JOIN blocks b ON b.user_id = peer.user_id AND b.blocked_id = m.user_id"
        f" WHERE {condition}",
        params,
        lambda rows: {(row["room_id"], row["user_id"]) for row in rows},
    )
