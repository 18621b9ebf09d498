"""The servers under test, each a process of its own on a free loopback port: CronChat (on
SQLite or a fresh MySQL database, one or several workers) and the bare Tornado baseline."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
REDIS_URL = os.environ.get("CRONCHAT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# A file name: the server under test (one worker) runs under cProfile and writes its
# statistics there when it stops. cProfile sees the event loop's thread only, not the
# database's.
PROFILE = os.environ.get("CRONCHAT_BENCH_PROFILE")
READY_SECONDS = 60.0
STOP_SECONDS = 15.0


class ServerError(Exception):
    """A server did not start, with the tail of its log."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _wait_ready(process: subprocess.Popen, url: str, log_path: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
    _terminate(process)
    raise ServerError(f"server did not become ready at {url}: {tail.strip()!r}")


def _pinned_to(cpu: int | None):
    """A preexec_fn that pins the child (and the workers it forks) to ``cpu``, or None."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def _terminate(process: subprocess.Popen) -> None:
    """SIGTERM, wait for the drain, then SIGKILL whatever is left of the process group."""
    if process.poll() is None:
        try:
            process.send_signal(signal.SIGTERM)
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # started with a session (group) of its own
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        pass


class MysqlDatabase:
    """A database of the run's own, created with pymysql and dropped at the end."""

    def __init__(self) -> None:
        self.name = f"cronchat_bench_{os.getpid()}_{secrets.token_hex(4)}"

    def _connect(self):
        import pymysql

        return pymysql.connect(**MYSQL, autocommit=True)

    def _execute(self, statement: str) -> None:
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            connection.close()

    def create(self) -> str:
        self._execute(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4")
        return f"mysql://{MYSQL['user']}@{MYSQL['host']}:{MYSQL['port']}/{self.name}"

    def drop(self) -> None:
        self._execute(f"DROP DATABASE IF EXISTS `{self.name}`")


# A socket may send this many frames per second (and in a burst) when the limit is lifted:
# far more than any sender here sends, so that the server, not its limit, is measured.
# CRONCHAT_RATE_LIMITS=false lifts every limit of a current server; these lift the socket's
# limit of a server from before it.
LIFTED_RATE = "1000000"
# The setup registers thousands of users and fills rooms over REST from one address: with
# the socket's limit kept (--keep-rate-limit), the REST limits are opened for it.
SETUP_RATES = {
    **{
        f"CRONCHAT_RATE_{name}": "1000000/s"
        for name in ("REGISTER", "LOGIN_ADDRESS", "REFRESH", "READS", "WRITES", "SENDS", "UPLOADS")
    },
    "CRONCHAT_RATE_PASSWORD_QUEUE": "10000",  # the setup's registrations run side by side
}


def rate_limit_configurable() -> bool:
    """Whether this server reads CRONCHAT_WS_RATE_PER_SECOND and _BURST."""
    from dataclasses import fields

    from cronchat.config import Settings

    names = {f.name for f in fields(Settings)}
    return {"ws_rate_per_second", "ws_rate_burst"} <= names


class CronchatServer:
    """``cronchat migrate`` then ``cronchat serve`` with a temp data dir, on a free port."""

    def __init__(
        self,
        database: str,
        workers: int,
        lift_rate_limit: bool,
        cpu: int | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings or {}
        self.cpu = cpu
        self.database = database
        self.workers = workers
        self.lift_rate_limit = lift_rate_limit
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.data_dir = Path(tempfile.mkdtemp(prefix="cronchat-bench-"))
        self.log_path = self.data_dir / "server.log"
        self.mysql: MysqlDatabase | None = None
        self.process: subprocess.Popen | None = None

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRONCHAT_")}
        env.update(
            CRONCHAT_HOST=HOST,
            CRONCHAT_PORT=str(self.port),
            CRONCHAT_DATA_DIR=str(self.data_dir),
            # Setup registers up to thousands of users: cheap hashes keep it short.
            CRONCHAT_ARGON2_TIME_COST="1",
            CRONCHAT_ARGON2_MEMORY_KIB="1024",
            # Tokens outlive the longest run.
            CRONCHAT_ACCESS_TOKEN_TTL="7200",
            CRONCHAT_LOG_LEVEL="WARNING",
        )
        if self.lift_rate_limit:
            env["CRONCHAT_RATE_LIMITS"] = "false"
            env["CRONCHAT_WS_RATE_PER_SECOND"] = LIFTED_RATE
            env["CRONCHAT_WS_RATE_BURST"] = LIFTED_RATE
        else:
            env.update(SETUP_RATES)
        if self.workers > 1:
            env["CRONCHAT_REDIS_URL"] = REDIS_URL
        env.update(self.settings)
        return env

    def _command(self) -> list[str]:
        if PROFILE:
            return [sys.executable, "-m", "cProfile", "-o", PROFILE, "-m", "cli.main"]
        executable = Path(sys.executable).parent / "cronchat"
        return [str(executable)] if executable.exists() else [sys.executable, "-m", "cli.main"]

    def start(self) -> None:
        database_args: list[str] = []
        if self.database == "mysql":
            self.mysql = MysqlDatabase()
            database_args = ["--database-url", self.mysql.create()]
        base = [*self._command(), "--data-dir", str(self.data_dir), *database_args]
        env = self._env()
        cwd = Path(__file__).resolve().parent.parent
        migrated = subprocess.run(
            [*base, "migrate"], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
        )
        if migrated.returncode != 0:
            raise ServerError(f"migrate failed: {migrated.stderr.strip()[-2000:]}")
        serve = [*base, "serve", "--workers", str(self.workers)]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                serve,
                env=env,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_pinned_to(self.cpu),
            )
        _wait_ready(self.process, self.url + "/readyz", self.log_path)

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def stop(self) -> None:
        try:
            if self.process is not None:
                _terminate(self.process)
        finally:
            try:
                if self.mysql is not None:
                    self.mysql.drop()
            finally:
                shutil.rmtree(self.data_dir, ignore_errors=True)


class BaselineServer:
    """bench/baseline_server.py: a bare Tornado broadcast server, one process."""

    def __init__(self, cpu: int | None = None) -> None:
        self.cpu = cpu
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.data_dir = Path(tempfile.mkdtemp(prefix="cronchat-baseline-"))
        self.log_path = self.data_dir / "baseline.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        script = Path(__file__).resolve().parent / "baseline_server.py"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(script), "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_pinned_to(self.cpu),
            )
        _wait_ready(self.process, self.url + "/healthz", self.log_path)

    def stop(self) -> None:
        try:
            if self.process is not None:
                _terminate(self.process)
        finally:
            shutil.rmtree(self.data_dir, ignore_errors=True)
