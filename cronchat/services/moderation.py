"""Moderation of a room's members by its admins and owners: bans (with an optional expiry)
and timed mutes, under the rank rules (owner > admin > member).

Each act is one transaction holding the change, its room event and its audit entry. The
room event reaches every process after commit; there the hub stops the banned user's
sockets following the room, as it does for ``member.left``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cronchat.db import Database, Tx
from cronchat.errors import Conflict, Forbidden, Invalid, NotFound
from cronchat.event_data import user_data
from cronchat.models import Ban, Event, Member, Room
from cronchat.realtime.notifier import Notifier
from cronchat.repos import audit, bans, events, rooms, users
from cronchat.services.access import Actor, MemberActor, Operator, get_room, role_of
from cronchat.times import now_ms, parse_rfc3339, rfc3339
from cronchat.validation import check_shown_text

REASON_MAX = 500
MODERATORS = ("owner", "admin")
_DONE = {"ban": "banned", "mute": "muted"}


@dataclass(frozen=True, slots=True)
class BanUser:
    user_id: str
    reason: str | None = None
    expires_at: str | None = None


def audit_actor(actor: Actor) -> str | None:
    """Who the audit log names for an act: the user, or None for the operator (the CLI)."""
    return None if isinstance(actor, Operator) else actor.actor_id


def future_time(value: str, field: str, now: int) -> int:
    """An RFC 3339 time ahead of ``now``, in epoch ms; Invalid naming ``field`` otherwise."""
    parsed = parse_rfc3339(value)
    if parsed is None:
        raise Invalid(f"{field} must be an RFC 3339 time", field=field)
    if parsed <= now:
        raise Invalid(f"{field} must be in the future", field=field)
    return parsed


def require_unmuted(muted_until: int | None, now: int) -> None:
    """A member muted by the room's admins may not send, edit or react until the mute ends
    (it ends by itself): 403 with ``details {reason: "muted", until}``."""
    if muted_until is not None and muted_until > now:
        raise Forbidden("you are muted in this room", reason="muted", until=rfc3339(muted_until))


def is_muted(member: Member, now: int) -> bool:
    return member.muted_until is not None and member.muted_until > now


def require_rank(actor_role: str, target_role: str, act: str) -> None:
    """The rank rules of bans and mutes: admins and owners act, never on an owner, and only
    an owner on an admin."""
    if actor_role not in MODERATORS:
        raise Forbidden(f"only an owner or admin may {act} members")
    if target_role == "owner":
        raise Forbidden(f"the owner cannot be {_DONE[act]}")
    if target_role == "admin" and actor_role != "owner":
        raise Forbidden(f"only an owner may {act} an admin")


def require_group_target(room: Room, actor: Actor, user_id: str, act: str) -> None:
    """What is checked first: a direct room has no moderation, and nobody acts on
    themselves (400)."""
    if room.kind != "group":
        raise Invalid(f"nobody can {act} in a direct room", field="room_id")
    if isinstance(actor, MemberActor) and actor.user_id == user_id:
        raise Invalid(f"you cannot {act} yourself", field="user_id")


def mute_tx(
    tx: Tx,
    actor: Actor,
    actor_role: str,
    room_id: str,
    member_id: str,
    muted_until: int | None,
    now: int,
) -> Event | None:
    """Mute a member until a time, or unmute them (None), in the caller's transaction, with
    its ``member.muted`` event and audit entry; None when nothing changes (unmuting a
    member who is not muted). ``actor_role`` is the actor's, as their locked row says."""
    room = get_room(tx, room_id)
    require_group_target(room, actor, member_id, "mute")
    if actor_role not in MODERATORS:
        raise Forbidden("only an owner or admin may mute members")
    target = rooms.find_member(tx, room_id, member_id)
    if target is None:
        raise NotFound("no such member")
    require_rank(actor_role, target.role, "mute")
    if muted_until is None and not is_muted(target, now):
        return None
    rooms.set_muted_until(tx, room.id, target.user.id, muted_until)
    shown = rfc3339(muted_until)
    data = {"user": user_data(target.user), "role": target.role, "muted_until": shown}
    event = events.append(tx, room.id, "member.muted", actor.actor_id, data, now)
    audit.record(
        tx,
        "member.muted",
        audit_actor(actor),
        now,
        room_id=room.id,
        target_user_id=target.user.id,
        data={"muted_until": shown},
    )
    return event


def check_reason(reason: str | None) -> str:
    cleaned = (reason or "").strip()
    if len(cleaned) > REASON_MAX:
        raise Invalid(f"reason must be at most {REASON_MAX} characters", field="reason")
    check_shown_text("reason", cleaned, lines=True)
    return cleaned


class Moderation:
    def __init__(self, db: Database, notify: Notifier) -> None:
        self.db = db
        self.notify = notify

    async def ban(self, actor: Actor, room_id: str, cmd: BanUser) -> Ban:
        """Ban a user from a group room (admins and owners, by rank): their membership ends
        and ``member.banned`` is recorded in one transaction; adding them again is refused
        until the ban is lifted or expires."""
        reason = check_reason(cmd.reason)
        now = now_ms()
        expires_at = None
        if cmd.expires_at is not None:
            expires_at = future_time(cmd.expires_at, "expires_at", now)
        ban, event = await self.db.run(
            self._ban_tx, actor, room_id, cmd.user_id, reason, expires_at
        )
        await self.notify.events([event])
        return ban

    @staticmethod
    def _ban_tx(
        tx: Tx, actor: Actor, room_id: str, user_id: str, reason: str, expires_at: int | None
    ) -> tuple[Ban, Event]:
        # The room's row stays locked (the actor's membership row holds it too), so that
        # two bans of one user at once are one after the other.
        actor_role = role_of(tx, room_id, actor, lock=True)
        room = get_room(tx, room_id, lock=True)
        require_group_target(room, actor, user_id, "ban")
        if actor_role not in MODERATORS:
            raise Forbidden("only an owner or admin may ban members")
        target = rooms.find_member(tx, room_id, user_id)
        user = target.user if target is not None else users.find_user(tx, user_id)
        if user is None:
            raise NotFound("no such user", field="user_id")
        require_rank(actor_role, target.role if target is not None else "member", "ban")
        now = now_ms()
        if bans.is_banned(tx, room_id, user_id, now):
            raise Conflict("the user is banned from this room already", field="user_id")
        shown = rfc3339(expires_at)
        data = {"user": user_data(user), "reason": reason, "expires_at": shown}
        event = events.append(tx, room_id, "member.banned", actor.actor_id, data, now)
        if target is not None:
            rooms.delete_member(tx, room_id, user_id)
        banned_by = audit_actor(actor)
        bans.insert_ban(tx, room_id, user_id, banned_by, reason, now, expires_at)
        audit.record(
            tx,
            "member.banned",
            banned_by,
            now,
            room_id=room_id,
            target_user_id=user_id,
            data={"reason": reason, "expires_at": shown, "was_member": target is not None},
        )
        return Ban(room_id, user, banned_by, reason, now, expires_at), event

    async def bans(self, actor: Actor, room_id: str) -> list[Ban]:
        """The bans of a room that hold now (admins and owners)."""
        return await self.db.read(self._bans_tx, actor, room_id)

    @staticmethod
    def _bans_tx(tx: Tx, actor: Actor, room_id: str) -> list[Ban]:
        if role_of(tx, room_id, actor) not in MODERATORS:
            raise Forbidden("only an owner or admin may see the room's bans")
        return bans.list_bans(tx, room_id, now_ms())

    async def unban(self, actor: Actor, room_id: str, user_id: str) -> None:
        """Lift a ban (admins and owners), recorded as ``member.unbanned``; the user may be
        added again (they do not rejoin by themselves)."""
        event = await self.db.run(self._unban_tx, actor, room_id, user_id)
        await self.notify.events([event])

    @staticmethod
    def _unban_tx(tx: Tx, actor: Actor, room_id: str, user_id: str) -> Event:
        actor_role = role_of(tx, room_id, actor, lock=True)
        room = get_room(tx, room_id, lock=True)
        require_group_target(room, actor, user_id, "unban")
        if actor_role not in MODERATORS:
            raise Forbidden("only an owner or admin may unban members")
        now = now_ms()
        ban = bans.find_ban(tx, room_id, user_id, now)
        if ban is None:
            raise NotFound("no such ban", field="user_id")
        bans.delete_ban(tx, room_id, user_id)
        data = {"user": user_data(ban.user)}
        event = events.append(tx, room_id, "member.unbanned", actor.actor_id, data, now)
        audit.record(
            tx, "member.unbanned", audit_actor(actor), now, room_id=room_id, target_user_id=user_id
        )
        return event
