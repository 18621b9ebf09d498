"""REST handlers of push: the server's VAPID key, and a user's push devices."""

from __future__ import annotations

from cronchat.services.pushers import RegisterPusher
from cronchat.views import pusher_json
from cronchat.web.base import BaseHandler


class VapidHandler(BaseHandler):
    """The server's VAPID public key, for a browser's ``applicationServerKey`` (no auth)."""

    public = True

    async def get(self) -> None:
        self.write_json({"public_key": self.runtime.vapid.public_key_b64url()})


class PushersHandler(BaseHandler):
    async def get(self) -> None:
        found = await self.services.pushers.list_pushers(self.principal)
        self.write_json({"pushers": [pusher_json(pusher) for pusher in found]})

    async def post(self) -> None:
        body = self.json_body(RegisterPusher)
        pusher, created = await self.services.pushers.register(self.principal, body)
        self.write_json(pusher_json(pusher), status=201 if created else 200)


class PusherHandler(BaseHandler):
    async def delete(self, pusher_id: str) -> None:
        await self.services.pushers.remove(self.principal, pusher_id)
        self.no_content()
