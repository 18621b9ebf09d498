"""SQL of rooms and their members."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cronchat.db import Query, Row, Tx, in_list, pairs_match
from cronchat.db.dialect import Dialect
from cronchat.models import (
    Member,
    Membership,
    NotificationSettings,
    ReadState,
    Room,
    User,
)
from cronchat.repos.blocks import BLOCKED_BY_MEMBER
from cronchat.repos.mentions import UNREAD_MENTIONS, forget_member
from cronchat.repos.rows import (
    ROOM_COLUMNS,
    USER_COLUMNS,
    room_from_row,
    user_columns,
    user_from_row,
)

# Messages of others above the member's read marker, not deleted, not from a user the member
# blocks: the unread count.
_UNREAD = (
    "(SELECT COUNT(*) FROM messages x WHERE x.room_id = m.room_id AND x.seq > m.last_read_seq"
    " AND x.sender_id <> m.user_id AND x.deleted_at IS NULL"
    f" AND x.sender_id NOT IN {BLOCKED_BY_MEMBER})"
)

# A member's own numbers and settings in a room, read with it (``m`` the membership).
_OWN_COLUMNS = (
    f"m.last_read_seq, {_UNREAD} AS unread_count, {UNREAD_MENTIONS} AS unread_mention_count,"
    " m.notify_level, m.notify_room_mentions, m.notify_muted_until"
)


def _settings(row: Row) -> NotificationSettings:
    return NotificationSettings(
        row["notify_level"], bool(row["notify_room_mentions"]), row["notify_muted_until"]
    )


def _read_state(row: Row, last_seq: int) -> ReadState:
    return ReadState(
        last_seq,
        int(row["unread_count"]),
        row["last_read_seq"],
        int(row["unread_mention_count"]),
        _settings(row),
    )


def insert_room(
    tx: Tx,
    room_id: str,
    kind: str,
    name: str,
    topic: str,
    created_by: str,
    now: int,
    direct_key: str | None = None,
) -> None:
    tx.execute(
        "INSERT INTO rooms (id, kind, name, topic, direct_key, created_by, member_count,"
        " last_seq, created_at, updated_at, last_activity_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, 0, 0, %s, %s, %s)",
        (room_id, kind, name, topic, direct_key, created_by, now, now, now),
    )


def find_room(tx: Tx, room_id: str, lock: bool = False) -> Room | None:
    """A live room; ``lock`` holds its row until commit."""
    row = tx.one(
        f"SELECT {ROOM_COLUMNS} FROM rooms r WHERE r.id = %s AND r.deleted_at IS NULL"
        + (tx.dialect.for_update if lock else ""),
        (room_id,),
    )
    return None if row is None else room_from_row(row)


def list_rooms(tx: Tx, limit: int, offset: int) -> list[Room]:
    rows = tx.all(
        f"SELECT {ROOM_COLUMNS} FROM rooms r WHERE r.deleted_at IS NULL"
        " ORDER BY r.last_activity_at DESC, r.id DESC LIMIT %s OFFSET %s",
        (limit, offset),
    )
    return [room_from_row(row) for row in rows]


def find_direct_room_id(tx: Tx, direct_key: str) -> str | None:
    return tx.scalar(
        "SELECT id FROM rooms WHERE direct_key = %s AND deleted_at IS NULL", (direct_key,)
    )


def find_membership(
    tx: Tx, room_id: str, user_id: str, lock: bool = False, include_deleted: bool = False
) -> Membership | None:
    """The membership of a user in a live room (or a deleted one, with ``include_deleted``);
    ``lock`` holds the row until commit."""
    live = "" if include_deleted else " AND r.deleted_at IS NULL"
    row = tx.one(
        "SELECT m.room_id, m.user_id, m.role, m.joined_at, m.last_read_seq, m.muted_until"
        " FROM room_members m JOIN rooms r ON r.id = m.room_id"
        " WHERE m.room_id = %s AND m.user_id = %s" + live + (tx.dialect.for_update if lock else ""),
        (room_id, user_id),
    )
    return None if row is None else Membership(**row)


def insert_members(tx: Tx, room_id: str, members: list[tuple[str, str, int]], now: int) -> None:
    """Add members, each ``(user_id, role, last_read_seq)``, in two statements. The read
    marker a membership starts with is where it starts (``joined_seq``)."""
    tx.executemany(
        "INSERT INTO room_members (room_id, user_id, role, joined_at, last_read_seq, joined_seq)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        [
            (room_id, user_id, role, now, last_read_seq, last_read_seq)
            for user_id, role, last_read_seq in members
        ],
    )
    tx.execute(
        "UPDATE rooms SET member_count = member_count + %s WHERE id = %s", (len(members), room_id)
    )


def delete_member(tx: Tx, room_id: str, user_id: str) -> None:
    """A membership ends, and with it the member's mentions in the room."""
    tx.execute("DELETE FROM room_members WHERE room_id = %s AND user_id = %s", (room_id, user_id))
    forget_member(tx, room_id, user_id)
    tx.execute("UPDATE rooms SET member_count = member_count - 1 WHERE id = %s", (room_id,))


def set_role(tx: Tx, room_id: str, user_id: str, role: str) -> None:
    tx.execute(
        "UPDATE room_members SET role = %s WHERE room_id = %s AND user_id = %s",
        (role, room_id, user_id),
    )


def set_muted_until(tx: Tx, room_id: str, user_id: str, muted_until: int | None) -> None:
    """A member's timed mute by the room's admins; None unmutes."""
    tx.execute(
        "UPDATE room_members SET muted_until = %s WHERE room_id = %s AND user_id = %s",
        (muted_until, room_id, user_id),
    )


def count_role(tx: Tx, room_id: str, role: str) -> int:
    return tx.scalar(
        "SELECT COUNT(*) FROM room_members WHERE room_id = %s AND role = %s", (room_id, role)
    )


def next_seq(tx: Tx, room_id: str, now: int) -> int:
    """Take the room's next event seq (see :func:`take_seqs`)."""
    return take_seqs(tx, room_id, 1, now)


def take_seqs(tx: Tx, room_id: str, count: int, now: int) -> int:
    """Take the room's next ``count`` event seqs; answers the last of them. The UPDATE locks
    the room row until commit, so seqs of one room are assigned one transaction at a time
    and a rollback leaves no gap."""
    changed = tx.execute(
        "UPDATE rooms SET last_seq = last_seq + %s, updated_at = %s WHERE id = %s"
        " AND deleted_at IS NULL",
        (count, now, room_id),
    )
    if changed != 1:
        raise LookupError(room_id)
    return tx.scalar("SELECT last_seq FROM rooms WHERE id = %s", (room_id,))


def lock_live_rooms(tx: Tx, room_ids: list[str]) -> dict[str, int]:
    """The last seq of each room that is not deleted, the rows locked until commit (in id
    order, so that two transactions locking several rooms cannot deadlock)."""
    result: dict[str, int] = tx.fetch(locked_live_rooms(tx.dialect, room_ids))[0]
    return result


def locked_live_rooms(dialect: Dialect, room_ids: list[str]) -> Query[dict[str, int]]:
    """:func:`lock_live_rooms` as a query, to send with others (``Tx.fetch``)."""
    marks, params = in_list(sorted(room_ids))
    return Query(
        f"SELECT id, last_seq FROM rooms WHERE id IN ({marks}) AND deleted_at IS NULL"
        " ORDER BY id" + dialect.for_update,
        params,
        lambda rows: {row["id"]: row["last_seq"] for row in rows},
    )


def advance_rooms(tx: Tx, last_seqs: dict[str, int], now: int) -> None:
    """Rooms whose last event is a new message: their seq, last message and activity."""
    cases = " ".join(["WHEN %s THEN %s"] * len(last_seqs))
    pairs = tuple(value for pair in last_seqs.items() for value in pair)
    marks, room_ids = in_list(list(last_seqs))
    tx.execute_later(
        f"UPDATE rooms SET last_seq = CASE id {cases} END,"
        f" last_message_seq = CASE id {cases} END, last_activity_at = %s, updated_at = %s"
        f" WHERE id IN ({marks})",
        (*pairs, *pairs, now, now, *room_ids),
    )


def members_among(tx: Tx, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these (room_id, user_id) pairs are memberships."""
    return set(tx.fetch(memberships_among(pairs))[0])


def memberships_among(
    pairs: set[tuple[str, str]],
) -> Query[dict[tuple[str, str], int | None]]:
    """Which of these (room_id, user_id) pairs are memberships, each with its timed mute
    (``muted_until``), as a query to send with others (``Tx.fetch``)."""
    condition, params = pairs_match("room_id", "user_id", pairs)
    return Query(
        f"SELECT room_id, user_id, muted_until FROM room_members WHERE {condition}",
        params,
        lambda rows: {(row["room_id"], row["user_id"]): row["muted_until"] for row in rows},
    )


@dataclass(frozen=True, slots=True)
class Standing:
    """A member's role in a room, with the room's kind and size: what a room mention is
    judged by."""

    role: str
    room_kind: str
    member_count: int


def standings_among(pairs: set[tuple[str, str]]) -> Query[dict[tuple[str, str], Standing]]:
    """The standing of each of these (room_id, user_id) memberships, as a query."""
    condition, params = pairs_match("m.room_id", "m.user_id", pairs)
    return Query(
        "SELECT m.room_id, m.user_id, m.role, r.kind, r.member_count"
        f" FROM room_members m JOIN rooms r ON r.id = m.room_id WHERE {condition}",
        params,
        lambda rows: {
            (row["room_id"], row["user_id"]): Standing(
                row["role"], row["kind"], row["member_count"]
            )
            for row in rows
        },
    )


def sharing_a_room(tx: Tx, user_id: str, others: set[str]) -> set[str]:
    """Which of ``others`` are members of a live room with the user."""
    if not others:
        return set()
    marks, params = in_list(others)
    rows = tx.all(
        "SELECT DISTINCT other.user_id FROM room_members mine"
        " JOIN rooms r ON r.id = mine.room_id AND r.deleted_at IS NULL"
        " JOIN room_members other ON other.room_id = mine.room_id"
        f" WHERE mine.user_id = %s AND other.user_id IN ({marks})",
        (user_id, *params),
    )
    return {row["user_id"] for row in rows}


def update_room(tx: Tx, room_id: str, changes: dict[str, Any], now: int) -> None:
    assignments = ", ".join(f"{name} = %s" for name in changes)
    tx.execute(
        f"UPDATE rooms SET {assignments}, updated_at = %s WHERE id = %s",
        (*changes.values(), now, room_id),
    )


def mark_deleted(tx: Tx, room_id: str, now: int) -> None:
    """Soft-delete a room. Its members stay recorded, so that they can still read its event
    log up to ``room.deleted``; every other path treats the room as gone."""
    tx.execute("UPDATE rooms SET deleted_at = %s, direct_key = NULL WHERE id = %s", (now, room_id))


_MEMBER_COLUMNS = "m.role, m.joined_at, m.last_read_seq, m.muted_until, " + user_columns("u", "u_")


def _member(row: Row) -> Member:
    return Member(
        user_from_row(row, "u_"),
        row["role"],
        row["joined_at"],
        row["last_read_seq"],
        row["muted_until"],
    )


def list_members(tx: Tx, room_id: str) -> list[Member]:
    rows = tx.all(
        f"SELECT {_MEMBER_COLUMNS} FROM room_members m"
        " JOIN users u ON u.id = m.user_id WHERE m.room_id = %s ORDER BY m.joined_at, u.id",
        (room_id,),
    )
    return [_member(row) for row in rows]


def find_member(tx: Tx, room_id: str, user_id: str) -> Member | None:
    row = tx.one(
        f"SELECT {_MEMBER_COLUMNS} FROM room_members m"
        " JOIN users u ON u.id = m.user_id WHERE m.room_id = %s AND m.user_id = %s",
        (room_id, user_id),
    )
    return None if row is None else _member(row)


@dataclass(frozen=True, slots=True)
class MemberRoom:
    """A room of a member, with their role, and where they stand in it (``state``)."""

    room: Room
    my_role: str
    state: ReadState


def member_rooms(
    tx: Tx,
    user_id: str,
    limit: int,
    after: tuple[int, str] | None = None,
    room_id: str | None = None,
) -> list[MemberRoom]:
    """The rooms of a member, most recent activity first, with their role, read marker,
    counts and settings, in one query. ``after`` is the (last_activity_at, id) of the
    previous page."""
    where = ["m.user_id = %s", "r.deleted_at IS NULL"]
    params: list[Any] = [user_id]
    if room_id is not None:
        where.append("r.id = %s")
        params.append(room_id)
    if after is not None:
        where.append("(r.last_activity_at < %s OR (r.last_activity_at = %s AND r.id < %s))")
        params.extend([after[0], after[0], after[1]])
    params.append(limit)
    rows = tx.all(
        f"SELECT {ROOM_COLUMNS}, m.role AS my_role, {_OWN_COLUMNS}"
        " FROM room_members m JOIN rooms r ON r.id = m.room_id"
        f" WHERE {' AND '.join(where)}"
        " ORDER BY r.last_activity_at DESC, r.id DESC LIMIT %s",
        params,
    )
    found = []
    for row in rows:
        room = room_from_row(row)
        found.append(MemberRoom(room, row["my_role"], _read_state(row, room.last_seq)))
    return found


def peers(tx: Tx, room_ids: list[str], user_id: str) -> dict[str, User]:
    """For direct rooms: the other user of each, by room id (a member or not: the room stays
    theirs even after one of them left it)."""
    if not room_ids:
        return {}
    marks, params = in_list(room_ids)
    keys = tx.all(f"SELECT id, direct_key FROM rooms WHERE id IN ({marks})", params)
    peer_of = {}
    for row in keys:
        if row["direct_key"]:
            first, second = row["direct_key"].split(":")
            peer_of[row["id"]] = second if first == user_id else first
    if not peer_of:
        return {}
    marks, params = in_list(set(peer_of.values()))
    rows = tx.all(f"SELECT {USER_COLUMNS} FROM users WHERE id IN ({marks})", params)
    found = {row["id"]: user_from_row(row) for row in rows}
    return {room_id: found[peer] for room_id, peer in peer_of.items() if peer in found}


def read_state(tx: Tx, room_id: str, user_id: str) -> ReadState | None:
    """Where a member stands in a live room: what their summary of it shows."""
    return read_states(tx, user_id, room_id).get(room_id)


def notifications_of(tx: Tx, room_id: str, user_id: str) -> NotificationSettings | None:
    """A member's notification settings of a room, without their counts."""
    row = tx.one(
        "SELECT notify_level, notify_room_mentions, notify_muted_until FROM room_members"
        " WHERE room_id = %s AND user_id = %s",
        (room_id, user_id),
    )
    return None if row is None else _settings(row)


def set_notifications(tx: Tx, room_id: str, user_id: str, settings: NotificationSettings) -> None:
    tx.execute(
        "UPDATE room_members SET notify_level = %s, notify_room_mentions = %s,"
        " notify_muted_until = %s WHERE room_id = %s AND user_id = %s",
        (settings.level, int(settings.room_mentions), settings.muted_until, room_id, user_id),
    )


def advance_read_marker(tx: Tx, room_id: str, user_id: str, seq: int) -> bool:
    """Move the read marker forward only; False when it was already at or past ``seq``."""
    return (
        tx.execute(
            "UPDATE room_members SET last_read_seq = %s"
            " WHERE room_id = %s AND user_id = %s AND last_read_seq < %s",
            (seq, room_id, user_id, seq),
        )
        == 1
    )


def read_states(tx: Tx, user_id: str, room_id: str | None = None) -> dict[str, ReadState]:
    """Every live room of a user (or the one given) with its last seq and the user's counts,
    read marker and settings, read together: what a socket starts following from."""
    where = "m.user_id = %s AND r.deleted_at IS NULL"
    params: tuple[str, ...] = (user_id,)
    if room_id is not None:
        where += " AND m.room_id = %s"
        params = (user_id, room_id)
    rows = tx.all(
        f"SELECT r.id, r.last_seq, {_OWN_COLUMNS}"
        f" FROM room_members m JOIN rooms r ON r.id = m.room_id WHERE {where}",
        params,
    )
    return {row["id"]: _read_state(row, row["last_seq"]) for row in rows}


def is_avatar_of_members_room(tx: Tx, media_id: str, user_id: str) -> bool:
    """Whether the media is the avatar of a live room the user is a member of (read through
    the user's memberships: rooms have no index by avatar)."""
    return (
        tx.scalar(
            "SELECT 1 FROM room_members m JOIN rooms r ON r.id = m.room_id"
            " WHERE m.user_id = %s AND r.avatar_media_id = %s AND r.deleted_at IS NULL LIMIT 1",
            (user_id, media_id),
        )
        is not None
    )


def room_ids_of(tx: Tx, user_id: str) -> list[str]:
    """The live rooms a user is a member of."""
    rows = tx.all(
        "SELECT m.room_id FROM room_members m JOIN rooms r ON r.id = m.room_id"
        " WHERE m.user_id = %s AND r.deleted_at IS NULL",
        (user_id,),
    )
    return [row["room_id"] for row in rows]


def existing_user_ids(tx: Tx, user_ids: list[str]) -> set[str]:
    if not user_ids:
        return set()
    marks, params = in_list(user_ids)
    rows = tx.all(f"SELECT id FROM users WHERE id IN ({marks}) AND disabled = 0", params)
    return {row["id"] for row in rows}
