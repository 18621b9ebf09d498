"""The read path of sockets: client frames taken from whatever one read of the connection
brought, instead of three or four reads of the stream per frame.

Tornado's protocol reads each frame with a read of its header, of its extended length, of
its mask and of its payload, each a future of the stream; and since the first of them
leaves the rest of the frame in the stream's buffer, the stream stops listening to the
socket after every frame and starts again for the next one (two ``epoll_ctl`` calls). Here
one partial read takes all the socket holds; the frames in it are parsed from those bytes,
and the stream, left with an empty buffer, keeps listening. What a frame means (a message,
a ping, a close) is still Tornado's to handle, unchanged.
"""

from __future__ import annotations

import asyncio
import struct

from tornado.iostream import StreamClosedError
from tornado.util import _websocket_mask
from tornado.websocket import WebSocketProtocol13

READ_SIZE = 64 * 1024  # at most this much per read of the connection
# Yield to the event loop after this much work in a row (as Tornado does): a frame counts
# as 1 KiB besides its bytes.
YIELD_THRESHOLD = 256 * 1024
FRAME_COST = 1024

_FIN = 0x80
_RSV = 0x70
_OPCODE = 0x0F
_MASKED = 0x80
_LENGTH = 0x7F
_CONTROL = 0x8
_CONTINUATION = 0x0


class Incomplete(Exception):
    """The buffer ends inside a frame: wait for more bytes."""


class BufferedProtocol(WebSocketProtocol13):
    """RFC 6455 as Tornado speaks it, with a read loop that parses frames from each read's
    bytes. Compressed connections keep Tornado's own loop (CronChat negotiates none)."""

    _first_opcode = 0  # the opcode of the fragmented message being put together

    async def _receive_frame_loop(self) -> None:
        if self._decompressor is not None:
            await super()._receive_frame_loop()
            return
        # Bytes read that do not make a whole frame yet: a bytearray, so that a frame that
        # trickles in costs appends, not a copy of what came before at each arrival.
        pending = bytearray()
        work = 0
        try:
            while not self.client_terminated:
                chunk = await self.stream.read_bytes(READ_SIZE, partial=True)
                self._wire_bytes_in += len(chunk)
                data: bytes | bytearray = chunk
                if pending:
                    pending += chunk
                    data = pending
                offset = 0
                while offset < len(data) and not self.client_terminated:
                    try:
                        offset, handled = self._take_frame(data, offset)
                    except Incomplete:
                        break
                    if handled is not None:
                        await handled
                    work += FRAME_COST
                if data is pending:
                    del pending[:offset]
                elif offset < len(data):
                    pending += data[offset:]
                work += len(chunk)
                if work >= YIELD_THRESHOLD:
                    work = 0
                    await asyncio.sleep(0)
        except StreamClosedError:
            self._abort()
        finally:
            self.handler.on_ws_connection_close(self.close_code, self.close_reason)

    def _take_frame(
        self, data: bytes | bytearray, offset: int
    ) -> tuple[int, asyncio.Future[None] | None]:
        """Parse the frame at ``offset`` and hand it on; answers where the next one starts,
        and the future of the handler when it asked to be awaited. Raises Incomplete when
        the frame is not all there; checks the length before the payload has arrived, so
        that a frame over the limit is refused before it is buffered."""
        end = len(data)
        if end - offset < 2:
            raise Incomplete
        header, second = data[offset], data[offset + 1]
        opcode = header & _OPCODE
        is_control = opcode & _CONTROL
        length = second & _LENGTH
        if header & _RSV or (is_control and length >= 126):
            self._abort()  # an undefined extension, or a control frame too long
            return end, None
        position = offset + 2
        if length == 126:
            if end - position < 2:
                raise Incomplete
            (length,) = struct.unpack_from("!H", data, position)
            position += 2
        elif length == 127:
            if end - position < 8:
                raise Incomplete
            (length,) = struct.unpack_from("!Q", data, position)
            position += 8
        fragments = self._fragmented_message_buffer
        if length + (len(fragments) if fragments is not None else 0) > (
            self.params.max_message_size
        ):
            self.close(1009, "message too big")
            self._abort()
            return end, None
        mask = None
        if second & _MASKED:
            if end - position < 4:
                raise Incomplete
            mask = bytes(data[position : position + 4])
            position += 4
        if end - position < length:
            raise Incomplete
        payload = bytes(data[position : position + length])
        if mask is not None:
            payload = _websocket_mask(mask, payload)
        return position + length, self._on_frame(header & _FIN, opcode, payload)

    def _on_frame(self, is_final: int, opcode: int, payload: bytes) -> asyncio.Future[None] | None:
        """Fragments put together as Tornado does; a whole message to Tornado's handling."""
        if opcode & _CONTROL:
            if not is_final:
                self._abort()  # control frames are never fragmented
                return None
        elif opcode == _CONTINUATION:
            if self._fragmented_message_buffer is None:
                self._abort()  # nothing to continue
                return None
            self._fragmented_message_buffer.extend(payload)
            if not is_final:
                return None
            opcode = self._first_opcode
            payload = bytes(self._fragmented_message_buffer)
            self._fragmented_message_buffer = None
        else:
            if self._fragmented_message_buffer is not None:
                self._abort()  # a new message before the last one was finished
                return None
            if not is_final:
                self._first_opcode = opcode
                self._fragmented_message_buffer = bytearray(payload)
                return None
        return self._handle_message(opcode, payload)
