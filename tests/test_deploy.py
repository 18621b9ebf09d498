"""The Dockerfile and docker-compose.yml, read as text (no Docker engine runs here)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_compose_runs_mysql_redis_and_two_workers_after_migrations() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"mysql", "redis", "migrate", "cronchat"}
    for name in ("mysql", "redis", "cronchat"):
        assert "test" in services[name]["healthcheck"], f"{name} has no health check"

    migrate, server = services["migrate"], services["cronchat"]
    assert migrate["command"] == ["migrate"]
    assert migrate["depends_on"]["mysql"]["condition"] == "service_healthy"
    assert server["command"] == ["serve", "--workers", "2"]
    assert server["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert server["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "/readyz" in " ".join(server["healthcheck"]["test"])

    env = server["environment"]
    assert (
        env["CRONCHAT_DATABASE_URL"].startswith("mysql://")
        and "@mysql:3306/" in env["CRONCHAT_DATABASE_URL"]
    )
    assert env["CRONCHAT_REDIS_URL"] == "redis://redis:6379/0"
    assert "CRONCHAT_JWT_SECRET" in env  # workers must share one secret
    assert migrate["environment"] == env


def test_dockerfile_is_small_non_root_with_the_cli_as_entrypoint() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    assert any(line.startswith("FROM python:3.11-slim") for line in lines)
    assert "USER cronchat" in lines
    assert 'ENTRYPOINT ["cronchat"]' in lines
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    for package in ("cronchat", "cli", "storage", "migrations"):
        assert f"COPY {package} ./{package}" in lines
    assert "COPY static /app/static" in lines and "CRONCHAT_STATIC_DIR=/app/static \\" in lines
