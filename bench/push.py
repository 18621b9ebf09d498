"""The push presets: pushes delivered per second to a receiver the bench runs on loopback,
with every member offline; and push devices for the members of the other presets
(``--pushers``), who stay online, so that what devices cost a fan-out is measured.

What a push preset counts: its members are in every one of its rooms, each with one push
device, none with a socket open; each message is sent (over REST) into a room of its own.
A device is owed at most one pending push per room, a later message replacing an earlier
one, so one message per room makes every push owed a push sent: a message owes one push
to each member but its sender, and ``pushes_expected`` is ``messages x (members - 1)``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import time
from array import array
from collections import Counter
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from bench import procfs
from bench.loadgen import _read_response, next_turn, stamped_text
from bench.population import CONCURRENCY, PASSWORD, Rest, _bounded
from bench.presets import Preset
from bench.push_receiver import receiver_main
from bench.servers import HOST

if TYPE_CHECKING:
    from bench.run import Options

# The server accepts http://127.0.0.1 push endpoints only with this.
ALLOW_LOOPBACK_PUSH = ("CRONCHAT_PUSH_ALLOW_PRIVATE", "true")
READY_SECONDS = 120.0
SEND_SLACK_SECONDS = 60.0
PUSH_DRAIN_MAX_SECONDS = 180.0
ONLINE_DRAIN_SECONDS = 2.0
START_DELAY_NS = 300_000_000


class PushRunFailed(Exception):
    pass


class Child:
    """A helper process of the bench (receiver or senders), steered over a pipe."""

    def __init__(self, target: Any, config: dict[str, Any]) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipe, theirs = context.Pipe()
        self.process = context.Process(target=target, args=(theirs, config), daemon=True)
        self.process.start()
        theirs.close()

    def send(self, message: dict[str, Any]) -> None:
        self.pipe.send(message)

    def gather(self, phase: str, seconds: float) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PushRunFailed(f"no {phase!r} from a bench process in time")
            if self.pipe.poll(min(left, 1.0)):
                try:
                    answer = self.pipe.recv()
                except EOFError:
                    raise PushRunFailed(f"a bench process died before {phase!r}") from None
                if answer.get("phase") != phase:
                    raise PushRunFailed(f"expected {phase!r}, got {answer!r}")
                return answer
            if not self.process.is_alive():
                raise PushRunFailed(f"a bench process died before {phase!r}")

    def close(self) -> None:
        try:
            self.pipe.send({"close": True})
        except (OSError, ValueError):
            pass
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(2)


def start_receiver(kind: str, devices: int) -> tuple[Child, list[dict[str, Any]]]:
    """The receiver process and the registrations of its ``devices`` devices."""
    receiver = Child(receiver_main, {"kind": kind, "devices": devices})
    ready = receiver.gather("ready", READY_SECONDS)
    return receiver, ready["devices"]


async def register_devices(base_url: str, tokens: list[str], devices: list[dict]) -> int:
    """Each user (by token) registers its device; answers the requests made."""
    rest = Rest(base_url)
    try:
        await _bounded(
            [
                rest.call("POST", "/users/me/push", device, token)
                for token, device in zip(tokens, devices, strict=True)
            ]
        )
        return rest.requests
    finally:
        rest.close()


async def populate_push(base_url: str, preset: Preset, devices: list[dict]) -> dict[str, Any]:
    """``preset.room_size`` users, each with a device, all members of ``preset.rooms``
    rooms (created by the first)."""
    started = time.monotonic()
    rest = Rest(base_url)
    prefix = "p" + os.urandom(3).hex()
    try:
        registered = await _bounded(
            [
                rest.call(
                    "POST", "/auth/register", {"username": f"{prefix}_{u}", "password": PASSWORD}
                )
                for u in range(preset.room_size)
            ]
        )
        tokens = [answer["access_token"] for answer in registered]
        user_ids = [answer["user"]["id"] for answer in registered]
        created = await _bounded(
            [
                rest.call(
                    "POST",
                    "/rooms",
                    {"name": f"push room {room}", "member_ids": user_ids[1:]},
                    tokens[0],
                )
                for room in range(preset.rooms)
            ],
            limit=CONCURRENCY,
        )
        requests = rest.requests
    finally:
        rest.close()
    requests += await register_devices(base_url, tokens, devices)
    return {
        "tokens": tokens,
        "room_ids": [room["id"] for room in created],
        "seconds": round(time.monotonic() - started, 2),
        "requests": requests,
    }


# -- the senders' process ----------------------------------------------------------------


class Senders:
    """Every sender's messages as ``POST /rooms/{id}/messages``, each into the next room
    of its list, ``window`` keep-alive connections per sender, one request in flight on
    each; the 201 is the ack."""

    def __init__(self, pipe: Connection, config: dict[str, Any]) -> None:
        self.pipe = pipe
        self.config = config
        self.acked = 0
        self.first_ack_ns = 0
        self.last_ack_ns = 0
        self.ack_seconds: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.stopped_by_duration = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.pipe.send({"phase": "ready"})
        command = await loop.run_in_executor(None, self.pipe.recv)
        delay = (command["start_at"] - time.monotonic_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        await asyncio.gather(
            *(
                self.connection(sender["token"], rooms, command)
                for sender in self.config["senders"]
                for rooms in [iter(sender["rooms"])]
                for _ in range(command["window"])
            )
        )
        self.pipe.send(
            {
                "phase": "sent",
                "acked": self.acked,
                "first_ack_ns": self.first_ack_ns,
                "last_ack_ns": self.last_ack_ns,
                "ack_seconds": dict(self.ack_seconds),
                "errors": dict(self.errors),
                "stopped_by_duration": self.stopped_by_duration,
            }
        )
        await loop.run_in_executor(None, self.pipe.recv)  # close

    async def connection(self, token: str, rooms: Any, command: dict[str, Any]) -> None:
        """One keep-alive connection of a sender: ``rooms`` (shared by the sender's
        connections) yields ``(number, room_id)``, the message's number and its room."""
        host, port = self.config["host"], self.config["port"]
        pace = command["pace"] / command["window"] if command["pace"] else 0.0
        padding = "x" * max(0, command["text_bytes"] - 40)
        reader, writer = await asyncio.open_connection(host, port)
        next_at = time.monotonic() + (random.random() / pace if pace else 0.0)
        try:
            for number, room_id in rooms:
                if time.monotonic_ns() >= command["stop_at"]:
                    self.stopped_by_duration += 1
                    break
                if pace:
                    next_at = await next_turn(next_at, pace)
                tag = f"p{number}"
                body = (
                    f'{{"client_msg_id":"{tag}","text":"{stamped_text(tag, number, padding)}"}}'
                ).encode()
                writer.write(
                    (
                        f"POST /api/v1/rooms/{room_id}/messages HTTP/1.1\r\n"
                        f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
                        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                    ).encode()
                    + body
                )
                status, _, answer = await _read_response(reader)
                if status in (200, 201):
                    self.on_ack(time.monotonic_ns(), command["start_at"])
                else:
                    self.errors[f"http_{status}"] += 1
        except (OSError, asyncio.IncompleteReadError) as error:
            self.errors[f"connection: {type(error).__name__}"] += 1
        finally:
            writer.close()

    def on_ack(self, now: int, start_at: int) -> None:
        self.acked += 1
        self.ack_seconds[(now - start_at) // 1_000_000_000] += 1
        if not self.first_ack_ns:
            self.first_ack_ns = now
        self.last_ack_ns = now


def senders_main(pipe: Connection, config: dict[str, Any]) -> None:
    """Entry point of the senders' process (multiprocessing, spawn)."""
    asyncio.run(Senders(pipe, config).run())


def sender_plan(preset: Preset, tokens: list[str], room_ids: list[str]) -> list[dict]:
    """Room k gets the one message of sender k % senders (users 0.. are the senders)."""
    senders = max(1, min(preset.senders, len(tokens)))
    rooms = list(enumerate(room_ids[: preset.messages]))
    return [{"token": tokens[s], "rooms": rooms[s::senders]} for s in range(senders)]


# -- one run ------------------------------------------------------------------------------


def measure_push(
    options: Options,
    server_pid: int,
    port: int,
    population: dict[str, Any],
    receiver: Child,
    say: Any,
) -> dict[str, Any]:
    """Send the preset's messages, count the pushes that reach the receiver."""
    preset = options.preset
    plan = sender_plan(preset, population["tokens"], population["room_ids"])
    senders = Child(senders_main, {"host": HOST, "port": port, "senders": plan})
    try:
        senders.gather("ready", READY_SECONDS)
        waited, others = procfs.wait_for_quiet(
            options.quiet_wait, options.quiet_threshold, os.getpid()
        )
        if waited >= 1.5:
            say(options, f"waited {waited:.0f}s for other processes to calm down (now {others}%)")
        start_at = time.monotonic_ns() + START_DELAY_NS
        cpu = procfs.CpuWatch(server_pid, [senders.process.pid, receiver.process.pid])
        load_before = procfs.load_average()
        senders.send(
            {
                "start_at": start_at,
                "stop_at": start_at + int(options.send_seconds * 1e9),
                "window": options.sender_window,
                "pace": options.pace_per_sender or 0,
                "text_bytes": options.text_bytes,
            }
        )
        sent = senders.gather("sent", options.send_seconds + SEND_SLACK_SECONDS)
        expected = sent["acked"] * (preset.room_size - 1)
        say(options, f"{sent['acked']} messages acked; waiting for {expected} pushes")
        receiver.send(
            {"expect": expected, "start_at": start_at, "drain_max_seconds": PUSH_DRAIN_MAX_SECONDS}
        )
        done = receiver.gather("done", PUSH_DRAIN_MAX_SECONDS + SEND_SLACK_SECONDS)
        finished_ns = time.monotonic_ns()
        cpu_percent = cpu.percent((finished_ns - start_at) / 1e9)
        server_cpu_seconds = cpu.server_seconds()
        memory = procfs.memory(server_pid)
    finally:
        senders.close()
    return push_figures(preset, start_at, sent, done, expected, cpu_percent, server_cpu_seconds) | {
        "server_rss_kib": memory["rss_kib"],
        "server_pss_kib": memory["pss_kib"],
        "load_average_before": load_before,
        "quiet_wait": {"seconds": waited, "other_processes_percent": others},
    }


def push_figures(
    preset: Preset,
    start_at: int,
    sent: dict[str, Any],
    done: dict[str, Any],
    expected: int,
    cpu_percent: dict[str, Any],
    server_cpu_seconds: float,
) -> dict[str, Any]:
    from bench.run import percentiles

    arrivals = array("q")
    arrivals.frombytes(done["arrival_ns"])
    ordered = sorted(arrivals)
    latencies = array("q")
    latencies.frombytes(done["latencies_us"])
    received = len(ordered)
    acked = sent["acked"]
    steady = steady_rate(ordered)
    send_seconds = (sent["last_ack_ns"] - start_at) / 1e9 if acked else 0.0
    push_seconds = (ordered[-1] - start_at) / 1e9 if ordered else 0.0
    return {
        "messages_acked": acked,
        "send_errors": sent["errors"],
        "stopped_by": "duration" if sent["stopped_by_duration"] else "messages",
        "send_seconds": round(send_seconds, 3),
        "sends_per_s": round(acked / send_seconds, 1) if send_seconds > 0 else 0.0,
        "pushes_per_message": preset.room_size - 1,
        "pushes_expected": expected,
        "pushes_received": received,
        "pushes_fraction": round(received / expected, 4) if expected else None,
        "push_seconds": round(push_seconds, 3),
        # From the first send to the last push received.
        "pushes_per_s": round(received / push_seconds, 1) if push_seconds > 0 else 0.0,
        "pushes_per_s_steady": steady,
        # The sends/s whose pushes the server keeps up with (what a paced run is given).
        "sustainable_sends_per_s": round(steady / (preset.room_size - 1), 1) if steady else None,
        "push_latency_ms": percentiles(latencies),
        "pushes_by_type": done["pushes_by_type"],
        "push_duplicates": done["duplicates"],
        "pushes_unreadable": done["unreadable"],
        "receiver_bad_requests": done["bad_requests"],
        "devices_pushed": done["devices_pushed"],
        "sends_per_s_timeline": timeline(sent["ack_seconds"]),
        "pushes_per_s_timeline": done["per_second"],
        "cpu_percent": cpu_percent,
        "server_cpu_ms_per_1k_pushes": (
            round(server_cpu_seconds * 1e6 / received, 1) if received else None
        ),
    }


def steady_rate(ordered_ns: list[int]) -> float | None:
    """Pushes/s between the 10th and the 90th percentile of arrivals: the rate once the
    pipeline is full and before it empties."""
    count = len(ordered_ns)
    if count < 20:
        return None
    low, high = count // 10, count * 9 // 10
    seconds = (ordered_ns[high] - ordered_ns[low]) / 1e9
    return round((high - low) / seconds, 1) if seconds > 0 else None


def timeline(per_second: dict[int, int]) -> list[int]:
    seconds = {int(k): v for k, v in per_second.items()}
    return [seconds.get(s, 0) for s in range(max(seconds, default=-1) + 1)]


def pushes_while_online(receiver: Child, start_at: int) -> dict[str, Any]:
    """After a run with every member online: what reached the receiver (nothing should)."""
    receiver.send({"expect": 0, "start_at": start_at, "drain_max_seconds": ONLINE_DRAIN_SECONDS})
    done = receiver.gather("done", ONLINE_DRAIN_SECONDS + SEND_SLACK_SECONDS)
    return {"requests": done["requests"], "by_type": done["pushes_by_type"]}


def register_blocking(base_url: str, tokens: list[str], devices: list[dict]) -> int:
    return asyncio.run(register_devices(base_url, tokens, devices))


def populate_push_blocking(base_url: str, preset: Preset, devices: list[dict]) -> dict[str, Any]:
    return asyncio.run(populate_push(base_url, preset, devices))
