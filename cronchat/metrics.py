"""Prometheus metrics of one process, in a registry of its own (one per runtime)."""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self, worker: int = 0) -> None:
        self.registry = CollectorRegistry()
        Info("cronchat_worker", "This process.", registry=self.registry).info(
            {"worker": str(worker), "pid": str(os.getpid())}
        )
        self.sockets = Gauge(
            "cronchat_websocket_connections",
            "Open, authenticated WebSockets.",
            registry=self.registry,
        )
        self.events_published = Counter(
            "cronchat_events_published",
            "Room events published after commit.",
            registry=self.registry,
        )
        self.frames_delivered = Counter(
            "cronchat_event_frames_delivered",
            "Room event frames written to sockets.",
            registry=self.registry,
        )
        self.send_seconds = Histogram(
            "cronchat_send_seconds",
            "Message send to acknowledgement, commit included.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.db_wait_seconds = Histogram(
            "cronchat_db_wait_seconds",
            "Time a transaction waited for a database thread.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.sends_per_commit = Histogram(
            "cronchat_sends_per_commit",
            "Message sends committed together in one transaction (group commit).",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200),
            registry=self.registry,
        )
        self.session_cache_hits = Counter(
            "cronchat_session_cache_hits",
            "Requests whose session was known live from memory.",
            registry=self.registry,
        )
        self.session_cache_misses = Counter(
            "cronchat_session_cache_misses",
            "Requests whose session was read from the database.",
            registry=self.registry,
        )
        self.broker_reconnects = Gauge(
            "cronchat_broker_reconnects",
            "Times the broker subscription came back.",
            registry=self.registry,
        )

    def watch(self, sockets: Callable[[], int], broker_reconnects: Callable[[], int]) -> None:
        """Read the live gauges from their owners at scrape time."""
        self.sockets.set_function(sockets)
        self.broker_reconnects.set_function(broker_reconnects)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
