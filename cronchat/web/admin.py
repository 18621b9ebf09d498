"""REST handlers of server administration (``/admin``): for server admins only (403)."""

from __future__ import annotations

from dataclasses import dataclass

from cronchat.views import admin_user_json
from cronchat.web.base import BaseHandler


@dataclass(frozen=True, slots=True)
class ChangeUser:
    disabled: bool


class AdminUserHandler(BaseHandler):
    async def patch(self, user_id: str) -> None:
        body = self.json_body(ChangeUser)
        user = await self.services.accounts.admin_set_disabled(
            self.principal.user, user_id, body.disabled
        )
        self.write_json(admin_user_json(user, self.links))
