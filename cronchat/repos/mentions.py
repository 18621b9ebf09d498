"""SQL of mentions: one row per user a message mentions, and one row for a mention of the
room (``user_id`` ``ROOM``), whatever the number of members. Deleting a message deletes
its rows, so that counts and the feed never show it again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cronchat.db import Tx, in_list
from cronchat.models import Mentions
from cronchat.repos.blocks import BLOCKED_BY_MEMBER

# The user_id of the row of a room mention: no user id has this form.
ROOM = "*"

# Non-deleted messages of others (not of users the member blocks) above the member's read
# marker that mention them or the room, each once: the mention count (the companion of
# ``_UNREAD`` in rooms.py).
UNREAD_MENTIONS = (
    "(SELECT COUNT(DISTINCT n.seq) FROM mentions n WHERE n.room_id = m.room_id"
    f" AND n.user_id IN (m.user_id, '{ROOM}') AND n.seq > m.last_read_seq"
    f" AND n.sender_id <> m.user_id AND n.sender_id NOT IN {BLOCKED_BY_MEMBER})"
)


@dataclass(frozen=True, slots=True)
class MentionRow:
    message_id: str
    user_id: str
    room_id: str
    seq: int
    sender_id: str
    created_at: int


def row_user_ids(mentions: Mentions) -> list[str]:
    """The ``user_id`` of each row a message's mentions take."""
    return [*mentions.user_ids, *([ROOM] if mentions.room else [])]


def insert_mentions(tx: Tx, rows: list[MentionRow]) -> None:
    """Write mention rows with the transaction's commit (a held write)."""
    if rows:
        tx.executemany_later(
            "INSERT INTO mentions (message_id, user_id, room_id, seq, sender_id, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (row.message_id, row.user_id, row.room_id, row.seq, row.sender_id, row.created_at)
                for row in rows
            ],
        )


def delete_mentions(tx: Tx, message_id: str, user_ids: list[str] | None = None) -> None:
    """A message's mention rows: all of them, or those of ``user_ids``."""
    if user_ids is None:
        tx.execute("DELETE FROM mentions WHERE message_id = %s", (message_id,))
    elif user_ids:
        marks, params = in_list(user_ids)
        tx.execute(
            f"DELETE FROM mentions WHERE message_id = %s AND user_id IN ({marks})",
            (message_id, *params),
        )


def forget_member(tx: Tx, room_id: str, user_id: str) -> None:
    """A member left: the mentions of them in the room are no longer theirs to list."""
    tx.execute("DELETE FROM mentions WHERE room_id = %s AND user_id = %s", (room_id, user_id))


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """A mention of a user as the feed lists it: the message, how it names them, and
    whether their read marker passed it."""

    message_id: str
    room_id: str
    seq: int
    created_at: int
    kind: str
    read: bool


def feed(
    tx: Tx,
    user_id: str,
    limit: int,
    after: tuple[int, str] | None = None,
    unread: bool | None = None,
    room_id: str | None = None,
) -> list[FeedEntry]:
    """The user's mentions, newest first: in live rooms they are a member of (room mentions
    since they joined; a member's own rows go when they leave: :func:`forget_member`), not
    by themselves nor by users they block. ``after`` is the (created_at,
    message_id) of the previous page's last entry."""
    where = ["m.user_id = %s", "n.sender_id <> %s", f"n.sender_id NOT IN {BLOCKED_BY_MEMBER}"]
    params: list[Any] = [user_id, user_id, user_id, user_id]
    if room_id is not None:
        where.append("m.room_id = %s")
        params.append(room_id)
    if unread is not None:
        where.append("n.seq > m.last_read_seq" if unread else "n.seq <= m.last_read_seq")
    if after is not None:
        where.append("(n.created_at < %s OR (n.created_at = %s AND n.message_id < %s))")
        params.extend([after[0], after[0], after[1]])
    params.append(limit)
    rows = tx.all(
        "SELECT n.message_id, n.room_id, n.seq, n.created_at, m.last_read_seq,"
        " MAX(CASE WHEN n.user_id = %s THEN 1 ELSE 0 END) AS named"
        " FROM room_members m JOIN rooms r ON r.id = m.room_id AND r.deleted_at IS NULL"
        f" JOIN mentions n ON n.room_id = m.room_id AND (n.user_id = %s"
        f" OR (n.user_id = '{ROOM}' AND n.seq > m.joined_seq))"
        f" WHERE {' AND '.join(where)}"
        " GROUP BY n.message_id, n.room_id, n.seq, n.created_at, m.last_read_seq"
        " ORDER BY n.created_at DESC, n.message_id DESC LIMIT %s",
        params,
    )
    return [
        FeedEntry(
            row["message_id"],
            row["room_id"],
            row["seq"],
            row["created_at"],
            "user" if row["named"] else "room",
            row["seq"] <= row["last_read_seq"],
        )
        for row in rows
    ]
