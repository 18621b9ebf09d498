"""``cronchat serve``: bind, serve, and drain on SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
import time

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from cronchat.config import ConfigError, Settings
from cronchat.runtime import Runtime
from cronchat.web.app import make_app, server_options

log = logging.getLogger("cronchat.serve")

CLOSE_GOING_AWAY = 1001
DRAIN_SECONDS = 10.0


def run_server(settings: Settings) -> None:
    """Check the schema and the media store, bind the port, then serve until SIGTERM or
    SIGINT."""
    Runtime.preflight(settings)
    sys.setswitchinterval(settings.switch_interval_us / 1e6)
    try:
        sockets = bind_sockets(settings.port, settings.host, family=socket.AF_INET)
    except OSError as error:
        raise ConfigError(
            f"cannot listen on {settings.host}:{settings.port}: {error.strerror or error}"
        ) from None
    logging.getLogger().setLevel(settings.log_level)
    if settings.workers == 1:
        asyncio.run(_serve(settings, sockets))
    else:
        Supervisor(settings, sockets).run()


class Supervisor:
    """``--workers N``: N processes share the bound port. A worker that dies is started
    again; SIGTERM or SIGINT is passed on to every worker, which drain and exit."""

    def __init__(self, settings: Settings, sockets: list[socket.socket]) -> None:
        self.settings = settings
        self.sockets = sockets
        self.workers: dict[int, int] = {}  # pid -> worker number
        self.stopping = False

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for number in range(self.settings.workers):
            self._start(number)
        while self.workers:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            dead = self.workers.pop(pid, None)
            if dead is None or self.stopping:
                continue
            log.warning("worker %d (pid %d) died status=%d; starting it again", dead, pid, status)
            time.sleep(0.2)
            self._start(dead)

    def _start(self, number: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                asyncio.run(_serve(self.settings, self.sockets, worker=number))
            except BaseException:
                log.exception("worker %d failed", number)
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        self.workers[pid] = number
        log.info("worker %d started pid=%d", number, pid)

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True
        for pid in list(self.workers):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


async def _serve(settings: Settings, sockets: list[socket.socket], worker: int = 0) -> None:
    runtime = Runtime(settings, worker)
    await runtime.start()
    server = HTTPServer(make_app(runtime), **server_options(settings))
    server.add_sockets(sockets)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    port = sockets[0].getsockname()[1]
    log.info(
        "serving host=%s port=%d worker=%d database=%s",
        settings.host,
        port,
        worker,
        settings.database.describe(),
    )
    # Everything allocated so far lives as long as the process: keep it out of GC passes.
    gc.collect()
    gc.freeze()
    await stop.wait()
    log.info("shutting down: closing sockets and draining requests")
    server.stop()
    runtime.hub.close_all(CLOSE_GOING_AWAY, "server shutting down")
    try:
        await asyncio.wait_for(server.close_all_connections(), DRAIN_SECONDS)
    except TimeoutError:
        log.warning("drain deadline passed; exiting with requests in flight")
    await runtime.close()
