"""SQL of the ``notices`` table: notices of processes that serve no sockets (the CLI), kept
for a few minutes for the servers that poll it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cronchat.db import Tx


@dataclass(frozen=True, slots=True)
class StoredNotice:
    id: int
    notice: dict[str, Any]


def insert_notice(tx: Tx, notice: dict[str, Any], now: int) -> None:
    tx.execute(
        "INSERT INTO notices (created_at, notice) VALUES (%s, %s)",
        (now, json.dumps(notice, ensure_ascii=False, separators=(",", ":"))),
    )


def newest_notice_id(tx: Tx) -> int:
    """The highest id recorded, 0 when there is none."""
    return int(tx.scalar("SELECT MAX(id) FROM notices") or 0)


def notices_after(tx: Tx, after_id: int, limit: int) -> list[StoredNotice]:
    """Notices with an id above ``after_id``, by id: one range of the primary key."""
    rows = tx.all(
        "SELECT id, notice FROM notices WHERE id > %s ORDER BY id LIMIT %s", (after_id, limit)
    )
    return [StoredNotice(int(row["id"]), json.loads(row["notice"])) for row in rows]


def prune_notices(tx: Tx, created_before: int) -> int:
    """Remove the notices older than ``created_before``, except the newest row, so that ids
    never restart lower; answers how many went. The range deleted holds old rows only, so
    the delete never waits for another process's insert still in flight."""
    last_old = tx.scalar("SELECT MAX(id) FROM notices WHERE created_at < %s", (created_before,))
    if last_old is None:
        return 0
    return tx.execute(
        "DELETE FROM notices WHERE id <= %s AND id < %s", (last_old, newest_notice_id(tx))
    )
