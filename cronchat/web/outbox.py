"""The write path of sockets: the frames of one turn of the event loop leave together, in
one write per socket, straight to the socket when its stream has nothing queued."""

from __future__ import annotations

import asyncio
import enum
from typing import Protocol

from tornado.iostream import IOStream, StreamBufferFullError, StreamClosedError


class Queued(Protocol):
    def write_queued(self) -> None: ...


# Sockets due in one turn past which the first of them are written at once: a fan-out to a
# large room starts reaching its members (and their clients start reading) while the rest
# of its frames are still being built, instead of after the last one.
FLUSH_EVERY = 64


class Outbox:
    """Frames written to sockets during one turn of the event loop go out at its end, each
    socket's in one write: a socket that gets several frames in one turn (the events of
    one group commit, an ack) costs one system call, not one per frame. In a turn that
    reaches many sockets, every ``FLUSH_EVERY`` of them are written as they fill up. One
    per application."""

    __slots__ = ("_due", "_scheduled")

    def __init__(self) -> None:
        self._due: list[Queued] = []
        self._scheduled = False

    def due(self, socket: Queued) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._end_of_turn)
        self._due.append(socket)
        if len(self._due) >= FLUSH_EVERY:
            self._flush()

    def _end_of_turn(self) -> None:
        self._scheduled = False
        self._flush()

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
