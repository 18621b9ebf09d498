"""``cronchat report``: the operator's queue of reported messages, and handling them."""

from __future__ import annotations

import click

from cli.common import Context, emit, fails_in_one_line
from cronchat.models import REPORT_STATUSES, Report
from cronchat.runtime import Runtime
from cronchat.services.reports import QUEUE_LIMIT_MAX, HandleReport
from cronchat.times import rfc3339
from cronchat.views import report_json

EXCERPT_LENGTH = 60


@click.group()
def report() -> None:
    """List and handle reported messages."""


def _report_line(found: Report) -> str:
    text = found.snapshot.text
    if text is None:
        shown = f"[{found.snapshot.kind}]"
    else:
        flat = " ".join(text.split())
        shown = flat if len(flat) <= EXCERPT_LENGTH else flat[: EXCERPT_LENGTH - 1] + "…"
    handled = f" by {found.handled_by or 'cli'}" if found.handled_at is not None else ""
    return (
        f"{found.id}  {found.status}{handled}  {found.reason}  {rfc3339(found.created_at)}"
        f"  room {found.room_id}  sender {found.snapshot.sender_id}: {shown}"
    )


@report.command("list")
@click.option("--status", type=click.Choice(REPORT_STATUSES), help="Only reports of this status.")
@click.option("--room", "room_id", help="Only reports of this room (its id).")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@fails_in_one_line
def report_list(
    obj: Context, status: str | None, room_id: str | None, limit: int, as_json: bool
) -> None:
    """List reports, newest first (with their reporters: the operator sees them)."""

    async def listed(rt: Runtime) -> list[Report]:
        found: list[Report] = []
        cursor = None
        while len(found) < limit:
            page, cursor = await rt.services.reports.admin_queue(
                None, status, room_id, cursor, min(QUEUE_LIMIT_MAX, limit - len(found))
            )
            found.extend(page)
            if cursor is None:
                break
        return found

    found = obj.run(listed)
    emit(
        as_json,
        [report_json(item, show_reporter=True) for item in found],
        "\n".join(_report_line(item) for item in found) or "no reports",
    )


def _handling_command(name: str, status: str, help_text: str) -> None:
    @report.command(name, help=help_text)
    @click.argument("report_id")
    @click.option("--note", help="Why (at most 1000 characters), kept with the report.")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    @fails_in_one_line
    def command(obj: Context, report_id: str, note: str | None, as_json: bool) -> None:
        handled = obj.run(
            lambda rt: rt.services.reports.handle_as_operator(report_id, HandleReport(status, note))
        )
        emit(as_json, report_json(handled, show_reporter=True), _report_line(handled))


_handling_command("resolve", "resolved", "Resolve an open report (acted on).")
_handling_command("dismiss", "dismissed", "Dismiss an open report (nothing to do).")
