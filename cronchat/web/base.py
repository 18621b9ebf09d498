"""The base of every REST handler: auth, JSON in and out, and the one error envelope."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import tornado.web
from tornado import httputil

from cronchat import validation
from cronchat.errors import (
    DomainError,
    Invalid,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)
from cronchat.media_links import MediaLinks
from cronchat.models import Principal, User
from cronchat.rate_limits import READS, WRITES, address_key, client_address
from cronchat.views import user_json

if TYPE_CHECKING:
    from cronchat.runtime import Runtime

log = logging.getLogger("cronchat.web")

T = TypeVar("T")

_STATUS_ERRORS: dict[int, type[DomainError]] = {
    400: Invalid,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


class BaseHandler(tornado.web.RequestHandler):
    """Authenticates by default; set ``public = True`` for the few open endpoints."""

    public = False
    principal: Principal
    # The rate-limit rule (a name of cronchat.rate_limits) of each method. An authenticated
    # endpoint is limited per user, by ``reads`` for GET and ``writes`` otherwise unless it
    # names its own; a public one per client address, and only by a rule it names here.
    rate_rules: ClassVar[Mapping[str, str]] = {}

    @property
    def runtime(self) -> Runtime:
        return self.application.settings["runtime"]

    @property
    def services(self) -> Any:
        return self.runtime.services

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    async def prepare(self) -> None:
        length = self.request.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > self.body_limit():
            raise PayloadTooLarge(f"the body is larger than {self.body_limit()} bytes")
        if self.public:
            rule = self.rate_rules.get(self.request.method or "")
            if rule is not None:
                self.runtime.rate_limits.require(rule, address_key(self.client_address()))
        else:
            self.principal = await self.services.accounts.authenticate(self.bearer_token())
            self.runtime.rate_limits.require(self.rate_rule(), self.principal.user.id)

    def rate_rule(self) -> str:
        method = self.request.method or "GET"
        default = READS if method in ("GET", "HEAD") else WRITES
        return self.rate_rules.get(method, default)

    def client_address(self) -> str:
        """The peer's address, or the client's behind a trusted proxy (X-Forwarded-For)."""
        return client_address(
            self.request.remote_ip or "",
            self.request.headers.get_list("X-Forwarded-For"),
            self.runtime.settings.trusted_proxies,
        )

    def body_limit(self) -> int:
        return self.runtime.settings.max_body_bytes

    def bearer_token(self) -> str:
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("an Authorization: Bearer token is required")
        return token.strip()

    def json_body(self, cls: type[T]) -> T:
        """The body parsed into ``cls``; a 400 names the field that is missing or wrong."""
        if len(self.request.body) > self.body_limit():
            raise PayloadTooLarge(f"the body is larger than {self.body_limit()} bytes")
        try:
            data = json.loads(self.request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise Invalid("the body is not valid JSON") from None
        return validation.parse(cls, data)

    def query_int(self, name: str, default: int | None = None) -> int | None:
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        try:
            return validation.check_int_range(name, int(raw))
        except ValueError:
            raise Invalid(f"{name} must be an integer", field=name) from None

    @property
    def links(self) -> MediaLinks:
        """Signs the media URLs of answers."""
        return self.runtime.links

    async def online(self, user_ids: Iterable[str]) -> set[str]:
        """Which of these users are online, on any process (one lookup for all)."""
        return await self.runtime.presence.online(user_ids)

    async def presence(self, user_ids: Iterable[str]) -> dict[str, bool | None]:
        """Whether each user is online, as the caller may know it: None (hidden) for users
        who share no room with them."""
        wanted = set(user_ids)
        visible = await self.services.users.presence_visible(self.principal.user.id, wanted)
        online = await self.online(visible & wanted)
        return {user_id: user_id in online if user_id in visible else None for user_id in wanted}

    async def profiles_json(self, users: list[User]) -> list[dict[str, Any]]:
        """Profiles as the caller may see them: presence (``online``, ``last_seen_at``) only of
        users who share a room with them, and their own; null for everyone else."""
        presence = await self.presence(user.id for user in users)
        return [user_json(user, online=presence[user.id], links=self.links) for user in users]

    async def profile_json(self, user: User) -> dict[str, Any]:
        return (await self.profiles_json([user]))[0]

    def write_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(value, ensure_ascii=False, separators=(",", ":")))

    def no_content(self) -> None:
        self.set_status(204)
        self.clear_header("Content-Type")
        self.finish()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = _as_domain_error(status_code, kwargs.get("exc_info"))
        retry_after_ms = error.details.get("retry_after_ms")
        if isinstance(error, RateLimited | Unavailable) and isinstance(retry_after_ms, int):
            self.set_header("Retry-After", str(max(1, -(-retry_after_ms // 1000))))
        if isinstance(error, Unauthorized):
            self.set_header("WWW-Authenticate", 'Bearer realm="cronchat"')
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(error.envelope(), ensure_ascii=False))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, DomainError | tornado.web.HTTPError):
            return  # an answer, not a fault: the access log has the status
        log.error(
            "unhandled error method=%s path=%s",
            self.request.method,
            self.request.path,
            exc_info=(typ, value, tb),
        )

    def _handle_request_exception(self, error: BaseException) -> None:
        if isinstance(error, DomainError):
            if self._finished:
                return
            self.send_error(error.status, exc_info=(type(error), error, error.__traceback__))
            return
        super()._handle_request_exception(error)

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        if exc_info and isinstance(exc_info[1], DomainError):
            status_code = exc_info[1].status
        super().send_error(status_code, **kwargs)


def _as_domain_error(status: int, exc_info: Any) -> DomainError:
    error = exc_info[1] if exc_info else None
    if isinstance(error, DomainError):
        return error
    if status in _STATUS_ERRORS:
        reason = getattr(error, "log_message", None) or httputil.responses.get(status, "error")
        return _STATUS_ERRORS[status](str(reason))
    generic = DomainError("something went wrong on the server")
    generic.status = status
    return generic


class NotFoundHandler(BaseHandler):
    """Every unknown path: 404 in the envelope, whatever the method."""

    public = True

    async def prepare(self) -> None:
        raise NotFound(f"no such endpoint: {self.request.path}")
