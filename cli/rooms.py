"""``cronchat room``: administer rooms. The operator acts with an owner's authority in every
room; the changes are room events like any other, with ``actor_id`` ``system``."""

from __future__ import annotations

from typing import Any

import click

from cli.common import Context, emit, fails_in_one_line
from cronchat.models import Member, Room
from cronchat.runtime import Runtime
from cronchat.services.access import Operator
from cronchat.services.members import AddMember
from cronchat.services.rooms import CreateRoom
from cronchat.views import member_json, room_json


def _room_line(room: Room) -> str:
    return f"{room.id}  {room.kind:6}  {room.member_count:4} members  {room.name}"


def _member_line(member: Member) -> str:
    return f"  {member.user.username:32} {member.role}"


@click.group()
def room() -> None:
    """Administer rooms."""


@room.command("create")
@click.argument("name")
@click.option("--owner", required=True, help="Username of the owner.")
@click.option("--topic", default=None)
@click.option("--member", "members", multiple=True, help="Username of a member (repeatable).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@fails_in_one_line
def room_create(
    obj: Context,
    name: str,
    owner: str,
    topic: str | None,
    members: tuple[str, ...],
    as_json: bool,
) -> None:
    """Create a group room owned by a user."""

    async def create(rt: Runtime) -> Room:
        owner_user = await rt.services.accounts.require_username(owner)
        member_ids = [(await rt.services.accounts.require_username(m)).id for m in members]
        view = await rt.services.rooms.create_group(
            owner_user, CreateRoom(name=name, topic=topic, member_ids=member_ids)
        )
        return view.room

    created = obj.run(create)
    emit(as_json, room_json(created), f"created {_room_line(created)}")


@room.command("list")
@click.option("--limit", type=int, default=1000, show_default=True)
@click.option("--offset", type=int, default=0)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@fails_in_one_line
def room_list(obj: Context, limit: int, offset: int, as_json: bool) -> None:
    """List rooms, most recent activity first."""
    found = obj.run(lambda rt: rt.services.rooms.all_rooms(limit, offset))
    emit(
        as_json,
        [room_json(r) for r in found],
        "\n".join(_room_line(r) for r in found) or "no rooms",
    )


@room.command("show")
@click.argument("room_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@fails_in_one_line
def room_show(obj: Context, room_id: str, as_json: bool) -> None:
    """Show a room and its members."""

    async def show(rt: Runtime) -> tuple[Room, list[Member]]:
        found = await rt.services.rooms.get_room(room_id)
        return found, await rt.services.members.list_members(Operator(), room_id)

    found, members = obj.run(show)
    record: dict[str, Any] = room_json(found) | {"members": [member_json(m) for m in members]}
    text = "\n".join([_room_line(found), *(_member_line(m) for m in members)])
    emit(as_json, record, text)


@room.command("add-member")
@click.argument("room_id")
@click.argument("username")
@click.option("--role", type=click.Choice(["member", "admin", "owner"]), default="member")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@fails_in_one_line
def room_add_member(obj: Context, room_id: str, username: str, role: str, as_json: bool) -> None:
    """Add a user to a group room."""

    async def add(rt: Runtime) -> Member:
        user = await rt.services.accounts.require_username(username)
        return await rt.services.members.add_member(Operator(), room_id, AddMember(user.id, role))

    member = obj.run(add)
    emit(as_json, member_json(member), f"added {member.user.username} as {member.role}")


@room.command("remove-member")
@click.argument("room_id")
@click.argument("username")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@fails_in_one_line
def room_remove_member(obj: Context, room_id: str, username: str, as_json: bool) -> None:
    """Remove a user from a room."""

    async def remove(rt: Runtime) -> None:
        user = await rt.services.accounts.require_username(username)
        await rt.services.members.remove_member(Operator(), room_id, user.id)

    obj.run(remove)
    emit(as_json, {"removed": username, "room_id": room_id}, f"removed {username}")


@room.command("delete")
@click.argument("room_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@fails_in_one_line
def room_delete(obj: Context, room_id: str, as_json: bool) -> None:
    """Delete a group room for all its members."""
    obj.run(lambda rt: rt.services.rooms.delete_room(Operator(), room_id))
    emit(as_json, {"deleted": room_id}, f"deleted {room_id}")
