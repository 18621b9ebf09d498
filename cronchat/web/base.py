"""The base of every REST handler: auth, bodies judged before they are read, JSON in and
out, and the one error envelope."""

from __future__ import annotations

import json
import logging
from asyncio import Future
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

import tornado.web
from tornado import httputil, iostream

from cronchat import validation
from cronchat.errors import (
    DomainError,
    HeadersTooLarge,
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
from cronchat.services.access import MemberActor
from cronchat.views import user_json

if TYPE_CHECKING:
    from cronchat.runtime import Runtime, Services

log = logging.getLogger("cronchat.web")

T = TypeVar("T")

# Methods whose requests carry no body: any body at all is refused.
BODILESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_STATUS_ERRORS: dict[int, type[DomainError]] = {
    400: Invalid,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


@tornado.web.stream_request_body
class BaseHandler(tornado.web.RequestHandler):
    """Authenticates by default; set ``public = True`` for the few open endpoints.

    Every body streams in (``stream_request_body``), so that ``prepare`` judges it from the
    headers before any of it is read (:meth:`judge_body`, with :meth:`body_limit` per
    route) and counts a chunked one as it arrives. An answer given before the body is in
    (413, 401, ...) is sent at once, and the rest of the body is still read and dropped,
    within :meth:`discard_limit`, so that a client that writes its whole body before
    reading (Python's urllib) reads the answer instead of a reset connection. A chunked
    body that runs past the limit is answered and its connection closed."""

    public = False
    principal: Principal
    # The rate-limit rule (a name of cronchat.rate_limits) of each method. An authenticated
    # endpoint is limited per user, by ``reads`` for GET and ``writes`` otherwise unless it
    # names its own; a public one per client address, and only by a rule it names here.
    rate_rules: ClassVar[Mapping[str, str]] = {}
    _body_chunks: list[bytes] | None = None
    _body_size = 0
    _discard_limit: int | None = None  # set by judge_body when a refused body is drained
    _answered_early = False

    @property
    def runtime(self) -> Runtime:
        return self.application.settings["runtime"]

    @property
    def services(self) -> Services:
        return self.runtime.services

    @property
    def actor(self) -> MemberActor:
        """The caller, as who acts in a room."""
        return MemberActor(self.principal.user.id)

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    async def prepare(self) -> None:
        self.judge_body()
        if self.public:
            rule = self.rate_rules.get(self.request.method or "")
            if rule is not None:
                self.runtime.rate_limits.require(rule, address_key(self.client_address()))
        else:
            self.principal = await self.services.accounts.authenticate_request(self.bearer_token())
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
        """How big a body this route takes: a JSON body, or none for GET, HEAD and OPTIONS."""
        if self.request.method in BODILESS_METHODS:
            return 0
        return self.runtime.settings.max_body_bytes

    def discard_limit(self) -> int:
        """How much of a refused body of a declared length is still read and dropped, rather
        than the connection closed at once: twice the largest body any route takes."""
        return 2 * max(self.runtime.settings.media_max_bytes, self.body_limit())

    def judge_body(self) -> None:
        """Decide from the headers, before any of the body is read, whether it may come: a
        declared length over :meth:`body_limit` is 413 at once; a chunked body is counted
        as it arrives (:meth:`data_received`)."""
        declared = _declared_length(self.request.headers)
        discard = self.discard_limit()
        if self.request.headers.get("Expect", "").lower() != "100-continue" and (
            declared is None or declared <= discard
        ):
            # A client waiting for "100 Continue" sends no body after an early answer.
            self._discard_limit = discard
        # The connection's own cap only backs ours up: past it, Tornado answers a bare 400.
        connection = self.request.connection
        connection.set_max_body_size(max(declared or 0, discard))  # type: ignore[union-attr]  # set on every served request
        limit = self.body_limit()
        if declared is not None and declared > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")

    def data_received(self, chunk: bytes) -> None:
        self._body_size += len(chunk)
        if self._answered_early:
            if self._discard_limit is None or self._body_size > self._discard_limit:
                self._end_early_answer()  # enough dropped: the connection closes
            return
        if self._body_size > self.body_limit():
            # A chunked body has no end in sight: answered, then the connection closes.
            self._discard_limit = None
            self._body_chunks = None
            error = PayloadTooLarge(f"the body is larger than {self.body_limit()} bytes")
            self.send_error(error.status, exc_info=(type(error), error, None))
            return
        if self._body_chunks is None:
            self._body_chunks = []
        self._body_chunks.append(chunk)

    def body_bytes(self) -> bytes:
        """The whole body, once it is in (handler methods run only then)."""
        body = b"".join(self._body_chunks or ())
        self._body_chunks = None
        return body

    def finish(self, chunk: str | bytes | dict | None = None) -> Future[None]:
        """As Tornado's, except for an answer given before the body is in: sent now, and
        ended once the rest of the body has been read and dropped."""
        body_end = getattr(self.request, "_body_future", None)
        if self._answered_early or (
            self._discard_limit is not None and body_end is not None and not body_end.done()
        ):
            if not self._answered_early:
                if chunk is not None:
                    self.write(chunk)
                assert body_end is not None  # the condition above held
                self._answer_early(body_end)
            elif chunk is not None or self._finished:
                log.warning("answer written twice method=%s", self.request.method)
            done: Future[None] = Future()
            done.set_result(None)
            return done
        return super().finish(chunk)

    def _answer_early(self, body_end: Future[None]) -> None:
        self._answered_early = True
        # Tornado resumes the handler when the body is in: told here that the connection
        # is gone, it never calls the handler's method for a request already answered.
        body_end.set_exception(iostream.StreamClosedError())
        body_end.exception()
        fresh: Future[None] = Future()
        fresh.add_done_callback(self._body_dropped)
        self.request._body_future = fresh
        # As Tornado's finish() does: the length of what was written, since it is sent now.
        self.set_header("Content-Length", sum(len(part) for part in self._write_buffer))
        self.flush()

    def _body_dropped(self, body_end: Future[None]) -> None:
        if body_end.exception() is None:
            self._end_early_answer()

    def _end_early_answer(self) -> None:
        if not self._finished:
            super().finish()

    def on_connection_close(self) -> None:
        if self._answered_early and not self._finished:
            # The client went away (or its body stalled) after reading an early answer.
            self.application.log_request(self)
        super().on_connection_close()

    def bearer_token(self) -> str:
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("an Authorization: Bearer token is required")
        return token.strip()

    def json_body(self, cls: type[T]) -> T:
        """The body parsed into ``cls``; a 400 names the field that is missing or wrong."""
        return validation.parse(cls, validation.load_json(self.body_bytes() or b"{}"))

    @overload
    def query_int(self, name: str, default: int) -> int: ...

    @overload
    def query_int(self, name: str, default: None = None) -> int | None: ...

    def query_int(self, name: str, default: int | None = None) -> int | None:
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        try:
            return validation.check_int_range(name, int(raw))
        except ValueError:
            raise Invalid(f"{name} must be an integer", field=name) from None

    def query_bool(self, name: str) -> bool | None:
        """``true`` or ``false``; None when absent."""
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return None
        if raw not in ("true", "false"):
            raise Invalid(f"{name} must be true or false", field=name)
        return raw == "true"

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object, for a handler that needs to know which fields were
        given (:meth:`json_body` parses it into a class)."""
        value = validation.load_json(self.body_bytes() or b"{}")
        if not isinstance(value, dict):
            raise Invalid("the body must be a JSON object")
        return value

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


def _declared_length(headers: httputil.HTTPHeaders) -> int | None:
    """The body length the headers announce, or None (chunked, or none announced; Tornado
    itself refuses a length that is not a number)."""
    length = headers.get("Content-Length", "").partition(",")[0].strip()
    return int(length) if length.isdigit() else None


def header_bytes(request: httputil.HTTPServerRequest) -> int:
    """The size of a request's header fields, about as they came on the wire."""
    return sum(len(name) + len(value) + 4 for name, value in request.headers.get_all())


class NotFoundHandler(BaseHandler):
    """Every unknown path: 404 in the envelope, whatever the method."""

    public = True

    async def prepare(self) -> None:
        self.judge_body()
        raise NotFound(f"no such endpoint: {self.request.path}")


class HeadersTooLargeHandler(BaseHandler):
    """Any request whose header fields are over ``CRONCHAT_MAX_HEADER_BYTES``, whatever the
    path: 431 in the envelope (routed here by the application, before any other handler)."""

    public = True

    async def prepare(self) -> None:
        limit = self.runtime.settings.max_header_bytes
        raise HeadersTooLarge(f"the request's header fields are larger than {limit} bytes")
