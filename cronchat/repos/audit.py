"""SQL of the audit log: append-only, each entry inserted in the transaction of the act it
records (so the log holds exactly the acts that happened), never updated or deleted."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cronchat.db import Tx
from cronchat.ids import new_id
from cronchat.models import AuditEntry

# The acts recorded, as API.md lists them.
ACTIONS = (
    "member.role_changed",
    "member.removed",
    "member.banned",
    "member.unbanned",
    "member.muted",
    "message.deleted",
    "report.resolved",
    "report.dismissed",
    "room.deleted",
    "user.disabled",
    "user.enabled",
    "user.promoted",
    "user.password_set",
    "user.deleted",
)


def record(
    tx: Tx,
    action: str,
    actor_id: str | None,
    now: int,
    room_id: str | None = None,
    target_user_id: str | None = None,
    message_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Record an act in the caller's transaction. ``actor_id`` None is the operator (the
    CLI), whose entries carry ``data.via`` ``cli``."""
    assert action in ACTIONS, action
    shaped = dict(data or {})
    if actor_id is None:
        shaped["via"] = "cli"
    tx.execute(
        "INSERT INTO audit_log (id, at, actor_id, action, room_id, target_user_id, message_id,"
        " data) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (new_id(), now, actor_id, action, room_id, target_user_id, message_id, json.dumps(shaped)),
    )


@dataclass(frozen=True, slots=True)
class AuditFilter:
    room_id: str | None = None
    actor_id: str | None = None
    target_user_id: str | None = None
    action: str | None = None


def entries(
    tx: Tx, limit: int, where: AuditFilter, after: tuple[int, str] | None = None
) -> list[AuditEntry]:
    """Entries matching the filter, newest first; ``after`` is the (at, id) of the previous
    page's last entry."""
    conditions, params = [], []
    for column in ("room_id", "actor_id", "target_user_id", "action"):
        value = getattr(where, column)
        if value is not None:
            conditions.append(f"{column} = %s")
            params.append(value)
    if after is not None:
        conditions.append("(at < %s OR (at = %s AND id < %s))")
        params.extend([after[0], after[0], after[1]])
    clause = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = tx.all(
        "SELECT id, at, actor_id, action, room_id, target_user_id, message_id, data"
        f" FROM audit_log{clause} ORDER BY at DESC, id DESC LIMIT %s",
        (*params, limit),
    )
    return [AuditEntry(**{**row, "data": json.loads(row["data"])}) for row in rows]
