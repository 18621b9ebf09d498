"""Prometheus metrics of one process, in a registry of its own (one per runtime)."""

from __future__ import annotations

import bisect
import os
import time
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Gauge, Histogram, Info, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LoopCounter:
    """A counter moved on the event loop only, so a plain number: prometheus_client's own
    take a lock on every ``inc`` (2 microseconds, several times per message sent)."""

    __slots__ = ("name", "documentation", "value", "created")

    def __init__(self, name: str, documentation: str) -> None:
        self.name = name
        self.documentation = documentation
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def family(self) -> Metric:
        return CounterMetricFamily(
            self.name, self.documentation, value=self.value, created=self.created
        )


class LoopHistogram:
    """A histogram observed on the event loop only (see :class:`LoopCounter`): one count
    per bucket, made cumulative when scraped."""

    __slots__ = ("name", "documentation", "bounds", "counts", "sum")

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = [float(bound) for bound in buckets]
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def family(self) -> Metric:
        cumulative, buckets = 0, []
        for bound, count in zip([*self.bounds, float("inf")], self.counts, strict=True):
            cumulative += count
            buckets.append((_bound_text(bound), cumulative))
        return HistogramMetricFamily(
            self.name,
            self.documentation,
            buckets=buckets,
            sum_value=self.sum,
        )


def _bound_text(bound: float) -> str:
    """A bucket's bound as prometheus_client writes it (``0.005``, ``1.0``, ``+Inf``)."""
    return "+Inf" if bound == float("inf") else repr(bound)


class _LoopMetrics(Collector):
    def __init__(self, metrics: Sequence[LoopCounter | LoopHistogram]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        for metric in self.metrics:
            yield metric.family()


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
        # Moved on the event loop, once or more per message: plain numbers.
        self.events_published = LoopCounter(
            "cronchat_events_published", "Room events published after commit."
        )
        self.frames_delivered = LoopCounter(
            "cronchat_event_frames_delivered", "Room event frames written to sockets."
        )
        self.send_seconds = LoopHistogram(
            "cronchat_send_seconds",
            "Message send to acknowledgement, commit included.",
            LATENCY_BUCKETS,
        )
        self.sends_per_commit = LoopHistogram(
            "cronchat_sends_per_commit",
            "Message sends committed together in one transaction (group commit).",
            (1, 2, 5, 10, 20, 50, 100, 200),
        )
        self.session_cache_hits = LoopCounter(
            "cronchat_session_cache_hits", "Requests whose session was known live from memory."
        )
        self.session_cache_misses = LoopCounter(
            "cronchat_session_cache_misses", "Requests whose session was read from the database."
        )
        self.pushes_sent = LoopCounter(
            "cronchat_pushes_sent", "Pushes a push service or gateway accepted."
        )
        self.pushes_failed = LoopCounter(
            "cronchat_pushes_failed",
            "Pushes given up: refused (4xx), their device gone (404, 410), or retried 24 hours.",
        )
        self.pushes_retried = LoopCounter(
            "cronchat_pushes_retried", "Push tries answered 429, 5xx or not at all, to be retried."
        )
        self.registry.register(
            _LoopMetrics(
                [
                    self.pushes_sent,
                    self.pushes_failed,
                    self.pushes_retried,
                    self.events_published,
                    self.frames_delivered,
                    self.send_seconds,
                    self.sends_per_commit,
                    self.session_cache_hits,
                    self.session_cache_misses,
                ]
            )
        )
        # Observed in the database threads: prometheus_client's, which take a lock.
        self.db_wait_seconds = Histogram(
            "cronchat_db_wait_seconds",
            "Time a transaction waited for a database thread.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.broker_reconnects = Gauge(
            "cronchat_broker_reconnects",
            "Times the broker subscription came back.",
            registry=self.registry,
        )

        self.pushes_waiting = Gauge(
            "cronchat_pushes_waiting",
            "Pushes owed, in the outbox (all processes), as this process last saw it.",
            registry=self.registry,
        )
        self.push_oldest_seconds = Gauge(
            "cronchat_push_oldest_seconds",
            "Age of the oldest push owed, as this process last saw it.",
            registry=self.registry,
        )

    def watch(self, sockets: Callable[[], int], broker_reconnects: Callable[[], int]) -> None:
        """Read the live gauges from their owners at scrape time."""
        self.sockets.set_function(sockets)
        self.broker_reconnects.set_function(broker_reconnects)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
