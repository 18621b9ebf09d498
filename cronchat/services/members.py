"""Members: who is in a room and with what role; adding, changing roles, removing and
leaving. Every change is a room event, written in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass

from cronchat.db import Database, Tx
from cronchat.errors import Conflict, Forbidden, Invalid, NotFound
from cronchat.event_data import member_data
from cronchat.models import Event, Member, User
from cronchat.realtime.notifier import Notifier
from cronchat.repos import audit, bans, events, rooms, users
from cronchat.services.access import Actor, MemberActor, require_group, role_of
from cronchat.services.blocks import refuse_if_blocked
from cronchat.services.moderation import audit_actor, future_time, mute_tx
from cronchat.times import now_ms

ROLES = ("owner", "admin", "member")


@dataclass(frozen=True, slots=True)
class AddMember:
    user_id: str
    role: str | None = None


@dataclass(frozen=True, slots=True)
class ChangeRole:
    """A change of a membership: its role (owners), its timed mute (admins and owners, by
    rank; null unmutes: see ``keep_mute``), or both."""

    role: str | None = None
    muted_until: str | None = None


def check_role(role: str) -> str:
    if role not in ROLES:
        raise Invalid("role must be owner, admin or member", field="role")
    return role


class Members:
    def __init__(self, db: Database, notify: Notifier) -> None:
        self.db = db
        self.notify = notify

    async def list_members(self, actor: Actor, room_id: str) -> list[Member]:
        return await self.db.read(self._members_tx, actor, room_id)

    @staticmethod
    def _members_tx(tx: Tx, actor: Actor, room_id: str) -> list[Member]:
        role_of(tx, room_id, actor)
        return rooms.list_members(tx, room_id)

    async def add_member(self, actor: Actor, room_id: str, cmd: AddMember) -> Member:
        """Add a member (admins and owners, or the operator)."""
        role = check_role(cmd.role or "member")
        added = await self.db.run(self._add_member_tx, actor, room_id, cmd.user_id, role)
        await self.notify.events(added)
        return await self.db.read(self._member_tx, room_id, cmd.user_id)

    @staticmethod
    def _add_member_tx(
        tx: Tx, actor: Actor, room_id: str, new_member_id: str, role: str
    ) -> list[Event]:
        actor_role = role_of(tx, room_id, actor, lock=True)
        require_group(tx, room_id)
        if actor_role not in ("owner", "admin"):
            raise Forbidden("only an owner or admin may add members")
        if role != "member" and actor_role != "owner":
            raise Forbidden("only an owner may add admins or owners")
        if not rooms.existing_user_ids(tx, [new_member_id]):
            raise NotFound("no such user", field="user_id")
        if isinstance(actor, MemberActor):
            refuse_if_blocked(tx, actor.user_id, by_user_id=new_member_id)
        if rooms.find_membership(tx, room_id, new_member_id) is not None:
            raise Conflict("already a member of this room", field="user_id")
        now = now_ms()
        if bans.is_banned(tx, room_id, new_member_id, now):
            raise Conflict("the user is banned from this room", field="user_id")
        return join_tx(tx, room_id, [(new_member_id, role)], actor.actor_id, now)

    @staticmethod
    def _member_tx(tx: Tx, room_id: str, user_id: str) -> Member:
        member = rooms.find_member(tx, room_id, user_id)
        if member is None:
            raise NotFound("no such member")
        return member

    async def change_role(
        self, user: User, room_id: str, member_id: str, cmd: ChangeRole, keep_mute: bool = True
    ) -> Member:
        """Change a member's role and/or timed mute (``keep_mute``: ``muted_until`` was not
        given), in one transaction."""
        role = None if cmd.role is None else check_role(cmd.role)
        muted_until = None
        if not keep_mute and cmd.muted_until is not None:
            muted_until = future_time(cmd.muted_until, "muted_until", now_ms())
        if role is None and keep_mute:
            raise Invalid("role or muted_until is required", field="role")
        changed = await self.db.run(
            self._change_tx, user.id, room_id, member_id, role, keep_mute, muted_until
        )
        await self.notify.events(changed)
        return await self.db.read(self._member_tx, room_id, member_id)

    @staticmethod
    def _change_tx(
        tx: Tx,
        user_id: str,
        room_id: str,
        member_id: str,
        role: str | None,
        keep_mute: bool,
        muted_until: int | None,
    ) -> list[Event]:
        actor = MemberActor(user_id)
        actor_role = role_of(tx, room_id, actor, lock=True)
        changed = []
        if role is not None:
            changed += _change_role_tx(tx, actor_role, user_id, room_id, member_id, role)
        if not keep_mute:
            muted = mute_tx(tx, actor, actor_role, room_id, member_id, muted_until, now_ms())
            changed += [muted] if muted is not None else []
        return changed

    async def remove_member(self, actor: Actor, room_id: str, member_id: str) -> None:
        """Remove a member (admins and owners, or the operator) or leave (anyone, for
        themselves)."""
        removed = await self.db.run(self._remove_member_tx, actor, room_id, member_id)
        await self.notify.events(removed)

    @staticmethod
    def _remove_member_tx(tx: Tx, actor: Actor, room_id: str, member_id: str) -> list[Event]:
        actor_role = role_of(tx, room_id, actor, lock=True)
        target = rooms.find_member(tx, room_id, member_id)
        if target is None:
            raise NotFound("no such member")
        room = rooms.find_room(tx, room_id)
        assert room is not None
        if actor != MemberActor(member_id):
            if room.kind == "direct":
                raise Forbidden("nobody can be removed from a direct room; leave it instead")
            if actor_role not in ("owner", "admin"):
                raise Forbidden("only an owner or admin may remove members")
            if target.role != "member" and actor_role != "owner":
                raise Forbidden("only an owner may remove admins or owners")
        if (
            target.role == "owner"
            and room.member_count > 1
            and rooms.count_role(tx, room_id, "owner") == 1
        ):
            raise Conflict("the last owner cannot leave while others remain; pass ownership")
        now = now_ms()
        event = events.append(
            tx, room_id, "member.left", actor.actor_id, member_data(target.user, target.role), now
        )
        rooms.delete_member(tx, room_id, member_id)
        if actor != MemberActor(member_id):
            audit.record(
                tx,
                "member.removed",
                audit_actor(actor),
                now,
                room_id=room_id,
                target_user_id=member_id,
                data={"role": target.role},
            )
        if room.member_count == 1 and room.kind == "group":
            rooms.mark_deleted(tx, room_id, now)  # nobody left to see it
        return [event]


def _change_role_tx(
    tx: Tx, actor_role: str, user_id: str, room_id: str, member_id: str, role: str
) -> list[Event]:
    """A member's new role (owners only), with its event and audit entry."""
    if actor_role != "owner":
        raise Forbidden("only an owner may change roles")
    require_group(tx, room_id)
    target = rooms.find_member(tx, room_id, member_id)
    if target is None:
        raise NotFound("no such member")
    if target.role == role:
        return []
    if target.role == "owner" and rooms.count_role(tx, room_id, "owner") == 1:
        raise Conflict("the last owner cannot step down; make another member owner first")
    rooms.set_role(tx, room_id, member_id, role)
    now = now_ms()
    data = member_data(target.user, role)
    event = events.append(tx, room_id, "member.role_changed", user_id, data, now)
    audit.record(
        tx,
        "member.role_changed",
        user_id,
        now,
        room_id=room_id,
        target_user_id=member_id,
        data={"from": target.role, "to": role},
    )
    return [event]


def join_tx(
    tx: Tx, room_id: str, joining: list[tuple[str, str]], actor_id: str, now: int
) -> list[Event]:
    """Add members, each ``(user_id, role)``, and record a ``member.joined`` for each, in
    order: a fixed number of statements whatever their number. A new member's read marker
    starts at their join, so history from before it does not count as unread."""
    if not joining:
        return []
    found = users.find_users(tx, [user_id for user_id, _ in joining])
    last_seq = rooms.take_seqs(tx, room_id, len(joining), now)
    first_seq = last_seq - len(joining) + 1
    joined = events.insert_events(
        tx,
        [
            Event(room_id, seq, "member.joined", actor_id, now, member_data(found[user_id], role))
            for seq, (user_id, role) in enumerate(joining, first_seq)
        ],
    )
    members = [
        (user_id, role, event.seq) for (user_id, role), event in zip(joining, joined, strict=True)
    ]
    rooms.insert_members(tx, room_id, members, now)
    return joined
