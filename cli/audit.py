"""``cronchat audit``: read the audit log of moderation acts, newest first."""

from __future__ import annotations

import click

from cli.common import Context, emit, fails_in_one_line
from cronchat.models import AuditEntry
from cronchat.repos.audit import ACTIONS
from cronchat.runtime import Runtime
from cronchat.services.audit import LIMIT_MAX, AuditFilter
from cronchat.times import rfc3339
from cronchat.views import audit_entry_json


def _entry_line(entry: AuditEntry) -> str:
    return (
        f"{rfc3339(entry.at)}  {entry.action:19}  actor={entry.actor_id or 'cli'}"
        f"  room={entry.room_id or '-'}  target={entry.target_user_id or '-'}"
        + (f"  message={entry.message_id}" if entry.message_id else "")
    )


@click.group()
def audit() -> None:
    """Read the audit log."""


@audit.command("list")
@click.option("--room", "room_id", help="Only the entries of this room (its id).")
@click.option("--actor", help="Only the acts of this user (a username).")
@click.option("--action", type=click.Choice(ACTIONS), help="Only this kind of act.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@fails_in_one_line
def audit_list(
    obj: Context,
    room_id: str | None,
    actor: str | None,
    action: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List audit entries, newest first."""

    async def read(rt: Runtime) -> list[AuditEntry]:
        actor_id = (await rt.services.accounts.require_username(actor)).id if actor else None
        where = AuditFilter(room_id=room_id, actor_id=actor_id, action=action)
        found: list[AuditEntry] = []
        cursor = None
        while len(found) < limit:
            page_size = min(LIMIT_MAX, limit - len(found))
            page, cursor = await rt.services.audit.operator_entries(where, page_size, cursor)
            found.extend(page)
            if cursor is None:
                break
        return found

    found = obj.run(read)
    emit(
        as_json,
        [audit_entry_json(entry) for entry in found],
        "\n".join(_entry_line(entry) for entry in found) or "no entries",
    )
