"""One benchmark run: start the server, populate it over REST, drive it with the load
generator's processes, do the same against the bare Tornado baseline, print one JSON line."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import time
from array import array
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench import procfs
from bench.loadgen import raise_file_limit, worker_main
from bench.population import populate_blocking
from bench.presets import Preset, SocketSpec, build_sockets, split
from bench.push import (
    ALLOW_LOOPBACK_PUSH,
    measure_push,
    populate_push_blocking,
    pushes_while_online,
    register_blocking,
    start_receiver,
)
from bench.servers import HOST, BaselineServer, CronchatServer, rate_limit_configurable

START_DELAY_NS = 300_000_000
PHASE_SLACK_SECONDS = 60.0
SERVER_CPU = 0
GENERATOR_CPU = 1
DRAIN_MAX_SECONDS = 30.0
IDLE_SETTLE_SECONDS = 2.0
KEPT_LIMIT_PACE = 19.0  # messages/s per sender under the server's 20 frames/s limit


class RunTimeout(Exception):
    pass


class RunFailed(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Options:
    preset: Preset
    database: str = "sqlite"
    workers: int = 1
    duration: float | None = None
    generator_processes: int = 2
    window: int | None = None  # default: the preset's
    pin: bool = False  # the server on SERVER_CPU, the generator (and this process) on GENERATOR_CPU
    send_over: str = "ws"  # or "rest"
    server_settings: tuple[tuple[str, str], ...] = ()  # CRONCHAT_* variables of the server
    text_bytes: int = 64
    keep_rate_limit: bool = False
    rate: float | None = None  # sends/s in all, paced evenly; None: as fast as acks allow
    baseline: bool = True
    # Every member registers a push device of this kind ("webpush", "gateway") pointing at
    # the bench's receiver, and stays online: what devices cost when nobody is offline.
    pushers: str | None = None
    timeout: float = 900.0
    quiet_wait: float = 10.0
    quiet_threshold: float = 25.0
    verbose: bool = True

    @property
    def sender_window(self) -> int:
        return self.window if self.window is not None else self.preset.window

    @property
    def pace_per_sender(self) -> float | None:
        """Sends/s of each sender, or None when senders go as fast as their window allows."""
        if self.rate is not None:
            return self.rate / max(1, self.preset.senders)
        return KEPT_LIMIT_PACE if self.keep_rate_limit else None

    @property
    def send_seconds(self) -> float:
        return self.duration if self.duration is not None else self.preset.duration


def say(options: Options, text: str) -> None:
    if options.verbose:
        print(f"[bench {options.preset.name}] {text}", file=sys.stderr, flush=True)


def percentiles(latencies_us: array) -> dict[str, float | None]:
    if not latencies_us:
        return {"p50": None, "p95": None, "p99": None, "p99_9": None, "max": None}
    ordered = sorted(latencies_us)
    count = len(ordered)

    def at(fraction: float) -> float:
        # Nearest rank: the smallest value with at least ``fraction`` of the samples at or below.
        index = min(count - 1, max(0, int(-(-fraction * count // 1)) - 1))
        return round(ordered[index] / 1000.0, 3)

    return {
        "p50": at(0.50),
        "p95": at(0.95),
        "p99": at(0.99),
        "p99_9": at(0.999),
        "max": round(ordered[-1] / 1000.0, 3),
    }


class Generator:
    """The load generator's processes, steered over one pipe each."""

    def __init__(self, port: int, parts: list[list[SocketSpec]], cpu: int | None) -> None:
        context = multiprocessing.get_context("spawn")
        self.parts = parts
        self.pipes = []
        self.processes = []
        for part in parts:
            ours, theirs = context.Pipe()
            config = {
                "host": HOST,
                "port": port,
                "cpu": cpu,
                "sockets": [spec.as_dict() for spec in part],
            }
            process = context.Process(target=worker_main, args=(theirs, config), daemon=True)
            process.start()
            theirs.close()
            self.pipes.append(ours)
            self.processes.append(process)

    def send(self, messages: list[dict[str, Any]] | dict[str, Any]) -> None:
        for index, pipe in enumerate(self.pipes):
            pipe.send(messages[index] if isinstance(messages, list) else messages)

    def gather(self, phase: str, seconds: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + seconds
        answers: list[dict[str, Any]] = []
        for index, pipe in enumerate(self.pipes):
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RunFailed(f"load generator {index} did not report {phase!r} in time")
                if pipe.poll(min(left, 1.0)):
                    try:
                        answer = pipe.recv()
                    except EOFError:
                        raise RunFailed(f"load generator {index} died before {phase!r}") from None
                    break
                if not self.processes[index].is_alive():
                    raise RunFailed(f"load generator {index} died before {phase!r}")
            if answer.get("phase") != phase:
                raise RunFailed(f"load generator {index}: expected {phase!r}, got {answer!r}")
            answers.append(answer)
        return answers

    def close(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send({"close": True})
            except (OSError, ValueError):
                pass
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join(2)


def drive(
    options: Options,
    server_pid: int,
    port: int,
    specs: list[SocketSpec],
    mention_frames: bool = False,
) -> dict[str, Any]:
    """Connect every socket, send, count; the figures of one server. ``mention_frames``:
    the server sends a ``mention`` frame for each room mention (the baseline does not)."""
    preset = options.preset
    memory_before = procfs.memory(server_pid)
    parts = split(specs, options.generator_processes)
    generator = Generator(port, parts, GENERATOR_CPU if options.pin else None)
    try:
        connect_started = time.monotonic()
        ready = generator.gather("ready", PHASE_SLACK_SECONDS * 5)
        connect_seconds = time.monotonic() - connect_started
        connected = sum(answer["connected"] for answer in ready)
        failures: Counter[str] = Counter()
        for answer in ready:
            failures.update(answer["connect_failures"])
        say(options, f"{connected}/{len(specs)} sockets ready in {connect_seconds:.1f}s")
        # The last connections' presence frames reach the others: let them pass.
        generator.send({"settle": True})
        settled = generator.gather("settled", PHASE_SLACK_SECONDS)
        result: dict[str, Any] = {
            "sockets_connected": connected,
            # Open sockets (clients, database, broker, listener) per server process.
            "server_sockets_by_process": list(procfs.sockets_by_process(server_pid).values()),
            "connect_seconds": round(connect_seconds, 2),
            "connect_failures": dict(failures),
            "presence_frames_at_connect": sum(answer["presence_frames"] for answer in settled),
        }
        if preset.idle:
            time.sleep(IDLE_SETTLE_SECONDS)
            memory_after = procfs.memory(server_pid)
            grown = memory_after["rss_kib"] - memory_before["rss_kib"]
            result.update(
                server_rss_before_kib=memory_before["rss_kib"],
                server_rss_kib=memory_after["rss_kib"],
                server_pss_before_kib=memory_before["pss_kib"],
                server_pss_kib=memory_after["pss_kib"],
                rss_per_idle_socket_kib=round(grown / connected, 2) if connected else None,
            )
            return result
        result.update(measure(options, generator, parts, server_pid, mention_frames))
        memory_after = procfs.memory(server_pid)
        result.update(
            server_rss_kib=memory_after["rss_kib"], server_pss_kib=memory_after["pss_kib"]
        )
        return result
    finally:
        generator.close()


def measure(
    options: Options,
    generator: Generator,
    parts: list[list[SocketSpec]],
    server_pid: int,
    mention_frames: bool,
) -> dict[str, Any]:
    waited, others = procfs.wait_for_quiet(options.quiet_wait, options.quiet_threshold, os.getpid())
    if waited >= 1.5:
        say(options, f"waited {waited:.0f}s for other processes to calm down (now {others}%)")
    start_at = time.monotonic_ns() + START_DELAY_NS
    stop_at = start_at + int(options.send_seconds * 1e9)
    cpu = procfs.CpuWatch(server_pid, [process.pid for process in generator.processes])
    load_before = procfs.load_average()
    generator.send(
        {
            "start_at": start_at,
            "stop_at": stop_at,
            "window": options.sender_window,
            "pace": options.pace_per_sender or 0,
            "text_bytes": options.text_bytes,
            "send_over": options.send_over,
            "mention_room": options.preset.mention_room,
        }
    )
    sent = generator.gather("sent", options.send_seconds + PHASE_SLACK_SECONDS)
    acked_by_room: Counter[str] = Counter()
    acked_by_user: Counter[int] = Counter()
    for answer in sent:
        acked_by_room.update(answer["acked_by_room"])
        acked_by_user.update(answer["acked_by_user"])
    acked = sum(acked_by_room.values())
    last_ack_ns = max(answer["last_ack_ns"] for answer in sent)
    # Each process should receive, per room, one event per acked message per socket it
    # runs in that room.
    expects = []
    for part in parts:
        per_room = Counter(room for spec in part for room in spec.rooms)
        expects.append(sum(acked_by_room[room] * n for room, n in per_room.items()))
    # With room mentions, each socket should also get one mention frame per acked message
    # of its room but its own user's; every process works out its own sockets' share.
    mentions = (
        {"acked_by_room": dict(acked_by_room), "acked_by_user": dict(acked_by_user)}
        if mention_frames and options.preset.mention_room
        else None
    )
    generator.send(
        [
            {"expect": n, "mentions": mentions, "drain_max_seconds": DRAIN_MAX_SECONDS}
            for n in expects
        ]
    )
    done = generator.gather("done", DRAIN_MAX_SECONDS + PHASE_SLACK_SECONDS)
    finished_ns = time.monotonic_ns()
    cpu_percent = cpu.percent((finished_ns - start_at) / 1e9)
    server_cpu_seconds = cpu.server_seconds()

    latencies = array("q")
    for answer in done:
        latencies.frombytes(answer["latencies_us"])
    received = sum(answer["received"] for answer in done)
    frames = sum(answer["frames"] for answer in done)  # all of them: events, summaries, acks
    expected = sum(expects)
    last_receive_ns = max(answer["last_receive_ns"] for answer in done)
    send_seconds = (last_ack_ns - start_at) / 1e9 if acked else 0
    deliver_seconds = (last_receive_ns - start_at) / 1e9 if received else 0
    errors: Counter[str] = Counter()
    closes: Counter[str] = Counter()
    samples: dict[str, str] = {}
    for answer in done:
        errors.update(answer["errors"])
        closes.update(answer["closes"])
        samples.update(answer["error_samples"])
    return {
        "messages_acked": acked,
        "messages_unacked": sum(answer["unacked"] for answer in sent),
        "stopped_by": "duration" if any(a["stopped_by_duration"] for a in sent) else "messages",
        "send_seconds": round(send_seconds, 3),
        "sends_per_s": round(acked / send_seconds, 1) if send_seconds > 0 else 0.0,
        "deliveries_expected": expected,
        "deliveries_received": received,
        "deliveries_per_s": round(received / deliver_seconds, 1) if deliver_seconds > 0 else 0.0,
        "delivered_fraction": (received / expected) if expected else None,
        "latency_ms": percentiles(latencies),
        "summaries_received": sum(answer["summaries"] for answer in done),
        "mention_frames_expected": sum(answer["mentions_expected"] for answer in done),
        "mention_frames_received": sum(answer["mentions"] for answer in done),
        "mention_frames_notify": sum(answer["mentions_notify"] for answer in done),
        # Sockets whose mention frames were not exactly one per message of others.
        "mention_frames_wrong_sockets": sum(answer["mention_mismatches"] for answer in done),
        "frames_received": frames,
        "frames_per_delivery": round(frames / received, 3) if received else None,
        "duplicates": sum(answer["duplicates"] for answer in done),
        "seq_gaps": sum(answer["gaps"] for answer in done),
        "errors": dict(errors),
        "error_samples": samples,
        "closes": dict(closes),
        "sockets_open_at_end": sum(answer["open_sockets"] for answer in done),
        "sends_per_s_timeline": timeline(answer["ack_seconds"] for answer in done),
        "deliveries_per_s_timeline": timeline(answer["receive_seconds"] for answer in done),
        "cpu_percent": cpu_percent,
        # What the server spent per 1,000 events delivered to a socket (CPU time, all its
        # processes, from the start of the send phase to the last delivery counted).
        "server_cpu_ms_per_1k_deliveries": (
            round(server_cpu_seconds * 1e6 / received, 1) if received else None
        ),
        "load_average_before": load_before,
        "quiet_wait": {"seconds": waited, "other_processes_percent": others},
    }


def timeline(per_process) -> list[int]:
    """Counts per whole second since the start, summed over the processes."""
    total: Counter[int] = Counter()
    for seconds in per_process:
        total.update(seconds)
    return [total.get(second, 0) for second in range(max(total, default=-1) + 1)]


def baseline_specs(preset: Preset) -> list[SocketSpec]:
    room_ids = [f"room{room}" for room in range(preset.rooms)]
    tokens = [f"user{user}:{room_ids[user // preset.room_size]}" for user in range(preset.users)]
    return build_sockets(preset, tokens, room_ids)


def run(options: Options) -> dict[str, Any]:
    """Everything of one run, as the JSON object to print."""
    preset = options.preset
    raise_file_limit(2 * preset.sockets + 4096)  # inherited by the servers we start

    def expired(signum: int, frame: object) -> None:
        raise RunTimeout(f"the run passed its {options.timeout:.0f}s timeout")

    def terminated(signum: int, frame: object) -> None:
        raise RunTimeout("the run was terminated")

    signal.signal(signal.SIGALRM, expired)
    signal.signal(signal.SIGTERM, terminated)  # so that the servers are stopped on the way out
    signal.alarm(max(1, int(options.timeout)))
    started = time.monotonic()
    lifted = not options.keep_rate_limit
    if lifted and not rate_limit_configurable():
        raise RunFailed("this server has no CRONCHAT_WS_RATE_* settings; use --keep-rate-limit")
    report: dict[str, Any] = {
        "preset": preset.name,
        "database": options.database,
        "workers": options.workers,
        "broker": "redis" if options.workers > 1 else "in-process",
        "users": preset.users,
        "rooms": preset.rooms,
        "room_size": preset.room_size,
        "sockets": preset.sockets,
        "senders": preset.senders,
        "messages_planned": preset.messages,
        "mention_room": preset.mention_room,
        "push_devices": preset.push or options.pushers,
    }
    try:
        if options.pin:
            os.sched_setaffinity(0, {GENERATOR_CPU})
        settings = dict(options.server_settings)
        if preset.push or options.pushers:
            settings.setdefault(*ALLOW_LOOPBACK_PUSH)
        server = CronchatServer(
            options.database,
            options.workers,
            lifted,
            SERVER_CPU if options.pin else None,
            settings,
        )
        say(options, f"starting cronchat ({options.database}, {options.workers} worker(s))")
        try:
            server.start()
            assert server.process is not None
            report.update(
                run_push_preset(options, server) if preset.push else run_sockets(options, server)
            )
        except Exception:
            tail = server.log_tail()
            if tail.strip():
                print(f"[bench] server log tail:\n{tail}", file=sys.stderr)
            raise
        finally:
            server.stop()
        if options.baseline and not preset.push:
            report["baseline"] = run_baseline(options)
            base = report["baseline"]
            if preset.idle:
                ours, theirs = (
                    report.get("rss_per_idle_socket_kib"),
                    base.get("rss_per_idle_socket_kib"),
                )
            else:
                ours, theirs = report.get("deliveries_per_s"), base.get("deliveries_per_s")
            report["ratio_to_baseline"] = round(ours / theirs, 3) if ours and theirs else None
    finally:
        signal.alarm(0)
    report.update(
        rate_limit="as shipped (20 frames/s per socket)" if not lifted else "lifted",
        window=None if preset.idle else options.sender_window,
        pace_per_sender=options.pace_per_sender,
        rate_target=options.rate,
        text_bytes=None if preset.idle else options.text_bytes,
        duration_cap_s=options.send_seconds if not preset.idle else None,
        generator_processes=options.generator_processes,
        send_over=None if preset.idle else ("rest" if preset.push else options.send_over),
        server_settings=dict(options.server_settings) or None,
        pinned=(
            {"server_cpu": SERVER_CPU, "generator_cpu": GENERATOR_CPU} if options.pin else None
        ),
        machine=procfs.machine(),
        wall_seconds=round(time.monotonic() - started, 1),
    )
    return report


def run_sockets(options: Options, server: CronchatServer) -> dict[str, Any]:
    """The presets of sockets: populate, connect every member, send, count deliveries (and,
    with ``--pushers``, what reached the push receiver meanwhile: nothing should)."""
    preset = options.preset
    assert server.process is not None
    population = populate_blocking(server.url, preset)
    say(
        options,
        f"{preset.users} users, {preset.rooms} rooms over REST in "
        f"{population['seconds']}s ({population['requests']} requests)",
    )
    receiver = None
    if options.pushers:
        receiver, devices = start_receiver(options.pushers, preset.users)
        register_blocking(server.url, population["tokens"], devices)
        say(options, f"{preset.users} {options.pushers} devices registered")
    try:
        specs = build_sockets(preset, population["tokens"], population["room_ids"])
        started_ns = time.monotonic_ns()
        figures = drive(options, server.process.pid, server.port, specs, mention_frames=True)
        if receiver is not None:
            figures["pushes_while_online"] = pushes_while_online(receiver, started_ns)
    finally:
        if receiver is not None:
            receiver.close()
    figures["setup_rest_seconds"] = population["seconds"]
    figures["senders_made_admins"] = population["admins"]
    return figures


def run_push_preset(options: Options, server: CronchatServer) -> dict[str, Any]:
    """A push preset: every member offline with a device at the bench's receiver."""
    preset = options.preset
    assert server.process is not None and preset.push is not None
    receiver, devices = start_receiver(preset.push, preset.users)
    try:
        population = populate_push_blocking(server.url, preset, devices)
        say(
            options,
            f"{preset.users} users with {preset.push} devices in {preset.rooms} rooms over "
            f"REST in {population['seconds']}s ({population['requests']} requests)",
        )
        figures = measure_push(options, server.process.pid, server.port, population, receiver, say)
    finally:
        receiver.close()
    figures["setup_rest_seconds"] = population["seconds"]
    return figures


def run_baseline(options: Options) -> dict[str, Any]:
    server = BaselineServer(SERVER_CPU if options.pin else None)
    say(options, "starting the bare Tornado baseline")
    server.start()
    try:
        assert server.process is not None
        figures = drive(options, server.process.pid, server.port, baseline_specs(options.preset))
    finally:
        server.stop()
    keep = (
        "sockets_connected",
        "sends_per_s",
        "deliveries_per_s",
        "delivered_fraction",
        "latency_ms",
        "server_rss_kib",
        "server_rss_before_kib",
        "rss_per_idle_socket_kib",
        "cpu_percent",
        "server_cpu_ms_per_1k_deliveries",
        "messages_acked",
        "errors",
        "closes",
    )
    return {key: figures[key] for key in keep if key in figures}


def emit(report: dict[str, Any]) -> None:
    print(json.dumps(report, separators=(",", ":")), flush=True)
