"""Reports of messages: filing one with a frozen snapshot of the message, the queues of a
room's admins and owners and of the server admins, and handling (with its audit entry).

A report never names its reporter to anyone but server admins (and the operator). Its
snapshot survives the message's edits and deletion; the image of a deleted message stays
loadable by the report's moderators while the report is open
(:meth:`cronchat.services.media.Media.viewable`), and follows the redaction rule once it is
handled: the snapshot loses the deleted text and image, whose files go once nothing refers
to them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from cronchat.cursors import Cursors
from cronchat.db import Database, Tx
from cronchat.errors import Conflict, Forbidden, Invalid, NotFound
from cronchat.ids import new_id
from cronchat.models import REPORT_REASONS, REPORT_STATUSES, MediaRecord, Report, User
from cronchat.realtime.notifier import Notifier
from cronchat.repos import audit, media, messages, reports
from cronchat.repos.reports import ReportFilter
from cronchat.services.access import (
    Operator,
    get_message_owner,
    require_member,
    require_server_admin,
)
from cronchat.services.media import Media
from cronchat.times import now_ms
from cronchat.validation import check_shown_text

log = logging.getLogger("cronchat.reports")

COMMENT_MAX_LENGTH = 1000
NOTE_MAX_LENGTH = 1000
QUEUE_LIMIT_MAX = 100
HANDLED_STATUSES = ("resolved", "dismissed")

# The ``report`` frame of a report, with or without its reporter (``views.report_frame``,
# given by the runtime: the JSON shapes belong to the edge).
ReportFrame = Callable[[Report, bool], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class FileReport:
    reason: str
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class HandleReport:
    status: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class RoomModerator:
    """An admin or owner of the room, handling its reports (checked in the transaction)."""

    user_id: str
    room_id: str


@dataclass(frozen=True, slots=True)
class ServerAdmin:
    """A user with ``is_admin``, handling any report."""

    user_id: str


Handler = RoomModerator | ServerAdmin | Operator


@dataclass(frozen=True, slots=True)
class _Moderated:
    """A report as committed, whom to tell (read in its transaction: the server admins, who
    see the reporter, and the room's admins and owners), and the media record handling
    released, whose files leave the store after commit."""

    report: Report
    server_admin_ids: list[str]
    room_moderator_ids: list[str]
    released_media: MediaRecord | None = None


class Reports:
    def __init__(
        self, db: Database, notify: Notifier, media: Media, cursors: Cursors, frame: ReportFrame
    ) -> None:
        self.db = db
        self.notify = notify
        self.media = media
        self.cursors = cursors
        self.frame = frame

    # -- filing --------------------------------------------------------------------------

    async def file(
        self, user: User, room_id: str, message_id: str, cmd: FileReport
    ) -> tuple[Report, bool]:
        """Report a message of a room the user is in; the same reporter again answers the
        first report (``created`` False) and tells no one."""
        if cmd.reason not in REPORT_REASONS:
            raise Invalid(f"reason must be one of {', '.join(REPORT_REASONS)}", field="reason")
        comment = check_remark("comment", cmd.comment, COMMENT_MAX_LENGTH)
        moderated, created = await self.db.run(
            self._file_tx, user.id, room_id, message_id, cmd.reason, comment
        )
        if created:
            log.info("report filed report_id=%s room_id=%s", moderated.report.id, room_id)
            await self._announce(moderated)
        return moderated.report, created

    @staticmethod
    def _file_tx(
        tx: Tx, user_id: str, room_id: str, message_id: str, reason: str, comment: str | None
    ) -> tuple[_Moderated, bool]:
        require_member(tx, room_id, user_id)
        # The message's row stays locked: a deletion meanwhile either committed before
        # (409 here) or waits, and then keeps the image for this report (media.release).
        owner = get_message_owner(tx, room_id, message_id)
        if owner.sender_id == user_id:
            raise Invalid("you cannot report your own message")
        first = reports.find_by_reporter(tx, message_id, user_id)
        if first is not None:
            return _Moderated(first, [], []), False
        if owner.deleted_at is not None:
            raise Conflict("the message is deleted")
        snapshot = reports.message_snapshot(tx, message_id)
        assert snapshot is not None  # locked above
        report = Report(
            id=new_id(),
            room_id=room_id,
            message_id=message_id,
            reporter_id=user_id,
            reason=reason,
            comment=comment,
            status="open",
            snapshot=snapshot,
            created_at=now_ms(),
            handled_by=None,
            handled_at=None,
            note=None,
        )
        reports.insert_report(tx, report)
        return _moderated_tx(tx, report), True

    # -- the queues ----------------------------------------------------------------------

    async def room_queue(
        self, user: User, room_id: str, status: str | None, cursor: str | None, limit: int
    ) -> tuple[list[Report], str | None]:
        """The reports of a room, newest first, for its admins and owners (members 403)."""
        where = ReportFilter(room_id, check_status(status))
        after = self._page_start(cursor, limit)
        found = await self.db.read(self._room_queue_tx, user.id, where, limit, after)
        return self._page(found, limit)

    @staticmethod
    def _room_queue_tx(
        tx: Tx, user_id: str, where: ReportFilter, limit: int, after: tuple[int, str] | None
    ) -> list[Report]:
        assert where.room_id is not None
        require_room_moderator(tx, where.room_id, user_id)
        return reports.list_reports(tx, limit + 1, where, after)

    async def admin_queue(
        self,
        user: User | None,
        status: str | None,
        room_id: str | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[Report], str | None]:
        """Every room's reports, newest first, for server admins (``user`` None: the
        operator)."""
        where = ReportFilter(room_id, check_status(status))
        after = self._page_start(cursor, limit)
        if user is not None:
            require_server_admin(user)
        found = await self.db.read(self._admin_queue_tx, where, limit, after)
        return self._page(found, limit)

    @staticmethod
    def _admin_queue_tx(
        tx: Tx, where: ReportFilter, limit: int, after: tuple[int, str] | None
    ) -> list[Report]:
        return reports.list_reports(tx, limit + 1, where, after)

    def _page_start(self, cursor: str | None, limit: int) -> tuple[int, str] | None:
        if not 1 <= limit <= QUEUE_LIMIT_MAX:
            raise Invalid(f"limit must be between 1 and {QUEUE_LIMIT_MAX}", field="limit")
        return self.cursors.decode(cursor) if cursor else None

    def _page(self, found: list[Report], limit: int) -> tuple[list[Report], str | None]:
        """The page of a read of ``limit + 1``, and the cursor of the next when there is one."""
        page = found[:limit]
        if len(found) > limit and page:
            return page, self.cursors.encode(page[-1].created_at, page[-1].id)
        return page, None

    # -- handling ------------------------------------------------------------------------

    async def handle_in_room(
        self, user: User, room_id: str, report_id: str, cmd: HandleReport
    ) -> Report:
        """A room's admin or owner resolves or dismisses a report of the room."""
        status, note = check_handling(cmd)
        return await self._handle(RoomModerator(user.id, room_id), report_id, status, note)

    async def handle_as_admin(self, user: User, report_id: str, cmd: HandleReport) -> Report:
        status, note = check_handling(cmd)
        require_server_admin(user)
        return await self._handle(ServerAdmin(user.id), report_id, status, note)

    async def handle_as_operator(self, report_id: str, cmd: HandleReport) -> Report:
        """The CLI's handling: recorded with no actor, ``data.via`` ``cli``."""
        status, note = check_handling(cmd)
        return await self._handle(Operator(), report_id, status, note)

    async def _handle(
        self, handler: Handler, report_id: str, status: str, note: str | None
    ) -> Report:
        moderated = await self.db.run(self._handle_tx, handler, report_id, status, note)
        log.info("report handled report_id=%s status=%s", report_id, status)
        await self._announce(moderated)
        if moderated.released_media is not None:
            await self.media.remove_files(moderated.released_media)
        return moderated.report

    @staticmethod
    def _handle_tx(
        tx: Tx, handler: Handler, report_id: str, status: str, note: str | None
    ) -> _Moderated:
        if isinstance(handler, RoomModerator):
            require_room_moderator(tx, handler.room_id, handler.user_id)
        report = reports.find_report(tx, report_id, lock=True)
        if report is None or (
            isinstance(handler, RoomModerator) and report.room_id != handler.room_id
        ):
            raise NotFound("no such report")
        if report.status != "open":
            raise Conflict(f"the report is {report.status} already")
        now = now_ms()
        handled_by = None if isinstance(handler, Operator) else handler.user_id
        reports.set_handled(tx, report, status, handled_by, now, note)
        handled = replace(report, status=status, handled_by=handled_by, handled_at=now, note=note)
        # Locked after the report, as a deletion locks it: whichever commits second sees
        # the other, so that a deleted message's image goes once its last open report does.
        owner = messages.message_owner(tx, report.room_id, report.message_id)
        released = None
        if owner is None or owner.deleted_at is not None:
            reports.redact_snapshots(tx, report.message_id, report.id)
            handled = replace(handled, snapshot=replace(report.snapshot, text=None, media_id=None))
            if report.snapshot.media_id is not None:
                released = media.release(tx, report.snapshot.media_id)
        audit.record(
            tx,
            f"report.{status}",
            handled_by,
            now,
            room_id=report.room_id,
            target_user_id=report.snapshot.sender_id,
            message_id=report.message_id,
            # Never the reporter: room admins read their room's audit log.
            data={"report_id": report.id, "reason": report.reason, "note": note},
        )
        return replace(_moderated_tx(tx, handled), released_media=released)

    # -- telling the moderators ----------------------------------------------------------

    async def _announce(self, moderated: _Moderated) -> None:
        """The ``report`` frame to the online moderators: with the reporter to server admins,
        without it to the room's admins and owners who are not server admins."""
        report = moderated.report
        admins = set(moderated.server_admin_ids)
        await self.notify.to_users(sorted(admins), self.frame(report, True))
        others = [user_id for user_id in moderated.room_moderator_ids if user_id not in admins]
        await self.notify.to_users(others, self.frame(report, False))


def _moderated_tx(tx: Tx, report: Report) -> _Moderated:
    return _Moderated(
        report, reports.server_admin_ids(tx), reports.room_moderator_ids(tx, report.room_id)
    )


def require_room_moderator(tx: Tx, room_id: str, user_id: str) -> None:
    """An admin or owner of the room; a member 403, anyone else 404."""
    if require_member(tx, room_id, user_id).role not in ("owner", "admin"):
        raise Forbidden("only the room's admins and owners may handle its reports")


def check_remark(field: str, text: str | None, max_length: int) -> str | None:
    """A report's comment or a handler's note, stripped; None when empty."""
    cleaned = (text or "").strip()
    if not cleaned:
        return None
    if len(cleaned) > max_length:
        raise Invalid(f"{field} must be at most {max_length} characters", field=field)
    check_shown_text(field, cleaned, lines=True)
    return cleaned


def check_handling(cmd: HandleReport) -> tuple[str, str | None]:
    """The status a handling gives (resolved or dismissed) and its note."""
    if cmd.status not in HANDLED_STATUSES:
        raise Invalid(f"status must be one of {', '.join(HANDLED_STATUSES)}", field="status")
    return cmd.status, check_remark("note", cmd.note, NOTE_MAX_LENGTH)


def check_status(status: str | None) -> str | None:
    if status is not None and status not in REPORT_STATUSES:
        raise Invalid(f"status must be one of {', '.join(REPORT_STATUSES)}", field="status")
    return status
