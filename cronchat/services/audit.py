"""Reading the audit log: a room's entries for its admins and owners, every entry (with
filters) for server admins and the operator. Entries are written by the acts themselves,
in their own transactions (:mod:`cronchat.repos.audit`); nothing here changes them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cronchat.cursors import Cursors
from cronchat.db import Database, Tx
from cronchat.errors import Forbidden, Invalid
from cronchat.models import AuditEntry, User
from cronchat.repos import audit
from cronchat.repos.audit import ACTIONS, AuditFilter
from cronchat.services.access import MemberActor, require_server_admin, role_of

__all__ = ["Audit", "AuditFilter"]

LIMIT_MAX = 100

Page = tuple[list[AuditEntry], str | None]


def check_filter(where: AuditFilter) -> AuditFilter:
    if where.action is not None and where.action not in ACTIONS:
        raise Invalid(f"action must be one of {', '.join(ACTIONS)}", field="action")
    return where


class Audit:
    def __init__(self, db: Database, cursors: Cursors) -> None:
        self.db = db
        self.cursors = cursors

    async def room_entries(
        self, user: User, room_id: str, limit: int = 50, cursor: str | None = None
    ) -> Page:
        """A room's entries, newest first (its admins and owners; members 403, anyone else
        404)."""
        return await self._page(self._room_tx, limit, cursor, user.id, room_id)

    @staticmethod
    def _room_tx(
        tx: Tx, limit: int, after: tuple[int, str] | None, user_id: str, room_id: str
    ) -> list[AuditEntry]:
        if role_of(tx, room_id, MemberActor(user_id)) not in ("owner", "admin"):
            raise Forbidden("only an owner or admin may read the room's audit log")
        return audit.entries(tx, limit, AuditFilter(room_id=room_id), after)

    async def entries(
        self, user: User, where: AuditFilter, limit: int = 50, cursor: str | None = None
    ) -> Page:
        """Every entry matching the filter, newest first (server admins)."""
        require_server_admin(user)
        return await self.operator_entries(where, limit, cursor)

    async def operator_entries(
        self, where: AuditFilter, limit: int = 50, cursor: str | None = None
    ) -> Page:
        """Every entry matching the filter, newest first (the operator: the CLI)."""
        return await self._page(self._filtered_tx, limit, cursor, check_filter(where))

    @staticmethod
    def _filtered_tx(
        tx: Tx, limit: int, after: tuple[int, str] | None, where: AuditFilter
    ) -> list[AuditEntry]:
        return audit.entries(tx, limit, where, after)

    async def _page(
        self, read_tx: Callable[..., list[AuditEntry]], limit: int, cursor: str | None, *args: Any
    ) -> Page:
        """One page of ``read_tx(tx, limit, after, *args)``, with the cursor of the next."""
        if not 1 <= limit <= LIMIT_MAX:
            raise Invalid(f"limit must be between 1 and {LIMIT_MAX}", field="limit")
        after = self.cursors.decode(cursor) if cursor else None
        found = await self.db.read(read_tx, limit + 1, after, *args)
        page = found[:limit]
        next_cursor = None
        if len(found) > limit and page:
            next_cursor = self.cursors.encode(page[-1].at, page[-1].id)
        return page, next_cursor
