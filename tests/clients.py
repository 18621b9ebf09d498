"""The tests' clients of a served CronChat, and the two ways a test waits.

``ApiClient`` speaks the REST API (JSON in and out), ``WsClient`` the WebSocket API. A test
waits for a frame with :meth:`WsClient.wait_for` (and the helpers built on it), and for a
condition with :func:`eventually`. To prove that something does *not* arrive, a test sends
a marker after it and takes the frames that came before the marker
(:meth:`WsClient.frames_before`): a quiet window would pass merely because the server is slow.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

Frame = dict[str, Any]
User = dict[str, Any]  # the register body, plus ``password`` and ``token``
Fits = Callable[[Frame], bool]

_names = itertools.count(1)


def unique_name(prefix: str = "user") -> str:
    """A username no other test of this run uses."""
    return f"{prefix}{os.getpid() % 1000}_{next(_names)}"


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], timeout: float = 30, what: str = "condition"
) -> None:
    """Poll ``check`` (plain or async) until it holds, yielding to the event loop between
    tries; fails naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = check()
        if await outcome if inspect.isawaitable(outcome) else outcome:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any

    @property
    def error_code(self) -> str | None:
        return (
            self.body["error"]["code"]
            if isinstance(self.body, dict) and "error" in self.body
            else None
        )


class ApiClient:
    """A client of the served app: JSON in and out, the Bearer token added when given."""

    def __init__(self, client: AsyncHTTPClient, base_url: str) -> None:
        self.client = client
        self.base_url = base_url

    async def call(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        token: str | None = None,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            body = json.dumps(json_body)
            all_headers.setdefault("Content-Type", "application/json")
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        request = HTTPRequest(
            self.base_url + path,
            method=method,
            headers=all_headers,
            body=body,
            allow_nonstandard_methods=True,
            request_timeout=30,
        )
        response = await self.client.fetch(request, raise_error=False)
        content_type = response.headers.get("Content-Type", "")
        parsed: Any = response.body
        if response.body and "json" in content_type:
            parsed = json.loads(response.body)
        return Reply(response.code, parsed, response.headers)

    async def get(self, path: str, token: str | None = None, **kw: Any) -> Reply:
        return await self.call("GET", path, token=token, **kw)

    async def post(
        self, path: str, json_body: Any = None, token: str | None = None, **kw: Any
    ) -> Reply:
        return await self.call("POST", path, json_body, token, **kw)

    async def patch(
        self, path: str, json_body: Any = None, token: str | None = None, **kw: Any
    ) -> Reply:
        return await self.call("PATCH", path, json_body, token, **kw)

    async def put(
        self, path: str, json_body: Any = None, token: str | None = None, **kw: Any
    ) -> Reply:
        return await self.call("PUT", path, json_body, token, **kw)

    async def delete(self, path: str, token: str | None = None, **kw: Any) -> Reply:
        return await self.call("DELETE", path, token=token, **kw)

    async def register(
        self, username: str | None = None, password: str = "correct horse", **extra: Any
    ) -> User:
        """Register a fresh user; answers the register body plus ``password``."""
        username = username or unique_name()
        reply = await self.post(
            "/api/v1/auth/register", {"username": username, "password": password, **extra}
        )
        assert reply.status == 201, (
            f"register {username}: expected 201, got {reply.status} {reply.body}"
        )
        return {**reply.body, "password": password, "token": reply.body["access_token"]}

    async def group(self, owner: User, *members: User, name: str = "Team") -> dict[str, Any]:
        """A group room of ``owner`` with ``members`` in it."""
        reply = await self.post(
            "/api/v1/rooms",
            {"name": name, "member_ids": [m["user"]["id"] for m in members]},
            owner["token"],
        )
        assert reply.status == 201, f"create room: expected 201, got {reply.status} {reply.body}"
        return reply.body

    async def direct(self, user: User, peer: User) -> dict[str, Any]:
        reply = await self.post(
            "/api/v1/rooms/direct", {"user_id": peer["user"]["id"]}, user["token"]
        )
        assert reply.status in (200, 201), reply.body
        return reply.body

    async def send(self, user: User, room_id: str, text: str, **extra: Any) -> dict[str, Any]:
        body = {"client_msg_id": f"c{next(_names)}", "text": text, **extra}
        reply = await self.post(f"/api/v1/rooms/{room_id}/messages", body, user["token"])
        assert reply.status == 201, f"send: expected 201, got {reply.status} {reply.body}"
        return reply.body


def of_type(type_: str, **match: Any) -> Fits:
    """Frames of this type, with these top-level values."""
    return lambda frame: (
        frame.get("type") == type_ and all(frame.get(key) == value for key, value in match.items())
    )


def event_of(room_id: str, seq: int | None = None) -> Fits:
    """The ``event`` frames of a room (only the one of ``seq`` when given)."""
    return lambda frame: (
        frame.get("type") == "event"
        and frame["event"]["room_id"] == room_id
        and (seq is None or frame["event"]["seq"] == seq)
    )


def summary_of(frame: Frame) -> Frame | None:
    """The member's own summary a frame carries: ``room`` of a ``room.summary``, or of an
    ``event`` frame whose event moved it (None for other frames)."""
    if frame.get("type") in ("event", "room.summary"):
        return frame.get("room")
    return None


class WsClient:
    """A real WebSocket client of the served app. Frames read while waiting for another one
    stay in ``backlog``, in the order they came, for the next wait."""

    def __init__(self, connection: WebSocketClientConnection) -> None:
        self.connection = connection
        self.backlog: list[Frame] = []
        self.ready: Frame = {}
        self.close_code: int | None = None
        self._ids = itertools.count(1)

    @classmethod
    async def connect(
        cls, base_url: str, token: str | None = None, auth: str = "frame"
    ) -> WsClient:
        """Open and authenticate (by ``frame`` or by ``header``), wait for ``ready``."""
        url = base_url.replace("http://", "ws://") + "/api/v1/ws"
        headers = {"Authorization": f"Bearer {token}"} if token and auth == "header" else {}
        connection = await websocket_connect(
            HTTPRequest(url, headers=headers), max_message_size=10 * 1024 * 1024
        )
        socket = cls(connection)
        if token and auth == "frame":
            await socket.send({"type": "auth", "token": token})
        if token:
            socket.ready = await socket.expect("ready")
        return socket

    async def send(self, frame: Frame | str) -> None:
        await self.connection.write_message(frame if isinstance(frame, str) else json.dumps(frame))

    async def _read(self, timeout: float) -> Frame | None:
        raw = await asyncio.wait_for(self.connection.read_message(), timeout)
        if raw is None:
            self.close_code = self.connection.close_code
            return None
        assert isinstance(raw, str), f"expected a text frame, got {raw!r}"
        return json.loads(raw)

    async def wait_for(self, fits: Fits, what: str, timeout: float = 5) -> Frame:
        """The first frame that ``fits``, from the backlog or as it arrives; the frames read
        before it stay in the backlog. Fails naming ``what`` and what came instead."""
        for index, frame in enumerate(self.backlog):
            if fits(frame):
                return self.backlog.pop(index)
        deadline = asyncio.get_running_loop().time() + timeout
        while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                received = await self._read(remaining)
            except TimeoutError:
                break
            if received is None:
                raise AssertionError(f"socket closed ({self.close_code}) while waiting for {what}")
            if fits(received):
                return received
            self.backlog.append(received)
        raise AssertionError(f"expected {what} within {timeout} s, got only {self.backlog[-20:]}")

    async def frames_before(self, marker: Fits, what: str, timeout: float = 10) -> list[Frame]:
        """Wait for the marker frame; answer every frame that came before it (taken from the
        backlog). What was published before the marker, to be delivered, is among them."""
        await self.wait_for(marker, what, timeout)
        before, self.backlog = self.backlog, []
        return before

    async def expect(self, type_: str, timeout: float = 5, **match: Any) -> Frame:
        """The next frame of this type (and these top-level values)."""
        return await self.wait_for(of_type(type_, **match), f"a {type_} frame {match}", timeout)

    async def request(self, frame: Frame, timeout: float = 10) -> Frame:
        """Send a frame with a fresh id; answer the ack, error or pong carrying that id."""
        frame_id = f"r{next(self._ids)}"
        await self.send({**frame, "id": frame_id})

        def answers(candidate: Frame) -> bool:
            return candidate.get("id") == frame_id and candidate.get("type") in (
                "ack",
                "error",
                "pong",
            )

        return await self.wait_for(answers, f"an answer to {frame}", timeout)

    async def events(self, room_id: str, count: int, timeout: float = 10) -> list[Frame]:
        """The next ``count`` events of a room, in the order they came; other frames stay."""
        deadline = asyncio.get_running_loop().time() + timeout
        found: list[Frame] = []
        while len(found) < count:
            remaining = deadline - asyncio.get_running_loop().time()
            what = f"{count} events of {room_id} (got {len(found)})"
            found.append((await self.wait_for(event_of(room_id), what, remaining))["event"])
        return found

    async def event_frame(self, room_id: str, seq: int | None = None, timeout: float = 10) -> Frame:
        """The next whole ``event`` frame of a room (the one of ``seq`` when given): the event,
        and ``room``, the member's own summary, when the event moved it."""
        return await self.wait_for(event_of(room_id, seq), f"the event {seq} of {room_id}", timeout)

    async def summary(self, timeout: float = 10) -> Frame:
        """The next summary of the user's own view of a room, whichever frame carries it."""
        frame = await self.wait_for(
            lambda candidate: summary_of(candidate) is not None, "a summary", timeout
        )
        summary = summary_of(frame)
        assert summary is not None
        return summary

    async def closed(self, timeout: float = 10) -> int | None:
        """Read until the server closes; answer the close code."""
        deadline = asyncio.get_running_loop().time() + timeout
        while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                frame = await self._read(remaining)
            except TimeoutError:
                break
            if frame is None:
                return self.close_code
            self.backlog.append(frame)
        raise AssertionError("the server did not close the socket")

    def close(self) -> None:
        self.connection.close()
