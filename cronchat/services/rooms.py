"""Rooms: group and direct rooms, their settings, and the rooms of a member (who may do what
is :mod:`cronchat.services.access`; membership is :mod:`cronchat.services.members`).

Every change is a room event with the room's next seq, written in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from cronchat.cursors import Cursors
from cronchat.db import Database, Tx, UniqueViolation
from cronchat.errors import Conflict, Forbidden, Invalid, NotFound
from cronchat.event_data import room_data
from cronchat.ids import new_id
from cronchat.models import (
    Event,
    MediaRecord,
    ReadState,
    Room,
    RoomView,
    User,
)
from cronchat.realtime.notifier import Notifier
from cronchat.repos import audit, blocks, events, media, messages, rooms, users
from cronchat.services.access import (
    Actor,
    MemberActor,
    get_room,
    require_group,
    require_room_admin,
    role_of,
)
from cronchat.services.blocks import refuse_if_blocked
from cronchat.services.media import ROOM_AVATAR, Media
from cronchat.services.members import join_tx
from cronchat.services.moderation import audit_actor
from cronchat.times import now_ms, rfc3339

NAME_MAX, TOPIC_MAX = 100, 500
MAX_INITIAL_MEMBERS = 500
ROOMS_LIMIT_MAX = 100


@dataclass(frozen=True, slots=True)
class CreateRoom:
    name: str
    topic: str | None = None
    member_ids: list[str] | None = None


@dataclass(frozen=True, slots=True)
class OpenDirect:
    user_id: str


@dataclass(frozen=True, slots=True)
class UpdateRoom:
    name: str | None = None
    topic: str | None = None


def check_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not 1 <= len(cleaned) <= NAME_MAX:
        raise Invalid(f"name must be 1-{NAME_MAX} characters long", field="name")
    return cleaned


def check_topic(topic: str) -> str:
    cleaned = topic.strip()
    if len(cleaned) > TOPIC_MAX:
        raise Invalid(f"topic must be at most {TOPIC_MAX} characters", field="topic")
    return cleaned


def _room_updated_tx(tx: Tx, room_id: str, actor_id: str, now: int) -> Event:
    """Record ``room.updated`` with the room as it now stands."""
    room = rooms.find_room(tx, room_id)
    assert room is not None
    # The event's room object shows the seq of the event itself.
    seq = rooms.next_seq(tx, room_id, now)
    data = room_data(room) | {"last_seq": seq}
    return events.insert_event(tx, room_id, seq, "room.updated", actor_id, now, data)


class Rooms:
    def __init__(self, db: Database, notify: Notifier, media: Media, cursors: Cursors) -> None:
        self.db = db
        self.notify = notify
        self.media = media
        self.cursors = cursors

    # -- reading -------------------------------------------------------------------------

    async def list_rooms(
        self, user: User, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[RoomView], str | None]:
        """The caller's rooms, most recent activity first, paged by an opaque cursor."""
        if not 1 <= limit <= ROOMS_LIMIT_MAX:
            raise Invalid(f"limit must be between 1 and {ROOMS_LIMIT_MAX}", field="limit")
        after = self.cursors.decode(cursor) if cursor else None
        views, has_more = await self.db.read(self._list_tx, user.id, limit, after)
        next_cursor = None
        if has_more and views:
            last = views[-1].room
            next_cursor = self.cursors.encode(last.last_activity_at, last.id)
        return views, next_cursor

    def _list_tx(
        self, tx: Tx, user_id: str, limit: int, after: tuple[int, str] | None
    ) -> tuple[list[RoomView], bool]:
        found = rooms.member_rooms(tx, user_id, limit + 1, after)
        return self._views(tx, found[:limit], user_id), len(found) > limit

    @staticmethod
    def _views(tx: Tx, found: list[rooms.MemberRoom], user_id: str) -> list[RoomView]:
        """A member's rooms to views: last messages and peers in one query each."""
        room_ids = [member_room.room.id for member_room in found]
        last = messages.last_messages(tx, room_ids, user_id)
        direct_ids = [m.room.id for m in found if m.room.kind == "direct"]
        peers = rooms.peers(tx, direct_ids, user_id)
        return [
            RoomView(
                room=m.room,
                my_role=m.my_role,
                last_read_seq=m.state.last_read_seq,
                unread_count=m.state.unread_count,
                last_message=last.get(m.room.id),
                peer=peers.get(m.room.id),
                unread_mention_count=m.state.unread_mention_count,
                notifications=m.state.notifications,
            )
            for m in found
        ]

    async def view_room(self, user: User, room_id: str) -> RoomView:
        """The room as the caller sees it; NotFound unless they are a member."""
        return await self.db.read(self._view_tx, user.id, room_id)

    def _view_tx(self, tx: Tx, user_id: str, room_id: str) -> RoomView:
        found = rooms.member_rooms(tx, user_id, 1, room_id=room_id)
        if not found:
            raise NotFound("no such room")
        return self._views(tx, found, user_id)[0]

    async def all_rooms(self, limit: int = 1000, offset: int = 0) -> list[Room]:
        """Every live room, newest activity first (administration)."""
        return await self.db.read(self._all_rooms_tx, limit, offset)

    @staticmethod
    def _all_rooms_tx(tx: Tx, limit: int, offset: int) -> list[Room]:
        return rooms.list_rooms(tx, limit, offset)

    async def get_room(self, room_id: str) -> Room:
        """A live room by id, or NotFound (administration)."""
        return await self.db.read(self._room_tx, room_id)

    @staticmethod
    def _room_tx(tx: Tx, room_id: str) -> Room:
        return get_room(tx, room_id)

    async def opening(self, user_id: str) -> tuple[dict[str, ReadState], frozenset[str]]:
        """What a socket starts from: every room of the user with their read state, and
        whom the user blocks, read together."""
        return await self.db.read(self._opening_tx, user_id)

    @staticmethod
    def _opening_tx(tx: Tx, user_id: str) -> tuple[dict[str, ReadState], frozenset[str]]:
        return rooms.read_states(tx, user_id), blocks.blocked_ids(tx, user_id)

    async def read_states(self, user_id: str, room_id: str | None = None) -> dict[str, ReadState]:
        """Every room of the user (or the one given) with its last seq, their unread count
        and read marker: what a socket follows."""
        return await self.db.read(self._read_states_tx, user_id, room_id)

    @staticmethod
    def _read_states_tx(tx: Tx, user_id: str, room_id: str | None) -> dict[str, ReadState]:
        return rooms.read_states(tx, user_id, room_id)

    # -- creating ------------------------------------------------------------------------

    async def create_group(self, user: User, cmd: CreateRoom) -> RoomView:
        name = check_name(cmd.name)
        topic = check_topic(cmd.topic or "")
        member_ids = list(dict.fromkeys(cmd.member_ids or []))
        if len(member_ids) > MAX_INITIAL_MEMBERS:
            raise Invalid(f"at most {MAX_INITIAL_MEMBERS} initial members", field="member_ids")
        room_id = new_id()
        created = await self.db.run(self._create_group_tx, user, room_id, name, topic, member_ids)
        await self.notify.events(created)
        return await self.view_room(user, room_id)

    @staticmethod
    def _create_group_tx(
        tx: Tx, user: User, room_id: str, name: str, topic: str, member_ids: list[str]
    ) -> list[Event]:
        others = [member_id for member_id in member_ids if member_id != user.id]
        missing = set(others) - rooms.existing_user_ids(tx, others)
        if missing:
            raise NotFound("no such user", field="member_ids", user_ids=sorted(missing))
        for member_id in others:
            refuse_if_blocked(tx, user.id, by_user_id=member_id)
        now = now_ms()
        rooms.insert_room(tx, room_id, "group", name, topic, user.id, now)
        joined = [(user.id, "owner")] + [(member_id, "member") for member_id in others]
        return join_tx(tx, room_id, joined, user.id, now)

    async def open_direct(self, user: User, cmd: OpenDirect) -> tuple[RoomView, bool]:
        """The one direct room of two users: created when missing (both become members again
        if either had left). Safe when both open it at the same moment."""
        if cmd.user_id == user.id:
            raise Invalid("a direct room needs another user", field="user_id")
        direct_key = ":".join(sorted((user.id, cmd.user_id)))
        for _ in range(3):
            try:
                room_id, created, joined = await self.db.run(
                    self._open_direct_tx, user.id, cmd.user_id, direct_key
                )
                break
            except UniqueViolation:
                continue  # the other user created it at the same moment: take theirs
        else:
            raise Conflict("the direct room is being created; try again")
        await self.notify.events(joined)
        return await self.view_room(user, room_id), created

    @staticmethod
    def _open_direct_tx(
        tx: Tx, user_id: str, peer_id: str, direct_key: str
    ) -> tuple[str, bool, list[Event]]:
        peer = users.find_user(tx, peer_id)
        if peer is None or peer.disabled:
            raise NotFound("no such user", field="user_id")
        refuse_if_blocked(tx, user_id, by_user_id=peer_id)
        now = now_ms()
        room_id = rooms.find_direct_room_id(tx, direct_key)
        created = room_id is None
        if room_id is None:
            room_id = new_id()
            rooms.insert_room(tx, room_id, "direct", "", "", user_id, now, direct_key=direct_key)
        joining = [
            (member_id, "member")
            for member_id in (user_id, peer_id)
            if rooms.find_membership(tx, room_id, member_id) is None
        ]
        return room_id, created, join_tx(tx, room_id, joining, user_id, now)

    # -- changing ------------------------------------------------------------------------

    async def update_room(self, user: User, room_id: str, cmd: UpdateRoom) -> RoomView:
        changes = {}
        if cmd.name is not None:
            changes["name"] = check_name(cmd.name)
        if cmd.topic is not None:
            changes["topic"] = check_topic(cmd.topic)
        updated = await self.db.run(self._update_tx, user.id, room_id, changes)
        await self.notify.events(updated)
        return await self.view_room(user, room_id)

    @staticmethod
    def _update_tx(tx: Tx, user_id: str, room_id: str, changes: dict) -> list[Event]:
        require_room_admin(tx, room_id, MemberActor(user_id))
        if not changes:
            return []
        now = now_ms()
        rooms.update_room(tx, room_id, changes, now)
        return [_room_updated_tx(tx, room_id, user_id, now)]

    async def set_avatar(self, user: User, room_id: str, data: bytes) -> RoomView:
        """Replace a group room's avatar (owners and admins), as a ``room.updated`` event.
        The old image leaves the store once the change is committed."""
        # Who may is checked before the image is decoded, and again in the transaction.
        await self.db.read(self._check_room_admin_tx, room_id, user.id)
        record = await self.media.store_avatar(user.id, ROOM_AVATAR, data)
        try:
            updated, old = await self.db.run(self._set_avatar_tx, user.id, room_id, record)
        except BaseException:
            await self.media.discard(record)
            raise
        await self._avatar_changed(updated, old)
        return await self.view_room(user, room_id)

    @staticmethod
    def _check_room_admin_tx(tx: Tx, room_id: str, user_id: str) -> None:
        require_room_admin(tx, room_id, MemberActor(user_id))

    async def remove_avatar(self, user: User, room_id: str) -> RoomView:
        """Remove a group room's avatar (owners and admins); without one, nothing happens."""
        updated, old = await self.db.run(self._set_avatar_tx, user.id, room_id, None)
        await self._avatar_changed(updated, old)
        return await self.view_room(user, room_id)

    async def _avatar_changed(self, updated: list[Event], old: MediaRecord | None) -> None:
        await self.notify.events(updated)
        if old is not None:
            await self.media.discard(old)

    @staticmethod
    def _set_avatar_tx(
        tx: Tx, user_id: str, room_id: str, record: MediaRecord | None
    ) -> tuple[list[Event], MediaRecord | None]:
        # The room's row stays locked, so that two avatar changes at once cannot both
        # replace the same old avatar and leave one new avatar behind.
        room = require_room_admin(tx, room_id, MemberActor(user_id), lock=True).room
        if record is None and room.avatar_media_id is None:
            return [], None
        old = (
            media.find_media(tx, room.avatar_media_id, lock=True) if room.avatar_media_id else None
        )
        if record is not None:
            media.insert_media(tx, record)
        now = now_ms()
        rooms.update_room(tx, room_id, {"avatar_media_id": record.id if record else None}, now)
        if old is not None:
            media.delete_media(tx, [old.id])
        return [_room_updated_tx(tx, room_id, user_id, now)], old

    async def delete_room(self, actor: Actor, room_id: str) -> None:
        """Delete a group room (its owner, or the operator)."""
        deleted = await self.db.run(self._delete_tx, actor, room_id)
        await self.notify.events(deleted)

    @staticmethod
    def _delete_tx(tx: Tx, actor: Actor, room_id: str) -> list[Event]:
        role = role_of(tx, room_id, actor)
        room = require_group(tx, room_id)
        if role != "owner":
            raise Forbidden("only an owner may delete the room")
        now = now_ms()
        seq = rooms.next_seq(tx, room_id, now)
        data = room_data(room) | {"last_seq": seq, "updated_at": rfc3339(now)}
        event = events.insert_event(tx, room_id, seq, "room.deleted", actor.actor_id, now, data)
        rooms.mark_deleted(tx, room_id, now)
        audit.record(
            tx, "room.deleted", audit_actor(actor), now, room_id=room_id, data={"name": room.name}
        )
        return [event]
