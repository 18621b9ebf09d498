"""REST handlers of /auth and /users."""

from __future__ import annotations

from cronchat.errors import Invalid
from cronchat.rate_limits import LOGIN_ADDRESS, REFRESH, REGISTER
from cronchat.services.accounts import ChangePassword, Login, Refresh, Register
from cronchat.services.users import UpdateProfile
from cronchat.views import auth_json
from cronchat.web.base import BaseHandler


class RegisterHandler(BaseHandler):
    public = True
    rate_rules = {"POST": REGISTER}

    async def post(self) -> None:
        body = self.json_body(Register)
        result = await self.services.accounts.register(body, self.user_agent())
        self.write_json(auth_json(result, self.links), status=201)

    def user_agent(self) -> str:
        return self.request.headers.get("User-Agent", "")


class LoginHandler(RegisterHandler):
    rate_rules = {"POST": LOGIN_ADDRESS}  # and per username, in the service

    async def post(self) -> None:
        body = self.json_body(Login)
        result = await self.services.accounts.login(body, self.user_agent())
        self.write_json(auth_json(result, self.links))


class RefreshHandler(BaseHandler):
    public = True
    rate_rules = {"POST": REFRESH}

    async def post(self) -> None:
        body = self.json_body(Refresh)
        result = await self.services.accounts.refresh(body)
        self.write_json(auth_json(result, self.links))


class LogoutHandler(BaseHandler):
    async def post(self) -> None:
        await self.services.accounts.logout(self.principal)
        self.no_content()


class MeHandler(BaseHandler):
    async def get(self) -> None:
        user = await self.services.users.get_user(self.principal.user.id)
        self.write_json(await self.profile_json(user))

    async def patch(self) -> None:
        body = self.json_body(UpdateProfile)
        user = await self.services.users.update_profile(self.principal.user, body)
        self.write_json(await self.profile_json(user))


class PasswordHandler(BaseHandler):
    async def put(self) -> None:
        body = self.json_body(ChangePassword)
        await self.services.accounts.change_password(self.principal, body)
        self.no_content()


class UserHandler(BaseHandler):
    async def get(self, user_id: str) -> None:
        user = await self.services.users.get_user(user_id)
        self.write_json(await self.profile_json(user))


class UsersHandler(BaseHandler):
    async def get(self) -> None:
        prefix = self.get_query_argument("q", None)
        if prefix is None:
            raise Invalid("q is required", field="q")
        found = await self.services.users.search(prefix, self.query_int("limit", 20))
        self.write_json({"users": await self.profiles_json(found)})
