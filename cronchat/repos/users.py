"""SQL of users."""

from __future__ import annotations

from typing import Any

from cronchat.db import Tx, in_list
from cronchat.models import User
from cronchat.repos.rows import USER_COLUMNS, user_from_row


def insert_user(
    tx: Tx,
    user_id: str,
    username: str,
    display_name: str,
    password_hash: str,
    now: int,
    is_admin: bool = False,
) -> None:
    tx.execute(
        "INSERT INTO users (id, username, username_key, display_name, display_name_key, bio,"
        " password_hash, is_admin, disabled, created_at, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, '', %s, %s, 0, %s, %s)",
        (
            user_id,
            username,
            username.lower(),
            display_name,
            display_name.lower(),
            password_hash,
            int(is_admin),
            now,
            now,
        ),
    )


def find_user(tx: Tx, user_id: str, lock: bool = False) -> User | None:
    """The user; ``lock`` holds the row until commit."""
    row = tx.one(
        f"SELECT {USER_COLUMNS} FROM users WHERE id = %s" + (tx.dialect.for_update if lock else ""),
        (user_id,),
    )
    return None if row is None else user_from_row(row)


def find_users(tx: Tx, user_ids: list[str]) -> dict[str, User]:
    """Those of these users that exist, by id, in one query."""
    if not user_ids:
        return {}
    marks, params = in_list(user_ids)
    rows = tx.all(f"SELECT {USER_COLUMNS} FROM users WHERE id IN ({marks})", params)
    return {row["id"]: user_from_row(row) for row in rows}


def find_credentials(tx: Tx, username: str) -> tuple[User, str] | None:
    """The user of a username (any case) and their password hash."""
    row = tx.one(
        f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE username_key = %s",
        (username.lower(),),
    )
    return None if row is None else (user_from_row(row), row["password_hash"])


def password_hash_of(tx: Tx, user_id: str) -> str | None:
    return tx.scalar("SELECT password_hash FROM users WHERE id = %s", (user_id,))


def update_profile(tx: Tx, user_id: str, changes: dict[str, Any], now: int) -> None:
    """Set the given profile fields (display_name, bio, avatar_media_id)."""
    columns = dict(changes)
    if "display_name" in columns:
        columns["display_name_key"] = columns["display_name"].lower()
    assignments = ", ".join(f"{name} = %s" for name in columns)
    tx.execute(
        f"UPDATE users SET {assignments}, updated_at = %s WHERE id = %s",  # noqa: S608 (names are ours)
        (*columns.values(), now, user_id),
    )


def set_password_hash(tx: Tx, user_id: str, password_hash: str, now: int) -> None:
    tx.execute(
        "UPDATE users SET password_hash = %s, updated_at = %s WHERE id = %s",
        (password_hash, now, user_id),
    )


def set_flag(tx: Tx, user_id: str, flag: str, value: bool, now: int) -> int:
    if flag not in ("disabled", "is_admin"):
        raise ValueError(flag)
    return tx.execute(
        f"UPDATE users SET {flag} = %s, updated_at = %s WHERE id = %s",  # noqa: S608 (flag checked)
        (int(value), now, user_id),
    )


def search_users(tx: Tx, prefix: str, limit: int) -> list[User]:
    """Users whose username or display name starts with ``prefix`` (any case)."""
    pattern = _like_prefix(prefix.lower())
    rows = tx.all(
        f"SELECT {USER_COLUMNS} FROM users WHERE disabled = 0 AND"
        " (username_key LIKE %s ESCAPE '!' OR display_name_key LIKE %s ESCAPE '!')"
        " ORDER BY username_key LIMIT %s",
        (pattern, pattern, limit),
    )
    return [user_from_row(row) for row in rows]


def list_users(tx: Tx, limit: int, offset: int) -> list[User]:
    rows = tx.all(
        f"SELECT {USER_COLUMNS} FROM users ORDER BY username_key LIMIT %s OFFSET %s",
        (limit, offset),
    )
    return [user_from_row(row) for row in rows]


def _like_prefix(text: str) -> str:
    escaped = text.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return escaped + "%"


def set_last_seen(tx: Tx, user_ids: list[str], now: int) -> None:
    marks, params = in_list(user_ids)
    tx.execute(f"UPDATE users SET last_seen_at = %s WHERE id IN ({marks})", (now, *params))


DELETED_DISPLAY_NAME = "Deleted user"
# Never a hash argon2 accepts: no password verifies against a deleted account.
NO_PASSWORD = "!deleted"


def mark_deleted(tx: Tx, user_id: str, now: int) -> None:
    """The account becomes "Deleted user": no bio, no avatar, no password that verifies, no
    server role, disabled; its username stays taken (the row stays, with its unique key)."""
    tx.execute(
        "UPDATE users SET display_name = %s, display_name_key = %s, bio = '',"
        " avatar_media_id = NULL, password_hash = %s, is_admin = 0, disabled = 1,"
        " deleted_at = %s, updated_at = %s WHERE id = %s",
        (
            DELETED_DISPLAY_NAME,
            DELETED_DISPLAY_NAME.lower(),
            NO_PASSWORD,
            now,
            now,
            user_id,
        ),
    )


def forget_relations(tx: Tx, user_id: str) -> list[str]:
    """What a deleted account leaves behind goes, in the caller's transaction: its blocks
    (both ways) and the mentions of it; the reports it filed stay, without their reporter.
    Answers the users who blocked it (their blocks changed)."""
    blockers = [
        row["user_id"]
        for row in tx.all("SELECT user_id FROM blocks WHERE blocked_id = %s", (user_id,))
    ]
    tx.execute("DELETE FROM blocks WHERE user_id = %s OR blocked_id = %s", (user_id, user_id))
    tx.execute("DELETE FROM mentions WHERE user_id = %s", (user_id,))
    tx.execute("UPDATE reports SET reporter_id = NULL WHERE reporter_id = %s", (user_id,))
    return blockers


def live_messages_sent(tx: Tx, user_id: str) -> list[tuple[str, str]]:
    """``(room_id, message_id)`` of every message the user sent that is not deleted, in a
    room that is not deleted, oldest first."""
    rows = tx.all(
        "SELECT m.room_id, m.id FROM messages m JOIN rooms r ON r.id = m.room_id"
        " WHERE m.sender_id = %s AND m.deleted_at IS NULL AND r.deleted_at IS NULL"
        " ORDER BY m.id",
        (user_id,),
    )
    return [(row["room_id"], row["id"]) for row in rows]
