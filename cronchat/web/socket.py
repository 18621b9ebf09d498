"""The WebSocket endpoint ``/api/v1/ws``: authentication, client frames, and delivery.

Client frames call the same service methods as the REST handlers. Outgoing frames are
written straight to the socket's stream, whose buffer is bounded: a client that stops
reading is dropped once its buffer is full, and catches up by seq when it returns.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import tornado.websocket
from tornado.iostream import IOStream, StreamBufferFullError, StreamClosedError

from cronchat import validation
from cronchat.errors import DomainError, Invalid, RateLimited, Unauthorized
from cronchat.models import Principal, User
from cronchat.rate_limits import SOCKET_FRAMES
from cronchat.realtime.frames import encode
from cronchat.services.messages import CatchUp, EditMessage, MarkRead, SendMessage
from cronchat.times import rfc3339
from cronchat.views import event_json, message_json, user_json

if TYPE_CHECKING:
    from cronchat.runtime import Runtime

log = logging.getLogger("cronchat.ws")

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_AUTH_FAILED = 4001
CLOSE_TRY_AGAIN = 1013
CLOSE_REVOKED = 4003

FLOOD_LIMIT = 60  # frames refused in a row before the socket is closed
RESUME_MAX_EVENTS = 500  # per room; past it the room answers resync_required
RESUME_MAX_ROOMS = 1000  # per frame
RESUME_FRAME_EVENTS = 5000  # per frame, all rooms together; the rooms past it as above
RESUME_BATCH_ROOMS = 100  # rooms read in one transaction
RESUME_ROOMS_PER_SECOND = 200  # per socket, with a burst of RESUME_MAX_ROOMS
SENDS_IN_FLIGHT = 32  # per socket; past it, the next frame is read once one completes

_rate_keys = itertools.count(1)  # each socket's key of the frames rule (never reused)


Action = Callable[["ChatSocket", dict, Any], Awaitable[None]]


async def _one_done(tasks: set[asyncio.Future[None]]) -> None:
    """Until one of ``tasks`` is done."""
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)


@dataclass(frozen=True, slots=True)
class RoomRef:
    room_id: str


@dataclass(frozen=True, slots=True)
class MessageRef:
    room_id: str
    message_id: str


@dataclass(frozen=True, slots=True)
class ReactionRef:
    room_id: str
    message_id: str
    emoji: str


@dataclass(frozen=True, slots=True)
class AuthFrame:
    token: str


@dataclass(frozen=True, slots=True)
class ResumeFrame:
    rooms: dict


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
        "delivered",
        "first_live",
        "holes",
        "resuming",
        "resume_until",
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
        # Per room: the highest seq sent on this socket, and the first one sent live (the
        # live stream has no holes from there on).
        self.delivered: dict[str, int] = {}
        self.first_live: dict[str, int] = {}
        # Per room, seq ranges the hub skipped after first_live (it could not read them):
        # sent by the next resume although later seqs came live. Rare, so None until then.
        self.holes: dict[str, list[tuple[int, int]]] | None = None
        self.resuming: dict[str, list[tuple[int, bytes]]] = {}
        # The resume budget, as a leaky bucket: when the rooms resumed so far are paid off.
        self.resume_until = 0.0
        self.sending: set[asyncio.Future[None]] | None = None  # sends in flight
        self.outgoing: list[bytes] | None = None  # frames of this turn of the event loop
        self.closed = False


class Outbox:
    """Frames written to sockets during one turn of the event loop go out at its end, each
    socket's in one write: a socket that gets several frames in one turn (an event and the
    summary after it, the events of one group commit, an ack) costs one system call, not
    one per frame. One per application."""

    __slots__ = ("_due",)

    def __init__(self) -> None:
        self._due: list[ChatSocket] = []

    def due(self, socket: ChatSocket) -> None:
        if not self._due:
            asyncio.get_running_loop().call_soon(self._flush)
        self._due.append(socket)

    def _flush(self) -> None:
        due, self._due = self._due, []
        for socket in due:
            socket.write_queued()


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
        drop it.

        When nothing is queued in the stream, the bytes go straight to the socket: they
        mostly fit in its buffer at once, and skip the stream's buffer and the future of each
        write. The stream queues only what the socket did not take."""
        outgoing, self._s.outgoing = self._s.outgoing, None
        stream = self._stream
        if not outgoing or self._s.closed or stream is None:
            return
        frame = outgoing[0] if len(outgoing) == 1 else b"".join(outgoing)
        data: bytes | memoryview = frame
        if not stream.writing() and not stream.closed():
            try:
                sent = stream.socket.send(frame)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._s.closed = True
                self._abort()
                return
            if sent == len(frame):
                return
            data = memoryview(frame)[sent:]
        try:
            stream.write(data)
        except StreamBufferFullError:
            # The hub forgets the socket when its close callback runs (on_close).
            log.info("slow consumer dropped user_id=%s", self.user_id)
            self._s.closed = True
            self._abort()
        except StreamClosedError:
            self._s.closed = True

    def send_event(self, room_id: str, seq: int, frame: bytes) -> None:
        """Deliver a room event once, in seq order (held back while the room resumes)."""
        resuming = self._s.resuming.get(room_id)
        if resuming is not None:
            resuming.append((seq, frame))
            return
        if seq <= self._s.delivered.get(room_id, 0):
            return
        self._s.delivered[room_id] = seq
        self._s.first_live.setdefault(room_id, seq)
        self.send_frame(frame)

    def skipped(self, room_id: str, from_seq: int, to_seq: int) -> None:
        """Hub callback: live delivery of the room jumped over these seqs, which the next
        resume sends even though later ones already came live."""
        if room_id not in self._s.first_live:
            return  # nothing came live yet: a resume sends everything
        if self._s.holes is None:
            self._s.holes = {}
        self._s.holes.setdefault(room_id, []).append((from_seq, to_seq))

    def reply(self, frame_id: Any, result: dict[str, Any]) -> None:
        self.send_frame(encode({"type": "ack", "id": frame_id, "result": result}))

    def error(self, frame_id: Any, error: DomainError) -> None:
        frame = {
            "type": "error",
            "id": frame_id,
            "code": error.code,
            "message": error.message,
            "details": error.details,
        }
        if isinstance(error, RateLimited):
            frame["retry_after_ms"] = error.retry_after_ms
        self.send_frame(encode(frame))

    # -- reading -------------------------------------------------------------------------

    def on_message(self, raw: str | bytes) -> Awaitable[None] | None:
        """Tornado reads the socket's next frame once the awaitable answered here is done
        (at once when None is answered)."""
        if self._s.closed:
            return None
        self._s.heard = time.monotonic()
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
        action = _ACTIONS.get(kind) if isinstance(kind, str) else None
        if action is None:
            self.error(frame_id, Invalid(f"unknown frame type {kind!r}", field="type"))
            return None
        if kind != "message.send":
            return self._perform(action, frame, frame_id)
        # Sends run side by side and the next frame is read at once, so that a client's
        # burst of sends goes into one group commit, where they keep their order.
        if self._s.sending is None:
            self._s.sending = set()
        task = asyncio.ensure_future(self._perform(action, frame, frame_id))
        self._s.sending.add(task)
        task.add_done_callback(self._s.sending.discard)
        if len(self._s.sending) >= SENDS_IN_FLIGHT:
            return _one_done(self._s.sending)
        return None

    async def _perform(self, action: Action, frame: dict, frame_id: Any) -> None:
        try:
            await action(self, frame, frame_id)
        except DomainError as error:
            self.error(frame_id, error)
        except Exception:
            log.exception("frame failed type=%s user_id=%s", frame.get("type"), self.user_id)
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
        claims = self.runtime.services.accounts.tokens.decode_access(token)
        if self.principal is not None:
            if principal.session_id != self.session_id:
                self.error(frame_id, Invalid("a socket stays with the session it opened with"))
                return
            self._expire_at(claims.expires_at)
            self.reply(frame_id, {"expires_at": rfc3339(claims.expires_at * 1000)})
            return
        if self._s.closed:
            return
        self._s.principal = principal
        try:
            states = await self.runtime.services.rooms.read_states(principal.user.id)
        except DomainError:
            self._s.principal = None
            self.close_with(CLOSE_TRY_AGAIN, "the server cannot serve this socket now")
            return
        if self._s.closed:
            return
        room_seqs = self.runtime.hub.add(self, states)
        self._expire_at(claims.expires_at)
        self.send_frame(
            encode(
                {
                    "type": "ready",
                    "id": frame_id,
                    "user": user_json(principal.user, online=True, links=self.runtime.links),
                    "session_id": principal.session_id,
                    "rooms": room_seqs,
                }
            )
        )

    def _expire_at(self, expires_at: int) -> None:
        """Close with 4003 when the access token expires, unless a new ``auth`` came first."""
        if self._s.timer is not None:
            self._s.timer.cancel()
        delay = max(0.0, expires_at - time.time())
        self._s.timer = asyncio.get_running_loop().call_later(
            delay, self.close_with, CLOSE_REVOKED, "access token expired"
        )

    async def _auth(self, frame: dict, frame_id: Any) -> None:
        body = validation.parse(AuthFrame, frame)
        await self._authenticate(body.token, frame_id)

    async def _ping(self, frame: dict, frame_id: Any) -> None:
        self.send_frame(encode({"type": "pong", "id": frame_id}))

    @property
    def user(self) -> User:
        assert self.principal is not None
        return self.principal.user

    async def _send(self, frame: dict, frame_id: Any) -> None:
        room = validation.parse(RoomRef, frame)
        body = validation.parse(SendMessage, frame)
        message, _ = await self.runtime.services.messages.send(self.user, room.room_id, body)
        self.reply(frame_id, {"message": message_json(message, self.runtime.links)})

    async def _edit(self, frame: dict, frame_id: Any) -> None:
        ref = validation.parse(MessageRef, frame)
        body = validation.parse(EditMessage, frame)
        message = await self.runtime.services.messages.edit(
            self.user, ref.room_id, ref.message_id, body
        )
        self.reply(frame_id, {"message": message_json(message, self.runtime.links)})

    async def _delete(self, frame: dict, frame_id: Any) -> None:
        ref = validation.parse(MessageRef, frame)
        await self.runtime.services.messages.delete(self.user, ref.room_id, ref.message_id)
        self.reply(frame_id, {})

    async def _react(self, frame: dict, frame_id: Any, add: bool) -> None:
        ref = validation.parse(ReactionRef, frame)
        await self.runtime.services.messages.react(
            self.user, ref.room_id, ref.message_id, ref.emoji, add
        )
        self.reply(frame_id, {})

    async def _read(self, frame: dict, frame_id: Any) -> None:
        room = validation.parse(RoomRef, frame)
        body = validation.parse(MarkRead, frame)
        summary = await self.runtime.services.messages.mark_read(self.user, room.room_id, body)
        self.reply(
            frame_id,
            {"last_read_seq": summary.last_read_seq, "unread_count": summary.unread_count},
        )

    async def _typing(self, frame: dict, frame_id: Any) -> None:
        room = validation.parse(RoomRef, frame)
        await self.runtime.services.messages.typing(self.user, room.room_id)
        self.reply(frame_id, {})

    async def _resume(self, frame: dict, frame_id: Any) -> None:
        """Replay what the client missed, room by room in the order given, each room's events
        in order; then the ack. Rooms are read a batch at a time, one read transaction per
        batch, and the work is bounded per frame (rooms, events) and per second."""
        body = validation.parse(ResumeFrame, frame)
        if len(body.rooms) > RESUME_MAX_ROOMS:
            raise Invalid(f"resume at most {RESUME_MAX_ROOMS} rooms at once", field="rooms")
        for last_seq in body.rooms.values():
            if not isinstance(last_seq, int) or isinstance(last_seq, bool) or last_seq < 0:
                raise Invalid("rooms maps room ids to seqs (integers)", field="rooms")
            validation.check_int_range("rooms", last_seq)
        self._take_resume(len(body.rooms))
        outcome: dict[str, str] = {}
        budget = RESUME_FRAME_EVENTS
        asked = list(body.rooms.items())
        for start in range(0, len(asked), RESUME_BATCH_ROOMS):
            batch = dict(asked[start : start + RESUME_BATCH_ROOMS])
            budget -= await self._resume_rooms(batch, budget, outcome)
        self.reply(frame_id, {"rooms": outcome})

    def _take_resume(self, rooms: int) -> None:
        """Rooms resumed cost from a budget refilled at RESUME_ROOMS_PER_SECOND."""
        now = time.monotonic()
        until = max(now, self._s.resume_until) + rooms / RESUME_ROOMS_PER_SECOND
        excess = until - now - RESUME_MAX_ROOMS / RESUME_ROOMS_PER_SECOND
        if excess > 0:
            retry_after_ms = int(1000 * excess) + 1
            raise RateLimited("too many rooms resumed; slow down", retry_after_ms)
        self._s.resume_until = until

    async def _resume_rooms(self, after_seqs: dict[str, int], budget: int, outcome: dict) -> int:
        """One batch of a resume; answers the number of events replayed."""
        for room_id in after_seqs:
            self._s.resuming[room_id] = []
        try:
            caught = await self.runtime.services.messages.events_after_many(
                self.user, after_seqs, RESUME_MAX_EVENTS, budget
            )
        except DomainError as error:
            for room_id in after_seqs:
                outcome[room_id] = error.code
                self._flush_resumed(room_id)
            return 0
        replayed = 0
        for room_id in after_seqs:
            catch_up = caught.get(room_id)
            if catch_up is None:
                outcome[room_id] = "not_found"
            elif not catch_up.complete:
                self.send_frame(encode({"type": "resync_required", "room_id": room_id}))
                outcome[room_id] = "resync_required"
            else:
                self._replay(room_id, catch_up)
                replayed += len(catch_up.events)
                outcome[room_id] = "ok"
            self._flush_resumed(room_id)
        return replayed

    def _replay(self, room_id: str, catch_up: CatchUp) -> None:
        """Send a room's missed events, leaving out those this socket sent live (from its
        first live event up to the highest one sent, but for the holes the hub skipped)."""
        first_live = self._s.first_live.get(room_id)
        delivered = self._s.delivered.get(room_id, 0)
        holes = self._s.holes.get(room_id, []) if self._s.holes is not None else []
        for event in catch_up.events:
            seq = event.seq
            if first_live is not None and first_live <= seq <= delivered:
                if not any(start <= seq <= end for start, end in holes):
                    continue  # already sent live on this socket
            delivered = max(delivered, seq)
            self.send_frame(
                encode({"type": "event", "event": event_json(event, self.runtime.links)})
            )
        self._s.delivered[room_id] = delivered
        if holes and self._s.holes is not None:
            left = [hole for hole in holes if hole[1] > catch_up.last_seq]
            if left:
                self._s.holes[room_id] = left
            else:
                del self._s.holes[room_id]

    def _flush_resumed(self, room_id: str) -> None:
        for seq, frame in self._s.resuming.pop(room_id, []):
            self.send_event(room_id, seq, frame)


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
