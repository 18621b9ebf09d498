"""SQL of room events: the gap-free, per-room log that clients catch up from."""

from __future__ import annotations

import json
from typing import Any

from cronchat.db import Tx, in_list
from cronchat.models import Event
from cronchat.repos.rooms import next_seq

# The events whose ``data`` is a message object.
MESSAGE_EVENTS = ("message.created", "message.edited", "message.deleted")


def insert_events(tx: Tx, new: list[Event]) -> list[Event]:
    """Record events in one statement, in the caller's transaction. A message event also
    names its message, so that redaction finds every event of a message by index. Sent
    with the transaction's next statement or its commit."""
    tx.executemany_later(
        "INSERT INTO room_events (room_id, seq, type, actor_id, at, data, message_id)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        [
            (
                event.room_id,
                event.seq,
                event.type,
                event.actor_id,
                event.at,
                _dumps(event.data),
                event.data["id"] if event.type in MESSAGE_EVENTS else None,
            )
            for event in new
        ],
    )
    return new


def insert_event(
    tx: Tx, room_id: str, seq: int, type_: str, actor_id: str, at: int, data: dict[str, Any]
) -> Event:
    return insert_events(tx, [Event(room_id, seq, type_, actor_id, at, data)])[0]


def events_after(tx: Tx, room_id: str, after_seq: int, limit: int) -> tuple[list[Event], bool]:
    rows = tx.all(
        "SELECT room_id, seq, type, actor_id, at, data FROM room_events"
        " WHERE room_id = %s AND seq > %s ORDER BY seq LIMIT %s",
        (room_id, after_seq, limit + 1),
    )
    return [_event(row) for row in rows[:limit]], len(rows) > limit


def append(
    tx: Tx, room_id: str, type_: str, actor_id: str, data: dict[str, Any], now: int
) -> Event:
    """Record a change of the room as its next event, in the caller's transaction."""
    return insert_event(tx, room_id, next_seq(tx, room_id, now), type_, actor_id, now, data)


def events_between(tx: Tx, room_id: str, after_seq: int, up_to_seq: int) -> list[Event]:
    rows = tx.all(
        "SELECT room_id, seq, type, actor_id, at, data FROM room_events"
        " WHERE room_id = %s AND seq > %s AND seq <= %s ORDER BY seq",
        (room_id, after_seq, up_to_seq),
    )
    return [_event(row) for row in rows]


def events_of_messages(tx: Tx, message_ids: list[str]) -> list[Event]:
    """Every stored event of these messages, in seq order per room."""
    if not message_ids:
        return []
    marks, params = in_list(message_ids)
    rows = tx.all(
        "SELECT room_id, seq, type, actor_id, at, data FROM room_events"
        f" WHERE message_id IN ({marks}) ORDER BY room_id, seq",
        params,
    )
    return [_event(row) for row in rows]


def readable_heads(tx: Tx, user_id: str, room_ids: list[str]) -> dict[str, int]:
    """The last seq of each of these rooms whose log the user may read: the rooms they are a
    member of, deleted ones included (their members catch up to ``room.deleted``). Seqs are
    gap-free, so a room's last seq says how many events a client is behind."""
    if not room_ids:
        return {}
    marks, params = in_list(room_ids)
    rows = tx.all(
        "SELECT r.id, r.last_seq FROM room_members m JOIN rooms r ON r.id = m.room_id"
        f" WHERE m.user_id = %s AND m.room_id IN ({marks})",
        (user_id, *params),
    )
    return {row["id"]: row["last_seq"] for row in rows}


def events_in_ranges(tx: Tx, ranges: dict[str, tuple[int, int]]) -> list[Event]:
    """The events of several rooms, each room's in (after_seq, up_to_seq], in one statement
    (each range a slice of the primary key), ordered by room and seq."""
    if not ranges:
        return []
    condition = " OR ".join(["(room_id = %s AND seq > %s AND seq <= %s)"] * len(ranges))
    params = tuple(
        value for room_id, (after, up_to) in ranges.items() for value in (room_id, after, up_to)
    )
    rows = tx.all(
        "SELECT room_id, seq, type, actor_id, at, data FROM room_events"
        f" WHERE {condition} ORDER BY room_id, seq",
        params,
    )
    return [_event(row) for row in rows]


def replace_data(tx: Tx, changed: list[Event]) -> None:
    """Store new ``data`` for events already recorded: redaction rewrites history."""
    if changed:
        tx.executemany(
            "UPDATE room_events SET data = %s WHERE room_id = %s AND seq = %s",
            [(_dumps(event.data), event.room_id, event.seq) for event in changed],
        )


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _event(row: dict[str, Any]) -> Event:
    return Event(
        row["room_id"], row["seq"], row["type"], row["actor_id"], row["at"], json.loads(row["data"])
    )
