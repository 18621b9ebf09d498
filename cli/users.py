"""``cronchat user``: administer accounts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from cli.common import Context, emit, fails_in_one_line, read_password
from cronchat.models import User
from cronchat.private_files import create_private_file
from cronchat.runtime import Runtime
from cronchat.views import user_json


@click.group()
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


@user.command("delete")
@click.argument("username")
@click.option("--erase-messages", is_flag=True, help="Redact every message the user sent.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@fails_in_one_line
def user_delete(obj: Context, username: str, erase_messages: bool, as_json: bool) -> None:
    """Delete an account: its sessions end, it leaves every room, its uploads go; the
    username stays taken."""
    account = obj.run(lambda rt: rt.services.lifecycle.delete_by_operator(username, erase_messages))
    emit(as_json, _user_record(account), f"deleted: {account.id}  {username}")


@user.command("export")
@click.argument("username")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="The zip file to write.",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@fails_in_one_line
def user_export(obj: Context, username: str, out: Path, as_json: bool) -> None:
    """Write everything a user owns to a zip (what ``POST /users/me/export`` prepares)."""

    async def export(rt: Runtime) -> User:
        account = await rt.services.accounts.require_username(username)
        create_private_file(out)  # 0600 when new: the export is the user's private data
        with out.open("wb") as handle:
            await rt.services.exports.write_zip(account.id, handle)
        return account

    account = obj.run(export)
    size = out.stat().st_size
    emit(
        as_json,
        {"user_id": account.id, "file": str(out), "size": size},
        f"exported {username} to {out} ({size} bytes)",
    )
