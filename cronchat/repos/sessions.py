"""SQL of sessions and their refresh tokens."""

from __future__ import annotations

from dataclasses import dataclass

from cronchat.db import Tx, in_list
from cronchat.models import User
from cronchat.repos import pushers
from cronchat.repos.rows import user_columns, user_from_row


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    session_id: str
    user: User
    expires_at: int
    spent_at: int | None
    session_revoked_at: int | None


def insert_session(tx: Tx, session_id: str, user_id: str, user_agent: str, now: int) -> None:
    tx.execute(
        "INSERT INTO sessions (id, user_id, created_at, last_used_at, user_agent)"
        " VALUES (%s, %s, %s, %s, %s)",
        (session_id, user_id, now, now, user_agent[:255]),
    )


def insert_refresh_token(
    tx: Tx, token_hash: str, session_id: str, now: int, expires_at: int
) -> None:
    tx.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at)"
        " VALUES (%s, %s, %s, %s)",
        (token_hash, session_id, now, expires_at),
    )


def find_refresh_token(tx: Tx, token_hash: str) -> RefreshRecord | None:
    row = tx.one(
        f"SELECT t.session_id, t.expires_at, t.spent_at, s.revoked_at, {user_columns('u', 'u_')}"
        " FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id"
        " JOIN users u ON u.id = s.user_id WHERE t.token_hash = %s",
        (token_hash,),
    )
    if row is None:
        return None
    return RefreshRecord(
        session_id=row["session_id"],
        user=user_from_row(row, "u_"),
        expires_at=row["expires_at"],
        spent_at=row["spent_at"],
        session_revoked_at=row["revoked_at"],
    )


def spend_refresh_token(tx: Tx, token_hash: str, now: int) -> bool:
    """Mark the token spent; False when someone spent it first."""
    changed = tx.execute(
        "UPDATE refresh_tokens SET spent_at = %s WHERE token_hash = %s AND spent_at IS NULL",
        (now, token_hash),
    )
    return changed == 1


def touch_session(tx: Tx, session_id: str, now: int) -> None:
    tx.execute("UPDATE sessions SET last_used_at = %s WHERE id = %s", (now, session_id))


def find_active_session_user(tx: Tx, session_id: str, user_id: str) -> User | None:
    """The user of a session that is neither revoked nor of a disabled user."""
    row = tx.one(
        f"SELECT {user_columns('u', '')} FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.id = %s AND s.user_id = %s AND s.revoked_at IS NULL AND u.disabled = 0",
        (session_id, user_id),
    )
    return None if row is None else user_from_row(row)


def revoke_session(tx: Tx, session_id: str, now: int) -> None:
    """End a session, and with it the pushers it registered."""
    tx.execute(
        "UPDATE sessions SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
        (now, session_id),
    )
    pushers.delete_of_sessions(tx, [session_id])


def active_session_ids(tx: Tx, user_id: str) -> list[str]:
    rows = tx.all("SELECT id FROM sessions WHERE user_id = %s AND revoked_at IS NULL", (user_id,))
    return [row["id"] for row in rows]


def revoke_user_sessions(tx: Tx, user_id: str, now: int, keep: str | None = None) -> list[str]:
    """Revoke every live session of a user except ``keep``, and the pushers they
    registered; answers the revoked ids."""
    revoked = [sid for sid in active_session_ids(tx, user_id) if sid != keep]
    if revoked:
        marks, params = in_list(revoked)
        tx.execute(
            f"UPDATE sessions SET revoked_at = %s WHERE id IN ({marks})",  # noqa: S608
            (now, *params),
        )
        pushers.delete_of_sessions(tx, revoked)
    return revoked
