"""REST handlers of a user's blocks."""

from __future__ import annotations

from cronchat.web.base import BaseHandler


class BlocksHandler(BaseHandler):
    async def get(self) -> None:
        found = await self.services.blocks.blocked_users(self.principal.user)
        self.write_json({"users": await self.profiles_json(found)})


class BlockHandler(BaseHandler):
    async def put(self, user_id: str) -> None:
        await self.services.blocks.set_blocked(self.principal.user, user_id, True)
        self.no_content()

    async def delete(self, user_id: str) -> None:
        await self.services.blocks.set_blocked(self.principal.user, user_id, False)
        self.no_content()
