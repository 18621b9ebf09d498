"""What /proc says about this machine and about a server's processes: memory, CPU time."""

from __future__ import annotations

import os
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def machine() -> dict[str, object]:
    """nproc, the CPU model and the total memory of the machine the figures come from."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    total_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                total_kib = int(line.split()[1])
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "mem_total_mib": total_kib // 1024,
        "kernel": os.uname().release,
    }


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: split after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (a supervisor and its workers)."""
    tree = _children()
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, ()))
    return found


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory(pid: int) -> dict[str, int]:
    """RSS summed over the process tree (pages shared by forked workers count in each), and
    PSS (shared pages split between the processes that share them), in KiB."""
    pids = process_tree(pid)
    return {
        "rss_kib": sum(_status_kib(p, "VmRSS:") for p in pids),
        "pss_kib": sum(_pss_kib(p) for p in pids),
        "processes": len(pids),
    }


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of the process tree so far, in seconds."""
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def pids_named(*names: str) -> list[int]:
    """Processes whose command name is one of ``names`` (the database, the broker)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() in names:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def machine_cpu_seconds() -> dict[str, float]:
    """Busy and stolen CPU time of the whole machine so far (all cores), in seconds."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return {
        "busy": (user + nice + system + irq + softirq) / CLOCK_TICKS,
        "steal": steal / CLOCK_TICKS,
    }


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


class CpuWatch:
    """CPU used between two moments by the server, the load generator, the database and
    broker services, and everything else on the machine (other people's work: noise)."""

    SERVICES = ("mariadbd", "mysqld", "redis-server")

    def __init__(self, server_pid: int, generator_pids: list[int]) -> None:
        self.server_pid = server_pid
        self.generator_pids = generator_pids
        self.service_pids = pids_named(*self.SERVICES)
        self.before = self._read()

    def _read(self) -> dict[str, float]:
        machine_now = machine_cpu_seconds()
        return {
            "server": cpu_seconds(self.server_pid),
            **{f"generator{i}": cpu_seconds(pid) for i, pid in enumerate(self.generator_pids)},
            "services": sum(cpu_seconds(pid) for pid in self.service_pids),
            "own": cpu_seconds(os.getpid()),
            "busy": machine_now["busy"],
            "steal": machine_now["steal"],
        }

    def server_seconds(self) -> float:
        """CPU seconds the server's process tree used since the watch began."""
        return cpu_seconds(self.server_pid) - self.before["server"]

    def percent(self, wall_seconds: float) -> dict[str, float]:
        """Percent of one core over ``wall_seconds`` (200 = both cores of a 2-core machine)."""
        after = self._read()
        used = {key: after[key] - self.before[key] for key in after}
        # "own" is this process's tree: the orchestrator, the server and the generator.
        others = used["busy"] - used["own"] - used["services"]
        scale = 100.0 / wall_seconds if wall_seconds > 0 else 0.0
        return {
            "server": round(used["server"] * scale, 1),
            "generator": [
                round(used[f"generator{i}"] * scale, 1) for i in range(len(self.generator_pids))
            ],
            "database_and_broker": round(used["services"] * scale, 1),
            "other_processes": round(max(0.0, others) * scale, 1),
            "machine_busy": round(used["busy"] * scale, 1),
            "steal": round(used["steal"] * scale, 1),
        }


def wait_for_quiet(max_seconds: float, threshold: float, own_pid: int) -> tuple[float, float]:
    """Wait, up to ``max_seconds``, until other people's processes use at most
    ``threshold`` percent of a core over a 1 s sample. Answers (seconds waited, their
    last percent)."""
    started = time.monotonic()
    services = pids_named(*CpuWatch.SERVICES)
    while True:
        before_machine = machine_cpu_seconds()["busy"]
        before_own = cpu_seconds(own_pid) + sum(cpu_seconds(p) for p in services)
        time.sleep(1.0)
        busy = machine_cpu_seconds()["busy"] - before_machine
        own = cpu_seconds(own_pid) + sum(cpu_seconds(p) for p in services) - before_own
        others = max(0.0, busy - own) * 100.0
        waited = time.monotonic() - started
        if others <= threshold or waited >= max_seconds:
            return round(waited, 1), round(others, 1)


def sockets_by_process(pid: int) -> dict[int, int]:
    """Open sockets of each process of the tree (how the connections spread over workers)."""
    counts = {}
    for p in process_tree(pid):
        try:
            entries = os.listdir(f"/proc/{p}/fd")
        except OSError:
            continue
        n = 0
        for entry in entries:
            try:
                if os.readlink(f"/proc/{p}/fd/{entry}").startswith("socket:"):
                    n += 1
            except OSError:
                continue
        counts[p] = n
    return counts
