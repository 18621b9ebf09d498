"""The write path of sockets: the frames of one turn of the event loop leave together, in
one write per socket, straight to the socket when its stream has nothing queued."""

from __future__ import annotations

import asyncio
import enum
from typing import Protocol

from tornado.iostream import IOStream, StreamBufferFullError, StreamClosedError


class Queued(Protocol):
    def write_queued(self) -> None: ...


class Outbox:
    """Frames written to sockets during one turn of the event loop go out at its end, each
    socket's in one write: a socket that gets several frames in one turn (the events of
    one group commit, an ack) costs one system call, not one per frame. One per
    application."""

    __slots__ = ("_due",)

    def __init__(self) -> None:
        self._due: list[Queued] = []

    def due(self, socket: Queued) -> None:
        if not self._due:
            asyncio.get_running_loop().call_soon(self._flush)
        self._due.append(socket)

    def _flush(self) -> None:
        due, self._due = self._due, []
        for socket in due:
            socket.write_queued()


class Written(enum.Enum):
    SENT = "sent"  # on its way: written to the socket or queued in the stream
    CLOSED = "closed"  # the stream was closed already
    FAILED = "failed"  # the socket failed: abort the connection
    FULL = "full"  # the stream's bounded buffer is full, the client stopped reading


def write_frames(stream: IOStream, frames: list[bytes]) -> Written:
    """Write frames at once. When nothing is queued in the stream, the bytes go straight
    to the socket: they mostly fit in its buffer at once, and skip the stream's buffer and
    the future of each write. The stream queues only what the socket did not take."""
    frame = frames[0] if len(frames) == 1 else b"".join(frames)
    data: bytes | memoryview = frame
    if not stream.writing() and not stream.closed():
        try:
            sent = stream.socket.send(frame)
        except BlockingIOError:
            sent = 0
        except OSError:
            return Written.FAILED
        if sent == len(frame):
            return Written.SENT
        data = memoryview(frame)[sent:]
    try:
        stream.write(data)
    except StreamBufferFullError:
        return Written.FULL
    except StreamClosedError:
        return Written.CLOSED
    return Written.SENT
