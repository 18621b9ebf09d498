"""The ``cronchat`` command: serve, migrate, and administer users and rooms."""

from __future__ import annotations

from typing import Any

import click

from cli import audit, media, reports, rooms, users
from cli.common import Context, configure_logging, emit, fails_in_one_line
from cronchat.runtime import Runtime


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-dir", help="Data directory [env CRONCHAT_DATA_DIR, default ./data].")
@click.option("--database-url", help="sqlite:///FILE or mysql://user:pass@host:3306/db.")
@click.pass_context
def main(ctx: click.Context, data_dir: str | None, database_url: str | None) -> None:
    """CronChat: a self-hostable realtime chat backend."""
    ctx.obj = Context({"data_dir": data_dir, "database_url": database_url})


@main.command()
@click.option("--host", help="Address to listen on [env CRONCHAT_HOST, default 0.0.0.0].")
@click.option("--port", type=int, help="Port [env CRONCHAT_PORT, default 8080].")
@click.option("--workers", type=int, help="Processes on one port (above 1 needs Redis).")
@click.option("--redis-url", help="Redis for fan-out across processes [env CRONCHAT_REDIS_URL].")
@click.option("--media-backend", type=click.Choice(["local", "s3"]), help="Where images go.")
@click.option("--open-registration/--closed-registration", default=None)
@click.option(
    "--migrate/--no-migrate",
    "run_migrations",
    default=False,
    help="Apply pending migrations before serving.",
)
@click.pass_obj
@fails_in_one_line
def serve(obj: Context, run_migrations: bool, **flags: Any) -> None:
    """Serve the REST and WebSocket API."""
    from cli.serve import run_server
    from cronchat.config import Secret

    if flags.get("redis_url"):
        flags["redis_url"] = Secret(flags["redis_url"])
    settings = obj.settings(**flags)
    # Quiet until the checks pass, so that a failed start says one line.
    configure_logging("CRITICAL")
    if run_migrations:
        Runtime.migrate(settings)
    run_server(settings)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
@fails_in_one_line
def migrate(obj: Context, as_json: bool) -> None:
    """Apply pending database migrations (idempotent)."""
    applied = Runtime.migrate(obj.settings())
    text = "\n".join(f"applied {name}" for name in applied) or "schema is up to date"
    emit(as_json, {"applied": applied}, text)


main.add_command(users.user)
main.add_command(rooms.room)
main.add_command(media.media)
main.add_command(reports.report)
main.add_command(audit.audit)

if __name__ == "__main__":
    main()
