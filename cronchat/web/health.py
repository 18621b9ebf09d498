"""Liveness, readiness and metrics: for load balancers and monitoring, no auth."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST

from cronchat.web.base import BaseHandler


class HealthHandler(BaseHandler):
    public = True

    async def get(self) -> None:
        self.write_json({"status": "ok"})


class MetricsHandler(BaseHandler):
    """Prometheus text format, this process only (each worker answers for itself)."""

    public = True

    async def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(self.runtime.metrics.exposition())


class ReadyHandler(BaseHandler):
    public = True

    async def get(self) -> None:
        checks = await self.runtime.readiness()
        ready = all(checks.values())
        self.write_json(
            {"status": "ready" if ready else "unavailable", "checks": checks},
            status=200 if ready else 503,
        )
