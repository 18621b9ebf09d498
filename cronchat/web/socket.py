"""The WebSocket endpoint ``/api/v1/ws``: a socket's lifecycle (open, authentication,
token expiry, close) and the table of client frames.

Client frames call the same service methods as the REST handlers; the frames' types and
the answers' bytes are in :mod:`cronchat.web.wire`. Incoming frames are read through
:mod:`cronchat.web.inbox`, outgoing frames leave through
:mod:`cronchat.web.outbox` to the socket's stream, whose buffer is bounded: a client that
stops reading is dropped once its buffer is full, and catches up by seq when it returns.
What a socket was sent of each room is its cursor's
(:class:`cronchat.realtime.room_stream.SocketCursor`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import tornado.websocket
from tornado.iostream import IOStream, StreamBufferFullError, StreamClosedError

from cronchat import validation
from cronchat.errors import DomainError, Invalid, Unauthorized
from cronchat.models import Principal, User
from cronchat.rate_limits import SOCKET_FRAMES
from cronchat.realtime.room_stream import SocketCursor
from cronchat.services.edits import EditMessage
from cronchat.services.read_markers import MarkRead
from cronchat.services.sending import SendMessage
from cronchat.views import read_json, user_json
from cronchat.web import wire
from cronchat.web.inbox import BufferedProtocol
from cronchat.web.outbox import Written, write_frames
from cronchat.web.resume import Resume, ResumeBudget

if TYPE_CHECKING:
    from cronchat.runtime import Runtime

log = logging.getLogger("cronchat.ws")

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_AUTH_FAILED = 4001
CLOSE_TRY_AGAIN = 1013
CLOSE_REVOKED = 4003

FLOOD_LIMIT = 60  # frames refused in a row before the socket is closed
SENDS_IN_FLIGHT = 32  # per socket; past it, the next frame is read once one completes

_rate_keys = itertools.count(1)  # each socket's key of the frames rule (never reused)


Action = Callable[["ChatSocket", dict, Any], Awaitable[None]]


async def _one_done(tasks: set[asyncio.Future[None]]) -> None:
    """Until one of ``tasks`` is done."""
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)


class _State:
    """What one socket keeps of its own, in one slotted object: Tornado already keeps about
    27 attributes on a WebSocket handler, and past 30 each socket's attribute dict grows
    from about 0.3 KiB to 1.5 KiB."""

    __slots__ = (
        "principal",
        "rate_key",
        "refused_in_a_row",
        "heard",
        "timer",
        "cursor",
        "resume_budget",
        "sending",
        "outgoing",
        "closed",
    )

    def __init__(self) -> None:
        self.principal: Principal | None = None
        # The socket's own bucket of the rate limiter's frames rule.
        self.rate_key = next(_rate_keys)
        self.refused_in_a_row = 0
        self.heard = time.monotonic()  # the last pong or frame from the client
        self.timer: asyncio.TimerHandle | None = None  # auth deadline, then token expiry
        self.cursor = SocketCursor()  # what this socket was sent of each room
        self.resume_budget = ResumeBudget()
        self.sending: set[asyncio.Future[None]] | None = None  # sends in flight
        self.outgoing: list[bytes] | None = None  # frames of this turn of the event loop
        self.closed = False


class ChatSocket(tornado.websocket.WebSocketHandler):
    def initialize(self) -> None:
        self._s = _State()

    @property
    def principal(self) -> Principal | None:
        return self._s.principal

    @property
    def user_id(self) -> str:
        principal = self._s.principal
        return principal.user.id if principal is not None else ""

    @property
    def session_id(self) -> str:
        principal = self._s.principal
        return principal.session_id if principal is not None else ""

    @property
    def runtime(self) -> Runtime:
        return self.application.settings["runtime"]

    def check_origin(self, origin: str) -> bool:
        return True  # tokens, not cookies, authenticate: another origin gains nothing

    def get_websocket_protocol(self) -> tornado.websocket.WebSocketProtocol | None:
        """Tornado's protocol, reading frames through :mod:`cronchat.web.inbox`."""
        protocol = super().get_websocket_protocol()
        if not isinstance(protocol, tornado.websocket.WebSocketProtocol13):
            return protocol
        return BufferedProtocol(self, False, protocol.params)

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self, *args: Any) -> None:
        self.set_nodelay(True)
        assert self._stream is not None
        self._stream.max_write_buffer_size = self.runtime.settings.ws_buffer_bytes
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            await self._authenticate(token.strip(), frame_id=None)
        else:
            self._s.timer = asyncio.get_running_loop().call_later(
                self.runtime.settings.ws_auth_timeout, self._auth_deadline
            )

    def _auth_deadline(self) -> None:
        if self.principal is None:
            self.close_with(CLOSE_AUTH_FAILED, "authentication timed out")

    def on_close(self) -> None:
        self._s.closed = True
        self.runtime.rate_limits.forget(SOCKET_FRAMES, self._s.rate_key)
        if self._s.timer is not None:
            self._s.timer.cancel()
        if self.principal is not None:
            self.runtime.hub.remove(self)

    def close_with(self, code: int, reason: str) -> None:
        if self._s.closed:
            return
        self.write_queued()  # what was said before the close frame goes before it
        self._s.closed = True
        if self.principal is not None:
            self.runtime.hub.remove(self)
        try:
            self.close(code, reason)
        except (StreamClosedError, StreamBufferFullError, tornado.websocket.WebSocketClosedError):
            self._abort()

    def keep_alive(self, heard_since: float) -> None:
        """Hub callback each ping interval: a client silent since the last round is taken for
        gone: closed with 1001, like a shutdown, so that a half-open client that still reads
        learns to reconnect and resume (a dropped peer never reads it; the close handshake's
        own timeout then cuts the connection). Else ping it again."""
        if self._s.closed:
            return
        if self._s.heard < heard_since:
            log.info("unresponsive client closed user_id=%s", self.user_id)
            self.close_with(CLOSE_GOING_AWAY, "ping timeout")
            return
        try:
            self.ping()
        except tornado.websocket.WebSocketClosedError:
            pass

    def on_pong(self, data: bytes) -> None:
        self._s.heard = time.monotonic()

    def _abort(self) -> None:
        if self._stream is not None and not self._stream.closed():
            self._stream.close()

    @property
    def _stream(self) -> IOStream | None:
        """The connection's stream, from the upgrade on."""
        return self.ws_connection.stream if self.ws_connection is not None else None

    # -- writing -------------------------------------------------------------------------

    def send_frame(self, frame: bytes) -> None:
        """Queue a ready frame; the frames of one turn of the event loop leave together."""
        if self._s.closed or self.ws_connection is None:
            return
        if self._s.outgoing is None:
            self._s.outgoing = [frame]
            self.application.settings["outbox"].due(self)
        else:
            self._s.outgoing.append(frame)

    def write_queued(self) -> None:
        """Write the queued frames at once; a full buffer means the client stopped reading:
        drop it (the hub forgets the socket when its close callback runs, on_close)."""
        outgoing, self._s.outgoing = self._s.outgoing, None
        stream = self._stream
        if not outgoing or self._s.closed or stream is None:
            return
        written = write_frames(stream, outgoing)
        if written is Written.SENT:
            return
        if written is Written.FULL:
            log.info("slow consumer dropped user_id=%s", self.user_id)
        self._s.closed = True
        if written is not Written.CLOSED:
            self._abort()

    def send_event(self, room_id: str, seq: int, frame: bytes) -> None:
        """Deliver a room event once, in seq order (held back while the room resumes)."""
        if self._s.cursor.live(room_id, seq, frame):
            self.send_frame(frame)

    def skipped(self, room_id: str, from_seq: int, to_seq: int) -> None:
        """Hub callback: live delivery of the room jumped over these seqs."""
        self._s.cursor.skipped(room_id, from_seq, to_seq)

    def reply(self, frame_id: Any, result: dict[str, Any]) -> None:
        self.send_frame(wire.ack_frame(frame_id, result))

    def error(self, frame_id: Any, error: DomainError) -> None:
        self.send_frame(wire.error_frame(frame_id, error))

    # -- reading -------------------------------------------------------------------------

    def on_message(self, raw: str | bytes) -> Awaitable[None] | None:
        """Tornado reads the socket's next frame once the awaitable answered here is done
        (at once when None is answered)."""
        if self._s.closed:
            return None
        self._s.heard = time.monotonic()
        if self._s.principal is not None:
            send = wire.read_send(raw)  # the frame of nearly every turn, in one pass
            if send is not None:
                if not self._take_token(send.id):
                    return None
                return self._start_send(self._send_frame(send), send.id)
        try:
            frame = validation.load_json(raw, "the frame")
        except Invalid as error:
            self.error(None, error)
            return None
        if not isinstance(frame, dict):
            self.error(None, Invalid("a frame is a JSON object with a type"))
            return None
        frame_id = frame.get("id")
        if not self._take_token(frame_id):
            return None
        kind = frame.get("type")
        if self.principal is None:
            if kind != "auth":
                self.close_with(CLOSE_AUTH_FAILED, "authenticate first")
                return None
        if not isinstance(kind, str) or (action := _ACTIONS.get(kind)) is None:
            self.error(frame_id, Invalid(f"unknown frame type {kind!r}", field="type"))
            return None
        if kind != "message.send":
            return self._perform(action(self, frame, frame_id), kind, frame_id)
        return self._start_send(action(self, frame, frame_id), frame_id)

    def _start_send(self, work: Awaitable[None], frame_id: Any) -> Awaitable[None] | None:
        """Sends run side by side and the next frame is read at once, so that a client's
        burst of sends goes into one group commit, where they keep their order."""
        sending = self._s.sending
        if sending is None:
            sending = self._s.sending = set()
        task = asyncio.ensure_future(self._perform(work, "message.send", frame_id))
        sending.add(task)
        task.add_done_callback(sending.discard)
        if len(sending) >= SENDS_IN_FLIGHT:
            return _one_done(sending)
        return None

    async def _perform(self, work: Awaitable[None], kind: str, frame_id: Any) -> None:
        try:
            await work
        except DomainError as error:
            self.error(frame_id, error)
        except Exception:
            log.exception("frame failed type=%s user_id=%s", kind, self.user_id)
            internal = DomainError("something went wrong on the server")
            self.error(frame_id, internal)

    def _take_token(self, frame_id: Any) -> bool:
        """A token of the socket's own bucket of the rate limiter (``CRONCHAT_WS_RATE_*``);
        a client that keeps flooding is closed with 1008."""
        retry_after_ms = self.runtime.rate_limits.take(SOCKET_FRAMES, self._s.rate_key)
        if not retry_after_ms:
            self._s.refused_in_a_row = 0
            return True
        self._s.refused_in_a_row += 1
        if self._s.refused_in_a_row > FLOOD_LIMIT:
            self.close_with(CLOSE_POLICY, "rate limit exceeded")
        else:
            self.error(frame_id, self.runtime.rate_limits.refusal(SOCKET_FRAMES, retry_after_ms))
        return False

    # -- frames --------------------------------------------------------------------------

    async def _authenticate(self, token: str, frame_id: Any) -> None:
        try:
            principal = await self.runtime.services.accounts.authenticate(token)
        except Unauthorized:
            self.close_with(CLOSE_AUTH_FAILED, "authentication failed")
            return
        if self.principal is not None:
            if principal.session_id != self.session_id:
                self.error(frame_id, Invalid("a socket stays with the session it opened with"))
                return
            self._expire_at(principal.expires_at)
            self.reply(frame_id, wire.auth_result(principal.expires_at))
            return
        if self._s.closed:
            return
        self._s.principal = principal
        try:
            states, blocked = await self.runtime.services.rooms.opening(principal.user.id)
        except DomainError:
            self._s.principal = None
            self.close_with(CLOSE_TRY_AGAIN, "the server cannot serve this socket now")
            return
        if self._s.closed:
            return
        room_seqs = self.runtime.hub.add(self, states, blocked)
        self._expire_at(principal.expires_at)
        user = user_json(principal.user, online=True, links=self.runtime.links)
        self.send_frame(wire.ready_frame(frame_id, user, principal.session_id, room_seqs))

    def _expire_at(self, expires_at: int) -> None:
        """Close with 4003 when the access token expires, unless a new ``auth`` came first."""
        if self._s.timer is not None:
            self._s.timer.cancel()
        delay = max(0.0, expires_at - time.time())
        self._s.timer = asyncio.get_running_loop().call_later(
            delay, self.close_with, CLOSE_REVOKED, "access token expired"
        )

    async def _auth(self, frame: dict, frame_id: Any) -> None:
        body = validation.parse(wire.AuthFrame, frame)
        await self._authenticate(body.token, frame_id)

    async def _ping(self, frame: dict, frame_id: Any) -> None:
        self.send_frame(wire.pong_frame(frame_id))

    @property
    def user(self) -> User:
        assert self.principal is not None
        return self.principal.user

    async def _send(self, frame: dict, frame_id: Any) -> None:
        """A send that :func:`wire.read_send` did not take: parsed here, where a malformed
        one gets the error that names its field."""
        room = validation.parse(wire.RoomRef, frame)
        body = validation.parse(SendMessage, frame)
        await self._send_message(room.room_id, body, frame_id)

    async def _send_frame(self, frame: wire.SendFrame) -> None:
        body = SendMessage(
            frame.client_msg_id,
            frame.kind,
            frame.text,
            frame.media_id,
            frame.reply_to_id,
            frame.mentions,
        )
        await self._send_message(frame.room_id, body, frame.id)

    async def _send_message(self, room_id: str, body: SendMessage, frame_id: Any) -> None:
        message, _ = await self.runtime.services.sending.send(self.user, room_id, body)
        self.reply(frame_id, wire.message_result(message, self.runtime.links))

    async def _edit(self, frame: dict, frame_id: Any) -> None:
        ref = validation.parse(wire.MessageRef, frame)
        body = validation.parse(EditMessage, frame)
        message = await self.runtime.services.edits.edit(
            self.user, ref.room_id, ref.message_id, body
        )
        self.reply(frame_id, wire.message_result(message, self.runtime.links))

    async def _delete(self, frame: dict, frame_id: Any) -> None:
        ref = validation.parse(wire.MessageRef, frame)
        await self.runtime.services.edits.delete(self.user, ref.room_id, ref.message_id)
        self.reply(frame_id, {})

    async def _react(self, frame: dict, frame_id: Any, add: bool) -> None:
        ref = validation.parse(wire.ReactionRef, frame)
        await self.runtime.services.reactions.react(
            self.user, ref.room_id, ref.message_id, ref.emoji, add
        )
        self.reply(frame_id, {})

    async def _read(self, frame: dict, frame_id: Any) -> None:
        room = validation.parse(wire.RoomRef, frame)
        body = validation.parse(MarkRead, frame)
        summary = await self.runtime.services.read_markers.mark_read(self.user, room.room_id, body)
        self.reply(frame_id, read_json(summary))

    async def _typing(self, frame: dict, frame_id: Any) -> None:
        room = validation.parse(wire.RoomRef, frame)
        await self.runtime.services.typing.typing(self.user, room.room_id)
        self.reply(frame_id, {})

    async def _resume(self, frame: dict, frame_id: Any) -> None:
        """Replay what the client missed (:mod:`cronchat.web.resume`); then the ack."""
        rooms = wire.parse_resume(frame)
        self._s.resume_budget.take(len(rooms))
        resume = Resume(
            self.user,
            self.runtime.services.history,
            self._s.cursor,
            self.runtime.links,
            self.send_frame,
        )
        self.reply(frame_id, {"rooms": await resume.rooms(rooms)})


async def _react_add(socket: ChatSocket, frame: dict, frame_id: Any) -> None:
    await socket._react(frame, frame_id, add=True)


async def _react_remove(socket: ChatSocket, frame: dict, frame_id: Any) -> None:
    await socket._react(frame, frame_id, add=False)


_ACTIONS: dict[str, Action] = {
    "auth": ChatSocket._auth,
    "ping": ChatSocket._ping,
    "message.send": ChatSocket._send,
    "message.edit": ChatSocket._edit,
    "message.delete": ChatSocket._delete,
    "reaction.add": _react_add,
    "reaction.remove": _react_remove,
    "read": ChatSocket._read,
    "typing": ChatSocket._typing,
    "resume": ChatSocket._resume,
}
