"""SQL of reports: filed with a frozen snapshot of the message, listed newest first, handled
once. Also who hears of them (the room's admins and owners, the server admins) and which
reported image a moderator may still load."""

from __future__ import annotations

import json
from dataclasses import dataclass

from cronchat.db import Row, Tx
from cronchat.models import Report, ReportSnapshot

_COLUMNS = (
    "id, room_id, message_id, reporter_id, reason, comment, status, snapshot, created_at,"
    " handled_by, handled_at, note"
)


def _snapshot_column(snapshot: ReportSnapshot) -> str:
    return json.dumps(
        {
            "sender_id": snapshot.sender_id,
            "kind": snapshot.kind,
            "text": snapshot.text,
            "media_id": snapshot.media_id,
            "created_at": snapshot.created_at,
            "edited_at": snapshot.edited_at,
        }
    )


def _report(row: Row) -> Report:
    return Report(
        id=row["id"],
        room_id=row["room_id"],
        message_id=row["message_id"],
        reporter_id=row["reporter_id"],
        reason=row["reason"],
        comment=row["comment"] or None,
        status=row["status"],
        snapshot=ReportSnapshot(**json.loads(row["snapshot"])),
        created_at=row["created_at"],
        handled_by=row["handled_by"],
        handled_at=row["handled_at"],
        note=row["note"],
    )


def message_snapshot(tx: Tx, message_id: str) -> ReportSnapshot | None:
    """The message as a report freezes it (None when there is no such message)."""
    row = tx.one(
        "SELECT sender_id, kind, text, media_id, created_at, edited_at FROM messages WHERE id = %s",
        (message_id,),
    )
    return None if row is None else ReportSnapshot(**row)


def insert_report(tx: Tx, report: Report) -> None:
    tx.execute(
        "INSERT INTO reports (id, room_id, message_id, reporter_id, reason, comment, status,"
        " snapshot, snapshot_media_id, created_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            report.id,
            report.room_id,
            report.message_id,
            report.reporter_id,
            report.reason,
            report.comment or "",
            report.status,
            _snapshot_column(report.snapshot),
            report.snapshot.media_id,
            report.created_at,
        ),
    )


def find_report(tx: Tx, report_id: str, lock: bool = False) -> Report | None:
    """The report; ``lock`` holds its row until commit (against a second handling)."""
    row = tx.one(
        f"SELECT {_COLUMNS} FROM reports WHERE id = %s" + (tx.dialect.for_update if lock else ""),
        (report_id,),
    )
    return None if row is None else _report(row)


def find_by_reporter(tx: Tx, message_id: str, reporter_id: str) -> Report | None:
    """The report this user filed about this message, if any (one per user and message)."""
    row = tx.one(
        f"SELECT {_COLUMNS} FROM reports WHERE message_id = %s AND reporter_id = %s",
        (message_id, reporter_id),
    )
    return None if row is None else _report(row)


@dataclass(frozen=True, slots=True)
class ReportFilter:
    room_id: str | None = None
    status: str | None = None


def list_reports(
    tx: Tx, limit: int, where: ReportFilter, after: tuple[int, str] | None = None
) -> list[Report]:
    """Reports matching the filter, newest first; ``after`` is the (created_at, id) of the
    previous page's last report."""
    conditions, params = [], []
    for column in ("room_id", "status"):
        value = getattr(where, column)
        if value is not None:
            conditions.append(f"{column} = %s")
            params.append(value)
    if after is not None:
        conditions.append("(created_at < %s OR (created_at = %s AND id < %s))")
        params.extend([after[0], after[0], after[1]])
    clause = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = tx.all(
        f"SELECT {_COLUMNS} FROM reports{clause} ORDER BY created_at DESC, id DESC LIMIT %s",
        (*params, limit),
    )
    return [_report(row) for row in rows]


def set_handled(
    tx: Tx, report: Report, status: str, handled_by: str | None, now: int, note: str | None
) -> None:
    tx.execute(
        "UPDATE reports SET status = %s, handled_by = %s, handled_at = %s, note = %s WHERE id = %s",
        (status, handled_by, now, note, report.id),
    )


def redact_snapshots(tx: Tx, message_id: str, report_id: str | None = None) -> None:
    """A deleted message's text and media leave the snapshots of its handled reports (of
    this one only, with ``report_id``): only an open report keeps them, for its moderators."""
    condition, params = "message_id = %s AND status <> 'open'", [message_id]
    if report_id is not None:
        condition, params = "id = %s", [report_id]
    rows = tx.all(f"SELECT id, snapshot FROM reports WHERE {condition}", params)
    changed = []
    for row in rows:
        snapshot = json.loads(row["snapshot"])
        if snapshot["text"] is not None or snapshot["media_id"] is not None:
            changed.append((json.dumps({**snapshot, "text": None, "media_id": None}), row["id"]))
    if changed:
        tx.executemany(
            "UPDATE reports SET snapshot = %s, snapshot_media_id = NULL WHERE id = %s", changed
        )


def is_reported_to(tx: Tx, media_id: str, user_id: str, is_server_admin: bool) -> bool:
    """Whether an open report's snapshot names this image and the user moderates it: a
    server admin any report, a room's admins and owners the reports of their room."""
    if is_server_admin:
        found = tx.scalar(
            "SELECT 1 FROM reports WHERE snapshot_media_id = %s AND status = 'open' LIMIT 1",
            (media_id,),
        )
    else:
        found = tx.scalar(
            "SELECT 1 FROM reports p JOIN room_members m ON m.room_id = p.room_id"
            " JOIN rooms r ON r.id = p.room_id"
            " WHERE p.snapshot_media_id = %s AND p.status = 'open' AND m.user_id = %s"
            " AND m.role IN ('owner', 'admin') AND r.deleted_at IS NULL LIMIT 1",
            (media_id, user_id),
        )
    return found is not None


def room_moderator_ids(tx: Tx, room_id: str) -> list[str]:
    """The admins and owners of a live room: who moderates its reports."""
    rows = tx.all(
        "SELECT m.user_id FROM room_members m JOIN rooms r ON r.id = m.room_id"
        " WHERE m.room_id = %s AND m.role IN ('owner', 'admin') AND r.deleted_at IS NULL",
        (room_id,),
    )
    return [row["user_id"] for row in rows]


def server_admin_ids(tx: Tx) -> list[str]:
    """The server admins who may act: not disabled, not deleted."""
    rows = tx.all("SELECT id FROM users WHERE is_admin = 1 AND disabled = 0 AND deleted_at IS NULL")
    return [row["id"] for row in rows]
