"""What every ``cronchat`` subcommand shares: settings, the runtime, output and errors."""

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
from cronchat.errors import DomainError
from cronchat.runtime import Runtime

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
        """Build the runtime, check its schema, run one async action, close everything.
        The runtime serves no sockets: what the action publishes reaches the running servers
        through the database."""
        runtime = Runtime(self.settings(), serving=False)
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
