"""The ``cronchat`` command: serve, migrate, and administer users and rooms."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar

import click

from cronchat.config import ConfigError, Settings, load_settings
from cronchat.db import Database
from cronchat.db.migrations import migrate as apply_migrations
from cronchat.errors import DomainError
from cronchat.models import User
from cronchat.runtime import Runtime
from cronchat.views import user_json

T = TypeVar("T")


class Context:
    """What the group's options hold for every subcommand: settings built on first use."""

    def __init__(self, overrides: dict[str, Any]) -> None:
        self.overrides = overrides
        self._settings: Settings | None = None

    def settings(self, **more: Any) -> Settings:
        if self._settings is None or more:
            self._settings = load_settings(**self.overrides, **more)
        return self._settings

    def run(self, action: Callable[[Runtime], Awaitable[T]]) -> T:
        """Build the runtime, check its schema, run one async action, close everything."""
        runtime = Runtime(self.settings())
        try:
            runtime.check_schema()

            async def main() -> T:
                try:
                    return await action(runtime)
                finally:
                    await runtime.close()

            return asyncio.run(main())
        except BaseException:
            runtime.db.close()
            raise


def fails_in_one_line(command: Callable[..., None]) -> Callable[..., None]:
    """An error is one line on stderr and exit code 1, never a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except (ConfigError, DomainError) as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(1)

    return wrapper


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


def emit(as_json: bool, value: Any, text: str) -> None:
    click.echo(json.dumps(value, ensure_ascii=False) if as_json else text)


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise ConfigError("no password on standard input")
        return password
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


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
        _migrate(settings)
    run_server(settings)


def _migrate(settings: Settings) -> list[str]:
    db = Database(settings.database, 1)
    try:
        return [f"{m.version:04d}_{m.name}" for m in apply_migrations(db)]
    except DomainError:
        raise ConfigError(f"database {settings.database.describe()} is unreachable") from None
    finally:
        db.close()


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
@fails_in_one_line
def migrate(obj: Context, as_json: bool) -> None:
    """Apply pending database migrations (idempotent)."""
    applied = _migrate(obj.settings())
    text = "\n".join(f"applied {name}" for name in applied) or "schema is up to date"
    emit(as_json, {"applied": applied}, text)


@main.group()
def user() -> None:
    """Administer user accounts."""


def _user_line(account: User) -> str:
    flags = [
        flag for flag, on in (("admin", account.is_admin), ("disabled", account.disabled)) if on
    ]
    suffix = f" [{', '.join(flags)}]" if flags else ""
    return f"{account.id}  {account.username}  {account.display_name}{suffix}"


def _user_record(account: User) -> dict[str, Any]:
    return {**user_json(account), "is_admin": account.is_admin, "disabled": account.disabled}


@user.command("create")
@click.argument("username")
@click.option("--display-name", help="Shown name; defaults to the username.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--admin", is_flag=True, help="Make the user an administrator.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@fails_in_one_line
def user_create(
    obj: Context,
    username: str,
    display_name: str | None,
    password_stdin: bool,
    admin: bool,
    as_json: bool,
) -> None:
    """Create a user (works when registration is closed)."""
    password = read_password(password_stdin)
    account = obj.run(
        lambda rt: rt.services.accounts.create_user(username, password, display_name, admin)
    )
    emit(as_json, _user_record(account), f"created {_user_line(account)}")


@user.command("list")
@click.option("--limit", type=int, default=1000, show_default=True)
@click.option("--offset", type=int, default=0)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@fails_in_one_line
def user_list(obj: Context, limit: int, offset: int, as_json: bool) -> None:
    """List users by username."""
    accounts = obj.run(lambda rt: rt.services.accounts.list_users(limit, offset))
    emit(
        as_json,
        [_user_record(account) for account in accounts],
        "\n".join(_user_line(account) for account in accounts) or "no users",
    )


def _user_action(name: str, help_text: str, act: Callable[[Runtime, str], Awaitable[User]]) -> None:
    @user.command(name, help=help_text)
    @click.argument("username")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    @fails_in_one_line
    def command(obj: Context, username: str, as_json: bool) -> None:
        account = obj.run(lambda rt: act(rt, username))
        emit(as_json, _user_record(account), f"{name}: {_user_line(account)}")


_user_action(
    "disable",
    "Disable a user: they cannot log in, and their sessions end now.",
    lambda rt, name: rt.services.accounts.set_disabled(name, True),
)
_user_action(
    "enable",
    "Enable a disabled user.",
    lambda rt, name: rt.services.accounts.set_disabled(name, False),
)
_user_action(
    "promote",
    "Make a user an administrator.",
    lambda rt, name: rt.services.accounts.promote(name, True),
)


@user.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@fails_in_one_line
def user_set_password(obj: Context, username: str, password_stdin: bool, as_json: bool) -> None:
    """Set a user's password; every session of theirs ends."""
    password = read_password(password_stdin)
    account = obj.run(lambda rt: rt.services.accounts.set_password(username, password))
    emit(as_json, _user_record(account), f"password set: {_user_line(account)}")


if __name__ == "__main__":
    main()
