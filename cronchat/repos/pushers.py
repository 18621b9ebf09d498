"""SQL of pushers: the devices a user is pushed to when no socket of theirs is open."""

from __future__ import annotations

from cronchat.db import Row, Tx, in_list
from cronchat.models import Pusher

_COLUMNS = "id, user_id, session_id, kind, url, p256dh, auth, pushkey, app_id, created_at"


def _pusher(row: Row) -> Pusher:
    return Pusher(**row)


def find_by_device(tx: Tx, device_key: str) -> Pusher | None:
    row = tx.one(f"SELECT {_COLUMNS} FROM pushers WHERE device_key = %s", (device_key,))
    return None if row is None else _pusher(row)


def insert(tx: Tx, pusher: Pusher, device_key: str, now: int) -> None:
    tx.execute(
        "INSERT INTO pushers (id, user_id, session_id, kind, device_key, url, p256dh, auth,"
        " pushkey, app_id, created_at, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            pusher.id,
            pusher.user_id,
            pusher.session_id,
            pusher.kind,
            device_key,
            pusher.url,
            pusher.p256dh,
            pusher.auth,
            pusher.pushkey,
            pusher.app_id,
            pusher.created_at,
            now,
        ),
    )


def replace(tx: Tx, pusher: Pusher, device_key: str, now: int) -> None:
    """The device registered again: from now on it is this user's, this session's, with
    these keys."""
    tx.execute(
        "UPDATE pushers SET user_id = %s, session_id = %s, url = %s, p256dh = %s, auth = %s,"
        " pushkey = %s, app_id = %s, updated_at = %s WHERE device_key = %s",
        (
            pusher.user_id,
            pusher.session_id,
            pusher.url,
            pusher.p256dh,
            pusher.auth,
            pusher.pushkey,
            pusher.app_id,
            now,
            device_key,
        ),
    )


def of_user(tx: Tx, user_id: str) -> list[Pusher]:
    rows = tx.all(
        f"SELECT {_COLUMNS} FROM pushers WHERE user_id = %s ORDER BY created_at, id", (user_id,)
    )
    return [_pusher(row) for row in rows]


def count_of_user(tx: Tx, user_id: str) -> int:
    return int(tx.scalar("SELECT COUNT(*) FROM pushers WHERE user_id = %s", (user_id,)))


def delete(tx: Tx, user_id: str, pusher_id: str) -> bool:
    """Remove one of the user's pushers; False when they have none of that id."""
    return (
        tx.execute("DELETE FROM pushers WHERE id = %s AND user_id = %s", (pusher_id, user_id)) == 1
    )


def delete_of_sessions(tx: Tx, session_ids: list[str]) -> None:
    """Sessions ended: the devices they registered are pushed to no more."""
    if session_ids:
        marks, params = in_list(session_ids)
        tx.execute(f"DELETE FROM pushers WHERE session_id IN ({marks})", params)


def delete_of_user(tx: Tx, user_id: str) -> None:
    tx.execute("DELETE FROM pushers WHERE user_id = %s", (user_id,))
