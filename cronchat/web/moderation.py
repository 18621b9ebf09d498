"""REST handlers of moderation: a room's bans and the audit log (a room's, and the server's
for server admins). A member's timed mute is set with their role (:mod:`cronchat.web.rooms`)."""

from __future__ import annotations

from cronchat.services.audit import AuditFilter
from cronchat.services.moderation import BanUser
from cronchat.views import audit_entry_json, ban_json
from cronchat.web.base import BaseHandler


class BansHandler(BaseHandler):
    async def get(self, room_id: str) -> None:
        found = await self.services.moderation.bans(self.actor, room_id)
        self.write_json({"bans": [ban_json(ban, self.links) for ban in found]})

    async def post(self, room_id: str) -> None:
        body = self.json_body(BanUser)
        ban = await self.services.moderation.ban(self.actor, room_id, body)
        self.write_json(ban_json(ban, self.links), status=201)


class BanHandler(BaseHandler):
    async def delete(self, room_id: str, user_id: str) -> None:
        await self.services.moderation.unban(self.actor, room_id, user_id)
        self.no_content()


class RoomAuditHandler(BaseHandler):
    async def get(self, room_id: str) -> None:
        entries, next_cursor = await self.services.audit.room_entries(
            self.principal.user,
            room_id,
            self.query_int("limit", 50),
            self.get_query_argument("cursor", None) or None,
        )
        self.write_json(
            {"entries": [audit_entry_json(e) for e in entries], "next_cursor": next_cursor}
        )


class AdminAuditHandler(BaseHandler):
    async def get(self) -> None:
        where = AuditFilter(
            room_id=self.get_query_argument("room_id", None) or None,
            actor_id=self.get_query_argument("actor_id", None) or None,
            target_user_id=self.get_query_argument("target_user_id", None) or None,
            action=self.get_query_argument("action", None) or None,
        )
        entries, next_cursor = await self.services.audit.entries(
            self.principal.user,
            where,
            self.query_int("limit", 50),
            self.get_query_argument("cursor", None) or None,
        )
        self.write_json(
            {"entries": [audit_entry_json(e) for e in entries], "next_cursor": next_cursor}
        )
