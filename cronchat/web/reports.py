"""REST handlers of reports: filing one, the queue of a room's admins and owners, and the
queue of server admins (``/admin/reports``)."""

from __future__ import annotations

from typing import Any

from cronchat.models import Report
from cronchat.services.reports import FileReport, HandleReport
from cronchat.views import report_json
from cronchat.web.base import BaseHandler


class _ReportsBase(BaseHandler):
    def report_json(self, report: Report) -> dict[str, Any]:
        """The report as the caller may see it: the reporter for server admins only."""
        return report_json(report, show_reporter=self.principal.user.is_admin)

    def write_page(self, found: list[Report], next_cursor: str | None) -> None:
        self.write_json(
            {"reports": [self.report_json(r) for r in found], "next_cursor": next_cursor}
        )

    def page_arguments(self) -> dict[str, Any]:
        return {
            "status": self.get_query_argument("status", None) or None,
            "cursor": self.get_query_argument("cursor", None) or None,
            "limit": self.query_int("limit", 50),
        }


class MessageReportHandler(_ReportsBase):
    async def post(self, room_id: str, message_id: str) -> None:
        body = self.json_body(FileReport)
        report, created = await self.services.reports.file(
            self.principal.user, room_id, message_id, body
        )
        self.write_json(self.report_json(report), status=201 if created else 200)


class RoomReportsHandler(_ReportsBase):
    async def get(self, room_id: str) -> None:
        found, next_cursor = await self.services.reports.room_queue(
            self.principal.user, room_id, **self.page_arguments()
        )
        self.write_page(found, next_cursor)


class RoomReportHandler(_ReportsBase):
    async def patch(self, room_id: str, report_id: str) -> None:
        body = self.json_body(HandleReport)
        report = await self.services.reports.handle_in_room(
            self.principal.user, room_id, report_id, body
        )
        self.write_json(self.report_json(report))


class AdminReportsHandler(_ReportsBase):
    async def get(self) -> None:
        found, next_cursor = await self.services.reports.admin_queue(
            self.principal.user,
            room_id=self.get_query_argument("room_id", None) or None,
            **self.page_arguments(),
        )
        self.write_page(found, next_cursor)


class AdminReportHandler(_ReportsBase):
    async def patch(self, report_id: str) -> None:
        body = self.json_body(HandleReport)
        report = await self.services.reports.handle_as_admin(self.principal.user, report_id, body)
        self.write_json(self.report_json(report))
