"""Why the load generator has its own WebSocket client: CPU per received frame of
tornado.websocket's client and of bench.wsclient, receiving the same broadcast from the
baseline server (300 sockets, 300 messages, one process).

    python -m bench.client_cost
"""

from __future__ import annotations

import asyncio
import json
import time

import tornado.httpclient
import tornado.websocket

from bench.loadgen import Counters
from bench.servers import BaselineServer
from bench.wsclient import BenchSocket

SOCKETS, MESSAGES = 300, 300


def _request(port: int, token: str) -> tornado.httpclient.HTTPRequest:
    return tornado.httpclient.HTTPRequest(
        f"ws://127.0.0.1:{port}/api/v1/ws", headers={"Authorization": f"Bearer {token}"}
    )


async def _send_all(port: int) -> None:
    sender = await tornado.websocket.websocket_connect(_request(port, "sender:room0"))
    await sender.read_message()  # ready
    for number in range(MESSAGES):
        text = f"b{time.monotonic_ns()}.x {'x' * 24}"
        frame = {"type": "message.send", "id": number, "room_id": "room0", "text": text}
        await sender.write_message(json.dumps(frame))
        while not (await sender.read_message()).startswith('{"type":"ack"'):
            pass
    sender.close()


async def with_tornado(port: int) -> float:
    received = 0
    done = asyncio.Event()

    async def read(socket: tornado.websocket.WebSocketClientConnection) -> None:
        nonlocal received
        while (message := await socket.read_message()) is not None:
            if message.startswith('{"type":"event"'):
                received += 1
                if received == SOCKETS * MESSAGES:
                    done.set()

    sockets = []
    for user in range(SOCKETS):
        socket = await tornado.websocket.websocket_connect(_request(port, f"u{user}:room0"))
        await socket.read_message()
        sockets.append(socket)
    readers = [asyncio.ensure_future(read(socket)) for socket in sockets]
    started = time.process_time()
    await _send_all(port)
    await asyncio.wait_for(done.wait(), 120)
    used = time.process_time() - started
    for socket in sockets:
        socket.close()
    for reader in readers:
        reader.cancel()
    return used


async def with_bench_client(port: int) -> float:
    counters = Counters()
    loop = asyncio.get_running_loop()
    sockets = []
    for user in range(SOCKETS):
        spec = {"token": f"u{user}:room0", "index": user}
        socket = BenchSocket(spec, "127.0.0.1", port, counters)
        await loop.create_connection(lambda socket=socket: socket, "127.0.0.1", port)
        await socket.ready
        sockets.append(socket)
    started = time.process_time()
    await _send_all(port)
    while counters.received < SOCKETS * MESSAGES:
        await asyncio.sleep(0.01)
    used = time.process_time() - started
    for socket in sockets:
        socket.close()
    return used


def main() -> None:
    frames = SOCKETS * MESSAGES
    clients = (("tornado.websocket", with_tornado), ("bench.wsclient", with_bench_client))
    for name, measure in clients:
        server = BaselineServer()
        server.start()
        try:
            used = asyncio.run(measure(server.port))
        finally:
            server.stop()
        print(f"{name}: {frames} frames, {1e6 * used / frames:.1f} us of CPU per frame")


if __name__ == "__main__":
    main()
