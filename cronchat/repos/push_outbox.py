"""SQL of push delivery: the jobs a send leaves (one per new message), the outbox of pushes
owed (at most one per pusher and room), and the pushers owed a ``read`` push."""

from __future__ import annotations

from dataclasses import dataclass

from cronchat.db import Query, Row, Tx, in_list, pairs_match
from cronchat.models import NotificationSettings, Pusher
from cronchat.repos.messages import mentions_from_column
from cronchat.repos.rooms import _UNREAD  # the one definition of a member's unread count

_PUSHER_COLUMNS = "id, user_id, session_id, kind, url, p256dh, auth, pushkey, app_id, created_at"
_OUTBOX_COLUMNS = (
    "pusher_id, room_id, user_id, kind, push, version, attempts, created_at, due_at, claimed_until"
)
_JOB = "INSERT INTO push_jobs (room_id, seq, created_at) VALUES (%s, %s, %s)"


@dataclass(frozen=True, slots=True)
class JobMessage:
    """A message a job names, as the planner needs it."""

    room_id: str
    seq: int
    message_id: str
    sender_id: str
    text: str | None
    user_ids: tuple[str, ...]  # mentioned by name
    room_mention: bool
    room_name: str
    sender_display_name: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """A pusher of a member of a room where a job's message was sent."""

    room_id: str
    user_id: str
    pusher_id: str
    settings: NotificationSettings
    unread_count: int


@dataclass(frozen=True, slots=True)
class Owed:
    """One push to write: ``push`` is its JSON (what :mod:`cronchat.push.delivery` rebuilds)."""

    pusher_id: str
    room_id: str
    user_id: str
    kind: str
    push: str
    seq: int  # of the message it carries: its job is the one that owes it


@dataclass(frozen=True, slots=True)
class Claimed:
    """A push claimed for sending: the outbox row (at ``version``) and its pusher."""

    pusher: Pusher
    room_id: str
    kind: str
    push: str
    version: int
    attempts: int
    created_at: int


def add_jobs(tx: Tx, jobs: list[tuple[str, int]], now: int) -> None:
    """New messages to plan pushes for: held, sent with the send's commit."""
    tx.executemany_later(_JOB, [(room_id, seq, now) for room_id, seq in jobs])


def rooms_with_pushers(room_ids: set[str]) -> Query[set[str]]:
    """Which of these rooms have a member with a push device: only their messages owe a
    push job (a query to send with others, ``Tx.fetch``). Asked of every send batch, so
    it stops at the first such member of a room, and at once when nobody has a device: a
    scalar subquery with ``LIMIT 1``, which MariaDB runs per room, where it would turn an
    ``EXISTS`` into a semi-join reading every member."""
    marks, params = in_list(sorted(room_ids))
    return Query(
        f"SELECT r.id AS room_id FROM rooms r WHERE r.id IN ({marks})"
        " AND EXISTS (SELECT 1 FROM pushers)"
        " AND (SELECT 1 FROM room_members m JOIN pushers p ON p.user_id = m.user_id"
        " WHERE m.room_id = r.id LIMIT 1) IS NOT NULL",
        params,
        lambda rows: {row["room_id"] for row in rows},
    )


def pending_jobs(tx: Tx, limit: int) -> list[tuple[str, int]]:
    rows = tx.all(
        "SELECT room_id, seq FROM push_jobs ORDER BY created_at, room_id, seq LIMIT %s", (limit,)
    )
    return [(row["room_id"], int(row["seq"])) for row in rows]


def take_jobs(tx: Tx, jobs: list[tuple[str, int]]) -> set[tuple[str, int]]:
    """Of these jobs, those still waiting and not being taken by another process: locked,
    then deleted (this transaction owns them)."""
    if not jobs:
        return set()
    condition, params = pairs_match("room_id", "seq", jobs)
    skip = " FOR UPDATE SKIP LOCKED" if tx.dialect.name == "mysql" else ""
    rows = tx.all(f"SELECT room_id, seq FROM push_jobs WHERE {condition}{skip}", params)
    taken = {(row["room_id"], int(row["seq"])) for row in rows}
    if taken:
        condition, params = pairs_match("room_id", "seq", taken)
        tx.execute_later(f"DELETE FROM push_jobs WHERE {condition}", params)
    return taken


def drop_jobs(tx: Tx, jobs: list[tuple[str, int]]) -> None:
    """These jobs are done (held: sent with the commit)."""
    condition, params = pairs_match("room_id", "seq", jobs)
    tx.execute_later(f"DELETE FROM push_jobs WHERE {condition}", params)


def job_messages(jobs: list[tuple[str, int]]) -> Query[list[JobMessage]]:
    """The live messages of these jobs, with their room's name and sender's display name."""
    condition, params = pairs_match("x.room_id", "x.seq", jobs)
    return Query(
        "SELECT x.room_id, x.seq, x.id, x.sender_id, x.text, x.mentions, r.name AS room_name,"
        " u.display_name FROM messages x JOIN rooms r ON r.id = x.room_id"
        " JOIN users u ON u.id = x.sender_id"
        f" WHERE {condition} AND x.deleted_at IS NULL AND r.deleted_at IS NULL",
        params,
        _job_messages,
    )


def _job_messages(rows: list[Row]) -> list[JobMessage]:
    found = []
    for row in rows:
        mentions = mentions_from_column(row["mentions"])
        found.append(
            JobMessage(
                row["room_id"],
                int(row["seq"]),
                row["id"],
                row["sender_id"],
                row["text"],
                mentions.user_ids,
                mentions.room,
                row["room_name"] or "",
                row["display_name"],
            )
        )
    return found


def members_with_pushers(room_ids: set[str]) -> Query[set[tuple[str, str]]]:
    """The ``(room_id, user_id)`` of every member of these rooms with a push device: what
    the planner asks presence about (two indexes read, no row)."""
    marks, params = in_list(sorted(room_ids))
    return Query(
        "SELECT DISTINCT m.room_id, m.user_id FROM room_members m"
        " JOIN pushers p ON p.user_id = m.user_id"
        f" WHERE m.room_id IN ({marks})",
        params,
        lambda rows: {(row["room_id"], row["user_id"]) for row in rows},
    )


def candidates(room_ids: set[str], user_ids: set[str]) -> Query[list[Candidate]]:
    """Every pusher of these users as members of these rooms, with the member's settings
    and unread count (asked for the members who are offline only)."""
    rooms, room_params = in_list(sorted(room_ids))
    users, user_params = in_list(sorted(user_ids))
    return Query(
        "SELECT m.room_id, m.user_id, p.id AS pusher_id, m.notify_level,"
        f" m.notify_room_mentions, m.notify_muted_until, {_UNREAD} AS unread_count"
        " FROM room_members m JOIN pushers p ON p.user_id = m.user_id"
        f" WHERE m.room_id IN ({rooms}) AND m.user_id IN ({users})",
        room_params + user_params,
        _candidates,
    )


def _candidates(rows: list[Row]) -> list[Candidate]:
    return [
        Candidate(
            row["room_id"],
            row["user_id"],
            row["pusher_id"],
            NotificationSettings(
                row["notify_level"], bool(row["notify_room_mentions"]), row["notify_muted_until"]
            ),
            int(row["unread_count"]),
        )
        for row in rows
    ]


def blocks_among(user_ids: set[str], sender_ids: set[str]) -> Query[set[tuple[str, str]]]:
    """The ``(user, sender)`` pairs where the user blocks the sender (both sets not
    empty)."""
    users, user_params = in_list(sorted(user_ids))
    senders, sender_params = in_list(sorted(sender_ids))
    return Query(
        f"SELECT user_id, blocked_id FROM blocks WHERE user_id IN ({users})"
        f" AND blocked_id IN ({senders})",
        user_params + sender_params,
        lambda rows: {(row["user_id"], row["blocked_id"]) for row in rows},
    )


def _upsert(tx: Tx) -> str:
    """The tail of an INSERT into the outbox that replaces a pending push of the same pusher
    and room: its kind and content, a new version; its due time and tries stay."""
    if tx.dialect.name == "mysql":
        return (
            " ON DUPLICATE KEY UPDATE kind = VALUES(kind), push = VALUES(push),"
            " version = version + 1"
        )
    return (
        " ON CONFLICT (pusher_id, room_id) DO UPDATE SET kind = excluded.kind,"
        " push = excluded.push, version = push_outbox.version + 1"
    )


def owe(tx: Tx, owed: list[Owed], now: int) -> None:
    """Write these pushes, each replacing a pending push of its pusher and room (held).
    Pushers removed since the pushes were planned are owed nothing."""
    if not owed:
        return
    marks, ids = in_list(sorted({o.pusher_id for o in owed}))
    live = {row["id"] for row in tx.all(f"SELECT id FROM pushers WHERE id IN ({marks})", ids)}
    owed = [o for o in owed if o.pusher_id in live]
    tx.executemany_later(
        f"INSERT INTO push_outbox ({_OUTBOX_COLUMNS})"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)" + _upsert(tx),
        [(o.pusher_id, o.room_id, o.user_id, o.kind, o.push, 1, 0, now, now, 0) for o in owed],
    )


def owe_read(tx: Tx, user_id: str, room_id: str, push: str, now: int) -> None:
    """The member read the room: their pending message pushes of it are dropped, and the
    pushers sent one since the last read are owed ``push`` (a ``read``). Held writes only."""
    tx.execute_later(
        "DELETE FROM push_outbox WHERE user_id = %s AND room_id = %s AND kind = 'message'",
        (user_id, room_id),
    )
    tx.execute_later(
        f"INSERT INTO push_outbox ({_OUTBOX_COLUMNS})"
        " SELECT pusher_id, room_id, user_id, 'read', %s, 1, 0, %s, %s, 0 FROM push_sent"
        " WHERE user_id = %s AND room_id = %s" + _upsert(tx),
        (push, now, now, user_id, room_id),
    )
    tx.execute_later(
        "DELETE FROM push_sent WHERE user_id = %s AND room_id = %s", (user_id, room_id)
    )


def claim(tx: Tx, now: int, until: int, limit: int) -> list[Claimed]:
    """Up to ``limit`` pushes due and not claimed, claimed until ``until``: rows another
    process is claiming are skipped (MySQL ``SKIP LOCKED``; SQLite has one writer)."""
    skip = " FOR UPDATE SKIP LOCKED" if tx.dialect.name == "mysql" else ""
    rows = tx.all(
        "SELECT pusher_id, room_id, kind, push, version, attempts, created_at FROM push_outbox"
        " WHERE due_at <= %s AND claimed_until <= %s ORDER BY due_at LIMIT %s" + skip,
        (now, now, limit),
    )
    if not rows:
        return []
    keys = [(row["pusher_id"], row["room_id"]) for row in rows]
    condition, params = pairs_match("pusher_id", "room_id", keys)
    tx.execute(f"UPDATE push_outbox SET claimed_until = %s WHERE {condition}", (until, *params))
    marks, ids = in_list(sorted({row["pusher_id"] for row in rows}))
    pushers = {
        row["id"]: Pusher(**row)
        for row in tx.all(f"SELECT {_PUSHER_COLUMNS} FROM pushers WHERE id IN ({marks})", ids)
    }
    return [
        Claimed(
            pushers[row["pusher_id"]],
            row["room_id"],
            row["kind"],
            row["push"],
            int(row["version"]),
            int(row["attempts"]),
            int(row["created_at"]),
        )
        for row in rows
        if row["pusher_id"] in pushers
    ]


def done(tx: Tx, claimed: Claimed) -> None:
    """Sent (or dropped): the row goes, unless a newer push replaced it meanwhile, which
    is released to be sent. A message push sent makes its pusher owed the room's read."""
    key = (claimed.pusher.id, claimed.room_id)
    tx.execute_later(
        "DELETE FROM push_outbox WHERE pusher_id = %s AND room_id = %s AND version = %s",
        (*key, claimed.version),
    )
    tx.execute_later(
        "UPDATE push_outbox SET claimed_until = 0 WHERE pusher_id = %s AND room_id = %s", key
    )


def remember_sent(tx: Tx, claimed: Claimed) -> None:
    tx.execute_later(
        f"{tx.dialect.insert_ignore} INTO push_sent (pusher_id, room_id, user_id)"
        " VALUES (%s, %s, %s)",
        (claimed.pusher.id, claimed.room_id, claimed.pusher.user_id),
    )


def retry(tx: Tx, claimed: Claimed, due_at: int) -> None:
    tx.execute_later(
        "UPDATE push_outbox SET attempts = attempts + 1, due_at = %s, claimed_until = 0"
        " WHERE pusher_id = %s AND room_id = %s",
        (due_at, claimed.pusher.id, claimed.room_id),
    )


def remove_pusher(tx: Tx, pusher_id: str) -> None:
    """The push service says the device is gone: the pusher goes, and what it was owed."""
    tx.execute_later("DELETE FROM push_outbox WHERE pusher_id = %s", (pusher_id,))
    tx.execute_later("DELETE FROM push_sent WHERE pusher_id = %s", (pusher_id,))
    tx.execute_later("DELETE FROM pushers WHERE id = %s", (pusher_id,))


def waiting(tx: Tx, now: int) -> tuple[int, int | None, int]:
    """How many pushes are owed, when the oldest was first owed (epoch ms), and how many
    are due and unclaimed at ``now``."""
    row = tx.one(
        "SELECT COUNT(*) AS n, MIN(created_at) AS oldest, COALESCE(SUM(CASE WHEN due_at <= %s"
        " AND claimed_until <= %s THEN 1 ELSE 0 END), 0) AS due FROM push_outbox",
        (now, now),
    )
    assert row is not None
    oldest = None if row["oldest"] is None else int(row["oldest"])
    return int(row["n"]), oldest, int(row["due"])
