"""One load-generator process: its share of the sockets, on one asyncio loop.

The orchestrator (bench.run) starts several of these and steers them over a pipe:

    orchestrator -> worker   worker -> orchestrator
                             {"phase": "ready"}   sockets connected, authenticated, quiet
    {"settle": true}
                             {"phase": "settled"} quiet again, now that all are connected
    {"start_at": ns, ...}
                             {"phase": "sent"}    senders done (acked, refused, out of time)
    {"expect": n, ...}
                             {"phase": "done"}    n deliveries counted, or the drain timed out
    {"close": true}          (closes its sockets, exits)

Times are ``time.monotonic_ns()``, one clock for every process of the machine, so that
the send time a sender writes into a message's text is comparable with the receive
time in another process.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import time
from array import array
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

from bench.wsclient import BenchSocket

CONNECT_CONCURRENCY = 64
CONNECT_ATTEMPTS = 3
READY_SECONDS = 120.0
QUIET_SECONDS = 0.5
QUIET_MAX_SECONDS = 30.0
ACK_GRACE_SECONDS = 10.0
DRAIN_IDLE_SECONDS = 5.0
TEXT_PAD = "x"
# Appended to a send's fields when every message mentions its room.
MENTION_ROOM = ',"mentions":{"user_ids":[],"room":true}'


class Counters:
    """What all sockets of this process saw."""

    def __init__(self) -> None:
        self.latencies_us = array("q")
        self.received = 0
        self.first_receive_ns = 0
        self.last_receive_ns = 0
        self.acked = 0
        self.first_ack_ns = 0
        self.last_ack_ns = 0
        self.summaries = 0  # room.summary frames, and summaries inside event frames
        self.mentions = 0  # mention frames
        self.mentions_notify = 0  # of which with "notify": true
        self.frames = 0  # every text frame, from the start of the send phase on
        self.presence = 0
        self.other_events = 0
        self.other_frames = 0
        self.duplicates = 0
        self.gaps = 0
        self.handshake_failures = 0
        self.errors: Counter[str] = Counter()
        self.error_samples: dict[str, str] = {}
        self.closes: Counter[int] = Counter()
        self.start_at = 0
        # Acks and deliveries per second since the start, for the timelines of the report.
        self.ack_seconds: Counter[int] = Counter()
        self.receive_seconds: Counter[int] = Counter()

    def on_bench_event(self, latency_ns: int, now: int) -> None:
        self.received += 1
        self.latencies_us.append(latency_ns // 1000)
        self.receive_seconds[(now - self.start_at) // 1_000_000_000] += 1
        if not self.first_receive_ns:
            self.first_receive_ns = now
        self.last_receive_ns = now

    def on_ack(self, now: int) -> None:
        self.acked += 1
        self.ack_seconds[(now - self.start_at) // 1_000_000_000] += 1
        if not self.first_ack_ns:
            self.first_ack_ns = now
        self.last_ack_ns = now

    def count_error(self, code: str, message: str) -> None:
        self.errors[code] += 1
        self.error_samples.setdefault(code, message[:200])

    def count_close(self, code: int) -> None:
        self.closes[code] += 1


def raise_file_limit(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Worker:
    def __init__(self, pipe: Connection, config: dict[str, Any]) -> None:
        self.pipe = pipe
        self.config = config
        self.host = config["host"]
        self.port = config["port"]
        self.counters = Counters()
        self.sockets: list[BenchSocket] = []
        self.connect_failures: Counter[str] = Counter()
        self.stopped_by_duration = 0
        self.unacked_at_end = 0
        self.cpu_before = time.process_time()

    async def receive(self) -> dict[str, Any]:
        return await asyncio.get_running_loop().run_in_executor(None, self.pipe.recv)

    async def run(self) -> None:
        started = time.monotonic()
        await self.connect_all()
        await self.wait_quiet()
        self.pipe.send(
            {
                "phase": "ready",
                "sockets": len(self.config["sockets"]),
                "connected": len(self.sockets),
                "connect_failures": dict(self.connect_failures),
                "connect_seconds": round(time.monotonic() - started, 2),
                "presence_frames": self.counters.presence,
            }
        )
        while True:
            command = await self.receive()
            if command.get("settle"):
                await self.wait_quiet()
                self.pipe.send({"phase": "settled", "presence_frames": self.counters.presence})
            elif "start_at" in command:
                await self.send_phase(command)
            elif "expect" in command:
                await self.drain(command)
            elif command.get("close"):
                break
        for socket in self.sockets:
            socket.close()
        await asyncio.sleep(0.2)

    # -- connecting ----------------------------------------------------------------------

    async def connect_all(self) -> None:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def connect(spec: dict[str, Any]) -> None:
            async with gate:
                for attempt in range(CONNECT_ATTEMPTS):
                    socket = await self.connect_one(spec)
                    if socket is not None:
                        self.sockets.append(socket)
                        return
                    await asyncio.sleep(0.2 * (attempt + 1))

        await asyncio.gather(*(connect(spec) for spec in self.config["sockets"]))

    async def connect_one(self, spec: dict[str, Any]) -> BenchSocket | None:
        loop = asyncio.get_running_loop()
        socket = BenchSocket(spec, self.host, self.port, self.counters)
        try:
            await loop.create_connection(lambda: socket, self.host, self.port)
            await asyncio.wait_for(asyncio.shield(socket.ready), READY_SECONDS)
            return socket
        except (OSError, TimeoutError, ConnectionError) as error:
            self.connect_failures[f"{type(error).__name__}: {error}"[:120]] += 1
            if socket.transport is not None:
                socket.transport.abort()
            if not socket.ready.done():
                socket.ready.cancel()
            return None

    async def wait_quiet(self) -> None:
        """Let presence frames of the connection storm pass before anything is measured."""
        deadline = time.monotonic() + QUIET_MAX_SECONDS
        last = -1
        while time.monotonic() < deadline:
            seen = self.counters.presence + self.counters.other_frames
            if seen == last:
                return
            last = seen
            await asyncio.sleep(QUIET_SECONDS)

    # -- sending -------------------------------------------------------------------------

    async def send_phase(self, command: dict[str, Any]) -> None:
        start_at, stop_at = command["start_at"], command["stop_at"]
        self.counters.latencies_us = array("q")
        self.counters.start_at = start_at
        self.counters.frames = 0
        self.counters.mentions = self.counters.mentions_notify = 0
        self.cpu_before = time.process_time()
        delay = (start_at - time.monotonic_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        senders = [socket for socket in self.sockets if socket.spec["quota"]]
        run = self.run_rest_sender if command["send_over"] == "rest" else self.run_sender
        await asyncio.gather(*(run(socket, command, stop_at) for socket in senders))
        acked_by_room: Counter[str] = Counter()
        acked_by_user: Counter[int] = Counter()
        for socket in senders:
            acked_by_room[socket.spec["send_room"]] += socket.acked
            acked_by_user[socket.spec["user"]] += socket.acked
        self.pipe.send(
            {
                "phase": "sent",
                "acked_by_room": dict(acked_by_room),
                "acked_by_user": dict(acked_by_user),
                "stopped_by_duration": self.stopped_by_duration,
                "unacked": self.unacked_at_end,
                "first_ack_ns": self.counters.first_ack_ns,
                "last_ack_ns": self.counters.last_ack_ns,
            }
        )

    async def run_sender(self, socket: BenchSocket, command: dict[str, Any], stop_at: int) -> None:
        window = command["window"]
        pace = command["pace"]  # messages/s per sender, 0: as fast as the window allows
        padding = TEXT_PAD * max(0, command["text_bytes"] - 40)
        socket.window = asyncio.Semaphore(window)
        room_id = socket.spec["send_room"]
        tag = f"s{socket.spec['index']}"
        mentions = MENTION_ROOM if command["mention_room"] else ""
        # Paced senders start at random points of their period, so that their sends spread
        # evenly instead of arriving all at once.
        next_at = time.monotonic() + (random.random() / pace if pace else 0.0)
        for number in range(1, socket.spec["quota"] + 1):
            await socket.window.acquire()
            if time.monotonic_ns() >= stop_at:
                self.stopped_by_duration += 1
                socket.window.release()
                break
            if socket.transport is None or socket.transport.is_closing():
                socket.window.release()
                break
            if pace:
                next_at = await next_turn(next_at, pace)
            text = stamped_text(tag, number, padding)
            frame = (
                f'{{"type":"message.send","id":{number},"room_id":"{room_id}",'
                f'"client_msg_id":"{tag}-{number}","text":"{text}"{mentions}}}'
            ).encode()
            socket.unacked[number] = frame
            socket.all_acked.clear()
            socket.send_text(frame)
        if socket.unacked:
            try:
                remaining = max(0.0, (stop_at - time.monotonic_ns()) / 1e9)
                await asyncio.wait_for(socket.all_acked.wait(), remaining + ACK_GRACE_SECONDS)
            except TimeoutError:
                self.unacked_at_end += len(socket.unacked)

    async def run_rest_sender(
        self, socket: BenchSocket, command: dict[str, Any], stop_at: int
    ) -> None:
        """The sender's messages as ``POST /rooms/{id}/messages``: ``window`` keep-alive
        connections of its own, one request in flight on each; the 201 is the ack. Its
        WebSocket still receives the events, as every member's does."""
        quota = iter(range(1, socket.spec["quota"] + 1))
        await asyncio.gather(
            *(
                self._rest_connection(socket, command, stop_at, quota)
                for _ in range(command["window"])
            )
        )

    async def _rest_connection(
        self, socket: BenchSocket, command: dict[str, Any], stop_at: int, quota: Any
    ) -> None:
        pace = command["pace"] / command["window"] if command["pace"] else 0.0
        padding = TEXT_PAD * max(0, command["text_bytes"] - 40)
        room_id = socket.spec["send_room"]
        tag = f"s{socket.spec['index']}"
        mentions = MENTION_ROOM if command["mention_room"] else ""
        head = (
            f"POST /api/v1/rooms/{room_id}/messages HTTP/1.1\r\n"
            f"Host: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {socket.spec['token']}\r\n"
            "Content-Type: application/json\r\n"
        ).encode()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        next_at = time.monotonic() + (random.random() / pace if pace else 0.0)
        try:
            for number in quota:
                if time.monotonic_ns() >= stop_at:
                    self.stopped_by_duration += 1
                    break
                if pace:
                    next_at = await next_turn(next_at, pace)
                text = stamped_text(tag, number, padding)
                body = f'{{"client_msg_id":"{tag}-{number}","text":"{text}"{mentions}}}'.encode()
                request = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
                while True:
                    writer.write(request)
                    status, headers, answer = await _read_response(reader)
                    if status != 429:
                        break
                    await asyncio.sleep(float(headers.get(b"retry-after", b"1")))
                if status in (200, 201):
                    socket.acked += 1
                    self.counters.on_ack(time.monotonic_ns())
                else:
                    try:
                        error = json.loads(answer)["error"]
                        self.counters.count_error(error["code"], error.get("message", ""))
                    except (ValueError, KeyError, TypeError):
                        self.counters.count_error(f"http_{status}", answer[:200].decode("replace"))
        except (OSError, asyncio.IncompleteReadError) as error:
            self.counters.count_error("connection", f"{type(error).__name__}: {error}")
        finally:
            writer.close()

    # -- draining ------------------------------------------------------------------------

    async def drain(self, command: dict[str, Any]) -> None:
        """Wait for the deliveries (and mention frames) this process should get, while they
        keep coming."""
        counters = self.counters
        expected = command["expect"]
        mentions_of = self.mentions_expected(command["mentions"])
        expected_mentions = sum(mentions_of.values())
        hard_stop = time.monotonic() + command["drain_max_seconds"]
        last_count, last_progress = -1, time.monotonic()
        while (
            counters.received < expected or counters.mentions < expected_mentions
        ) and time.monotonic() < hard_stop:
            count = counters.received + counters.mentions
            if count != last_count:
                last_count, last_progress = count, time.monotonic()
            elif time.monotonic() - last_progress > DRAIN_IDLE_SECONDS:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # duplicates, if any, show up right behind
        self.pipe.send(
            {
                "phase": "done",
                "received": counters.received,
                "expected": expected,
                "first_receive_ns": counters.first_receive_ns,
                "last_receive_ns": counters.last_receive_ns,
                "summaries": counters.summaries,
                "mentions": counters.mentions,
                "mentions_expected": expected_mentions,
                "mentions_notify": counters.mentions_notify,
                # Sockets that did not get exactly one mention frame per message of others.
                "mention_mismatches": sum(
                    1 for socket in self.sockets if socket.mentions != mentions_of[socket]
                ),
                "frames": counters.frames,
                "other_events": counters.other_events,
                "other_frames": counters.other_frames,
                "duplicates": counters.duplicates,
                "gaps": counters.gaps,
                "errors": dict(counters.errors),
                "error_samples": counters.error_samples,
                "closes": {str(code): n for code, n in counters.closes.items()},
                "open_sockets": sum(
                    1 for s in self.sockets if s.transport and not s.transport.is_closing()
                ),
                "cpu_seconds": round(time.process_time() - self.cpu_before, 3),
                "ack_seconds": dict(counters.ack_seconds),
                "receive_seconds": dict(counters.receive_seconds),
                "latencies_us": counters.latencies_us.tobytes(),
            }
        )

    def mentions_expected(self, plan: dict[str, Any] | None) -> dict[BenchSocket, int]:
        """Mention frames each socket should have: one per acked message of its rooms, but
        its own user's (``plan`` is None when the messages mention nobody)."""
        if plan is None:
            return {socket: 0 for socket in self.sockets}
        by_room, by_user = plan["acked_by_room"], plan["acked_by_user"]
        return {
            socket: sum(by_room.get(room, 0) for room in socket.spec["rooms"])
            - by_user.get(socket.spec["user"], 0)
            for socket in self.sockets
        }


async def next_turn(last_at: float, pace: float) -> float:
    """A paced sender's wait for its next send, due 1/pace after the last; answers when."""
    due = last_at + 1.0 / pace
    wait = due - time.monotonic()
    if wait > 0:
        await asyncio.sleep(wait)
    return due


def stamped_text(tag: str, number: int, padding: str) -> str:
    """A message text that carries its send time, for the receivers' latency."""
    return f"b{time.monotonic_ns()}.{tag}n{number} {padding}"


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    """One HTTP/1.1 response with a Content-Length body: status, headers, body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name:
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return status, headers, body


def worker_main(pipe: Connection, config: dict[str, Any]) -> None:
    """Entry point of a load-generator process (multiprocessing, spawn)."""
    if config.get("cpu") is not None:
        os.sched_setaffinity(0, {config["cpu"]})
    raise_file_limit(len(config["sockets"]) + 1024)
    asyncio.run(Worker(pipe, config).run())
