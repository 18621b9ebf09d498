"""``python -m bench``: one benchmark run, or the standard set (``--standard``, ``make bench``).

    python -m bench --preset small --database sqlite --workers 1
    python -m bench --preset idle --idle-sockets 10000
    python -m bench --preset fanout-mentions    # fanout, every message mentioning the room
    python -m bench --preset push --database mysql    # pushes/s, every member offline
    python -m bench --preset fanout --pushers webpush # every member a device, all online
    python -m bench --standard

Each run prints ONE JSON line on stdout; progress goes to stderr (none with --json-only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace

from bench.presets import PRESETS, idle_preset

# The standard set: (preset, database, workers, load). Load "max" sends as fast as acks
# allow; "half" paces the senders at half the sends/s the same configuration reached at
# "max" just before (latency at half load).
STANDARD = [
    ("small", "sqlite", 1, "max"),
    ("small", "mysql", 1, "max"),
    ("small", "mysql", 1, "half"),
    ("medium", "sqlite", 1, "max"),
    ("medium", "mysql", 1, "max"),
    ("medium", "mysql", 1, "half"),
    ("durable", "mysql", 1, "max"),
    ("fanout", "sqlite", 1, "max"),
    ("fanout-mentions", "sqlite", 1, "max"),
    ("fanout", "mysql", 1, "max"),
    ("fanout-mentions", "mysql", 1, "max"),
    ("fanout", "mysql", 2, "max"),
    ("rooms100", "sqlite", 1, "max"),
    ("medium", "mysql", 2, "max"),
    ("idle", "sqlite", 1, "max"),
    ("push", "sqlite", 1, "max"),
    ("push", "mysql", 1, "max"),
    ("push", "mysql", 1, "half"),
    ("push-gateway", "mysql", 1, "max"),
]
STANDARD_IDLE_SOCKETS = 10_000

# The pinned set (--pinned): the workload CronChat is compared with ejabberd on. The server
# on one core, the generator on the other, one send in flight per sender, rooms of 10 (and
# the room of 1,000). (preset, database, sends over, sends/s in all or None for as fast as
# acks allow).
PINNED = [
    (preset, database, over, rate)
    for database in ("mysql", "sqlite")
    for preset, over, rate in (
        ("small", "ws", None),
        ("small", "rest", None),
        ("medium", "ws", None),
        ("medium", "rest", None),
        ("medium", "ws", 800.0),
        ("fanout", "ws", 20.0),
    )
]
PINNED_MESSAGES = 1_000_000  # the duration ends each run, not a message count
PINNED_SECONDS = 15.0
PINNED_FANOUT_SECONDS = 30.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="small")
    p.add_argument("--database", choices=["sqlite", "mysql"], default="sqlite")
    p.add_argument("--workers", type=int, choices=[1, 2], default=1, help="2 implies Redis")
    p.add_argument(
        "--duration",
        type=float,
        help="cap of the send phase in seconds (default per preset); senders stop at their "
        "message count or at the cap, whichever comes first",
    )
    p.add_argument("--messages", type=int, help="override the preset's message count")
    p.add_argument("--senders", type=int, help="override the preset's sender count")
    p.add_argument("--idle-sockets", type=int, help="sockets of the idle preset (default 10000)")
    p.add_argument(
        "--generator-processes",
        type=int,
        help="load generator processes (default 2, or 1 with --pin)",
    )
    p.add_argument(
        "--window", type=int, help="unacknowledged sends per sender (default per preset)"
    )
    p.add_argument(
        "--rate",
        type=float,
        help="pace the senders at this many sends/s in all (for latency below the maximum "
        "load); by default each sends as fast as its window of unacknowledged sends allows",
    )
    p.add_argument(
        "--text-bytes", type=int, default=64, help="about how long message texts are (default 64)"
    )
    p.add_argument(
        "--keep-rate-limit",
        action="store_true",
        help="keep the server's default rate limit (20 frames/s per socket) and pace senders "
        "at 19/s (the REST limits are opened for the setup); by default "
        "CRONCHAT_RATE_LIMITS=false lifts every limit so that the server, not its limit, "
        "is measured",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=10.0,
        help="before measuring, wait up to this many seconds for other processes on the "
        "machine to use under 25%% of a core (default 10; the report says what they used)",
    )
    p.add_argument(
        "--pin",
        action="store_true",
        help="the server (all its processes) on CPU 0, the load generator on CPU 1, the "
        "database and broker unpinned; implies one generator process unless "
        "--generator-processes says otherwise",
    )
    p.add_argument(
        "--send-over",
        choices=["ws", "rest"],
        default="ws",
        help="senders send on their WebSocket (default) or with POST /rooms/{id}/messages "
        "on a keep-alive HTTP connection of their own (one request in flight)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="CRONCHAT_NAME=VALUE",
        help="a setting of the server under test (repeatable), e.g. --set CRONCHAT_DB_WRITERS=2",
    )
    p.add_argument(
        "--pushers",
        choices=["webpush", "gateway"],
        help="every member registers a push device of this kind at a receiver the bench runs "
        "(and stays online, so that nothing should be pushed): what devices cost a preset "
        "of sockets; the push presets always have them",
    )
    p.add_argument("--no-baseline", action="store_true", help="skip the bare Tornado baseline")
    p.add_argument("--timeout", type=float, default=900.0, help="hard cap of the run, seconds")
    p.add_argument("--json-only", action="store_true", help="nothing but the JSON line")
    p.add_argument("--standard", action="store_true", help="run the standard set (make bench)")
    p.add_argument(
        "--pinned",
        action="store_true",
        help="run the pinned set: --pin --window 1, rooms of 10 over WebSocket and REST, "
        "closed loop and 800 sends/s, the room of 1,000 at 20 sends/s, on MySQL and SQLite",
    )
    return p


def server_settings(pairs: list[str]) -> list[tuple[str, str]]:
    """``--set CRONCHAT_NAME=VALUE`` arguments as pairs; anything else is refused."""
    settings = []
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name.startswith("CRONCHAT_"):
            raise SystemExit(f"--set takes CRONCHAT_NAME=VALUE, not {pair!r}")
        settings.append((name, value))
    return settings


def single(args: argparse.Namespace) -> int:
    from bench.run import Options, emit, run

    preset = PRESETS[args.preset]
    if preset.idle:
        preset = idle_preset(args.idle_sockets or STANDARD_IDLE_SOCKETS)
    if args.messages is not None:
        preset = replace(preset, messages=args.messages)
    if args.senders is not None:
        preset = replace(preset, senders=args.senders)
    options = Options(
        preset=preset,
        database=args.database,
        workers=args.workers,
        duration=args.duration,
        generator_processes=args.generator_processes or (1 if args.pin else 2),
        window=args.window,
        pin=args.pin,
        send_over=args.send_over,
        server_settings=tuple(server_settings(args.set)),
        text_bytes=args.text_bytes,
        keep_rate_limit=args.keep_rate_limit,
        rate=args.rate,
        baseline=not args.no_baseline,
        pushers=args.pushers,
        timeout=args.timeout,
        quiet_wait=args.quiet_wait,
        verbose=not args.json_only,
    )
    try:
        report = run(options)
    except Exception as error:  # one JSON line even for a failed run, then a non-zero exit
        emit(
            {
                "preset": args.preset,
                "database": args.database,
                "workers": args.workers,
                "error": f"{type(error).__name__}: {error}",
            }
        )
        return 1
    emit(report)
    return 0


def standard(args: argparse.Namespace) -> int:
    """Each configuration in a process of its own; a failed one does not stop the rest."""
    failures = 0
    lines = []
    started = time.monotonic()
    reached: dict[tuple[str, str, int], float] = {}
    for preset, database, workers, load in STANDARD:
        command = set_command(args, preset, database, "--workers", str(workers))
        if preset == "idle":
            command += ["--idle-sockets", str(args.idle_sockets or STANDARD_IDLE_SOCKETS)]
        if args.keep_rate_limit:
            command.append("--keep-rate-limit")
        if args.duration is not None and preset != "idle":
            command += ["--duration", str(args.duration)]
        if args.no_baseline:
            command.append("--no-baseline")
        if load == "half":
            maximum = reached.get((preset, database, workers))
            if not maximum:
                continue  # the run at full load failed: there is no half of it
            command += ["--rate", f"{maximum / 2:.0f}"]
        line, returncode = run_in_set(command, args, preset, database, workers=workers)
        failures += returncode != 0
        lines.append(line)
        if load == "max" and returncode == 0:
            figures = json.loads(line)
            # A push preset's senders outrun its pushes: half of what the pushes keep up with.
            reached[(preset, database, workers)] = figures.get(
                "sustainable_sends_per_s", figures.get("sends_per_s", 0)
            )
    if not args.json_only:
        print(summary_table(lines), file=sys.stderr)
        print(f"standard set done in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return 1 if failures else 0


def pinned(args: argparse.Namespace) -> int:
    """The pinned set, each configuration in a process of its own."""
    failures = 0
    lines = []
    for preset, database, over, rate in PINNED:
        seconds = args.duration or (PINNED_FANOUT_SECONDS if preset == "fanout" else PINNED_SECONDS)
        command = set_command(
            args,
            preset,
            database,
            *("--pin", "--window", "1", "--send-over", over, "--duration", str(seconds)),
            "--no-baseline",
        )
        if preset != "fanout":
            command += ["--messages", str(PINNED_MESSAGES)]
        if rate is not None:
            command += ["--rate", str(rate)]
        line, returncode = run_in_set(command, args, preset, database)
        failures += returncode != 0
        lines.append(line)
    if not args.json_only:
        print(pinned_table(lines), file=sys.stderr)
    return 1 if failures else 0


def pinned_table(lines: list[str]) -> str:
    """The pinned set's figures as the Markdown table of the README."""
    rows = [
        "| workload | db | sends over | sends/s | p50 / p99 ms | server CPU ms per 1k deliveries "
        "| frames per delivery | server RSS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for line in lines:
        r = json.loads(line)
        shape = f"{r['rooms']} x {r['room_size']}, {r['senders']} senders" if "rooms" in r else ""
        load = f"at {r['rate_target']:,.0f}/s" if r.get("rate_target") else "closed loop"
        head = f"| {r['preset']} ({shape}), {load} | {r['database']} | {r.get('send_over', '')} "
        if "error" in r:
            rows.append(head + f"| {r['error']} | | | | |")
            continue
        latency = r["latency_ms"]
        rows.append(
            head + f"| {_rate(r['sends_per_s'])} | {latency['p50']:.1f} / {latency['p99']:.1f} "
            f"| {r['server_cpu_ms_per_1k_deliveries']} | {r.get('frames_per_delivery')} "
            f"| {r['server_rss_kib'] / 1024:.0f} MiB |"
        )
    return "\n".join(rows)


def set_command(args: argparse.Namespace, preset: str, database: str, *flags: str) -> list[str]:
    """The command of one run of a set: its own flags and the set's common ones."""
    command = [
        *(sys.executable, "-m", "bench", "--preset", preset, "--database", database),
        *("--timeout", str(args.timeout), "--quiet-wait", str(args.quiet_wait)),
        *flags,
    ]
    if args.json_only:
        command.append("--json-only")
    return command


def run_in_set(
    command: list[str], args: argparse.Namespace, preset: str, database: str, **shape: object
) -> tuple[str, int]:
    """Run one configuration of a set and print its line (one that says it failed, when it
    printed none)."""
    line, returncode = run_one(command, args.timeout + 60)
    if not line:
        line = json.dumps({"preset": preset, "database": database, **shape, "error": "no result"})
    print(line, flush=True)
    return line, returncode


def run_one(command: list[str], timeout: float) -> tuple[str, int]:
    """Run one configuration; past ``timeout``, SIGTERM (it stops its servers), then kill."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            out, _ = process.communicate(timeout=45)
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate()
    lines = out.strip().splitlines()
    return (lines[-1] if lines else ""), process.returncode


def summary_table(lines: list[str]) -> str:
    """The figures as the Markdown table of the README."""
    rows = [
        "| preset | db | workers | sends/s | deliveries/s | delivered | p50 / p95 / p99 / p99.9 ms "
        "| server RSS | baseline deliveries/s | ratio | others' CPU % |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for line in lines:
        r = json.loads(line)
        name = r["preset"] + (f" at {r['rate_target']:,.0f}/s" if r.get("rate_target") else "")
        head = f"| {name} | {r['database']} | {r['workers']} "
        if "error" in r:
            rows.append(head + f"| {r['error']} | | | | | | | |")
            continue
        base = r.get("baseline", {})
        rss = f"{r['server_rss_kib'] / 1024:.0f} MiB"
        if "pushes_received" in r:
            rows.append(push_row(head, r, rss))
            continue
        if r["preset"] == "idle":
            rows.append(
                f"| idle, {r['sockets_connected']:,} sockets | {r['database']} | {r['workers']} "
                f"| | | | | {rss}, {r['rss_per_idle_socket_kib']} KiB per idle socket "
                f"| {base.get('rss_per_idle_socket_kib')} KiB per idle socket "
                f"| {r.get('ratio_to_baseline')} | |"
            )
            continue
        lat = " / ".join(f"{r['latency_ms'][k]:.0f}" for k in ("p50", "p95", "p99", "p99_9"))
        # Other people's processes on the machine while each server was measured (noise).
        others = r["cpu_percent"]["other_processes"]
        base_others = base.get("cpu_percent", {}).get("other_processes", "-")
        rows.append(
            head + f"| {_rate(r['sends_per_s'])} | {_rate(r['deliveries_per_s'])} "
            f"| {r['delivered_fraction']} | {lat} | {rss} "
            f"| {base.get('deliveries_per_s', 0):,.0f} | {r.get('ratio_to_baseline')} "
            f"| {others:.0f} / {base_others:.0f} |"
        )
    return "\n".join(rows)


def push_row(head: str, r: dict, rss: str) -> str:
    """A push preset's row: pushes/s (steady) in the deliveries' column, pushes received
    over owed as delivered, latency send to push, no baseline."""
    latency = r["push_latency_ms"]
    lat = " / ".join(f"{latency[k]:.0f}" for k in ("p50", "p95", "p99", "p99_9"))
    pushes = f"{_rate(r['pushes_per_s'])} pushes/s ({_rate(r['pushes_per_s_steady'] or 0)} steady)"
    return (
        head + f"| {_rate(r['sends_per_s'])} | {pushes} | {r['pushes_fraction']} | {lat} "
        f"| {rss} | | | {r['cpu_percent']['other_processes']:.0f} |"
    )


def _rate(per_second: float) -> str:
    return f"{per_second:,.0f}" if per_second >= 100 else f"{per_second:.1f}"


def main() -> int:
    args = parser().parse_args()
    if args.standard:
        return standard(args)
    if args.pinned:
        return pinned(args)
    return single(args)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
