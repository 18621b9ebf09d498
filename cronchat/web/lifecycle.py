"""REST handlers of the account lifecycle: deleting one's account, exports of one's data."""

from __future__ import annotations

from typing import Any

from cronchat.models import User
from cronchat.services.lifecycle import DeleteAccount
from cronchat.views import export_json, own_user_json
from cronchat.web import accounts
from cronchat.web.base import BaseHandler


class MeHandler(accounts.MeHandler):
    """``/users/me``: the profile as :class:`accounts.MeHandler` answers it, with
    ``is_admin`` for its owner, and ``DELETE`` for deleting the account."""

    async def delete(self) -> None:
        body = self.json_body(DeleteAccount)
        await self.services.lifecycle.delete_account(self.principal.user, body)
        self.no_content()

    async def profile_json(self, user: User) -> dict[str, Any]:
        return own_user_json(await super().profile_json(user), user)


class ExportsHandler(BaseHandler):
    async def post(self) -> None:
        status = await self.services.exports.request(self.principal.user)
        self.write_json(export_json(status.export, status.url), status=202)


class ExportHandler(BaseHandler):
    async def get(self, export_id: str) -> None:
        status = await self.services.exports.status(self.principal.user, export_id)
        self.write_json(export_json(status.export, status.url))


class ExportDownloadHandler(BaseHandler):
    """The zip of an export, to its signed link (the link is the grant: no token)."""

    public = True

    async def get(self, export_id: str) -> None:
        data = await self.services.exports.download(
            export_id,
            self.get_query_argument("expires", None),
            self.get_query_argument("signature", None),
        )
        self.set_header("Content-Type", "application/zip")
        self.set_header("Content-Disposition", f'attachment; filename="cronchat-{export_id}.zip"')
        self.finish(data)
