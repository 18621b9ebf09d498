"""Account deletion: ``DELETE /users/me`` and ``cronchat user delete``.

One transaction does all that the database holds: the sessions end, the user leaves every
room (ownership handed on, rooms left empty deleted), their blocks, mentions, settings,
exports and push devices go, the profile becomes "Deleted user" (the username stays
taken), the reports they filed lose their reporter, and with ``erase_messages`` every
message they sent is redacted as a deletion (:func:`cronchat.services.redaction.redact_tx`).
After the commit: the sockets close (4003) on every process, the rooms hear of it, and the
uploads' files leave the store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from cronchat.blocking import BlockingPool
from cronchat.db import Database, Tx
from cronchat.errors import NotFound
from cronchat.event_data import member_data
from cronchat.models import Event, MediaRecord, User
from cronchat.realtime.notifier import Notifier
from cronchat.repos import (
    audit,
    blocks,
    events,
    exports,
    media,
    messages,
    pushers,
    rooms,
    sessions,
    users,
)
from cronchat.services.accounts import Accounts
from cronchat.services.media import Media
from cronchat.services.redaction import Redacted, redact_tx
from cronchat.times import now_ms
from storage import Storage, StorageError

log = logging.getLogger("cronchat.lifecycle")


@dataclass(frozen=True, slots=True)
class DeleteAccount:
    password: str
    erase_messages: bool = False


@dataclass(slots=True)
class _Deleted:
    """A deletion as committed: what to announce and what to remove from the store."""

    user: User
    session_ids: list[str]
    room_ids: list[str]
    redactions: list[Redacted] = field(default_factory=list)
    membership_events: list[Event] = field(default_factory=list)
    uploads: list[MediaRecord] = field(default_factory=list)
    export_keys: list[str] = field(default_factory=list)
    # Whom each user who blocked the deleted one blocks now.
    blocks_of_blockers: dict[str, frozenset[str]] = field(default_factory=dict)


class Lifecycle:
    def __init__(
        self,
        db: Database,
        notify: Notifier,
        accounts: Accounts,
        media: Media,
        blocking: BlockingPool,
        storage: Storage,
    ) -> None:
        self.db = db
        self.notify = notify
        self.accounts = accounts
        self.media = media
        self.blocking = blocking
        self.storage = storage

    async def delete_account(self, user: User, cmd: DeleteAccount) -> None:
        """The user deletes their own account, after giving their password (a wrong one is
        401 ``invalid_credentials`` and changes nothing)."""
        await self.accounts.check_own_password(user, cmd.password)
        await self._delete(user.id, cmd.erase_messages, actor_id=user.id)

    async def delete_by_operator(self, username: str, erase_messages: bool) -> User:
        """The operator deletes an account (``cronchat user delete``)."""
        user = await self.accounts.require_username(username)
        return await self._delete(user.id, erase_messages, actor_id=None)

    async def _delete(self, user_id: str, erase_messages: bool, actor_id: str | None) -> User:
        deleted = await self.db.run(self._delete_tx, user_id, erase_messages, actor_id)
        log.info(
            "account deleted user_id=%s rooms=%d erased=%d",
            user_id,
            len(deleted.room_ids),
            len(deleted.redactions),
        )
        await self.accounts.announce_revoked(deleted.session_ids, user_id)
        for redacted in deleted.redactions:
            await self.notify.summary_events(
                [redacted.event], redacted.last_message, redacted.mentions
            )
        await self.notify.events(deleted.membership_events)
        await self.notify.user_updated(deleted.user, deleted.room_ids)
        for blocker, blocked_ids in deleted.blocks_of_blockers.items():
            await self.notify.blocks(blocker, blocked_ids)
        released = [r.released_media for r in deleted.redactions if r.released_media is not None]
        for record in [*released, *deleted.uploads]:
            await self.media.remove_files(record)
        for key in deleted.export_keys:
            await self._remove_file(key)
        return deleted.user

    @staticmethod
    def _delete_tx(tx: Tx, user_id: str, erase_messages: bool, actor_id: str | None) -> _Deleted:
        user = users.find_user(tx, user_id, lock=True)
        if user is None or user.deleted:
            raise NotFound("no such user")
        now = now_ms()
        room_ids = rooms.room_ids_of(tx, user_id)
        redactions = _erase_messages_tx(tx, user_id, now) if erase_messages else []
        uploads = exports.uploads_page(tx, user_id, "")
        users.mark_deleted(tx, user_id, now)
        media.delete_media(tx, [record.id for record in uploads])
        deleted_user = users.find_user(tx, user_id)
        assert deleted_user is not None
        left = _leave_every_room_tx(tx, deleted_user, room_ids, actor_id, now)
        blockers = users.forget_relations(tx, user_id)
        blocks_of_blockers = {blocker: blocks.blocked_ids(tx, blocker) for blocker in blockers}
        export_keys = exports.delete_exports_of(tx, user_id)
        session_ids = sessions.revoke_user_sessions(tx, user_id, now)
        pushers.delete_of_user(tx, user_id)
        audit.record(
            tx,
            "user.deleted",
            actor_id,
            now,
            target_user_id=user_id,
            data={"erase_messages": erase_messages},
        )
        return _Deleted(
            deleted_user,
            session_ids,
            room_ids,
            redactions,
            left,
            uploads,
            export_keys,
            blocks_of_blockers,
        )

    async def _remove_file(self, key: str) -> None:
        try:
            await self.blocking.run(self.storage.delete, key)
        except StorageError as error:
            log.warning("export file delete failed key=%s reason=%s", key, error)


def _erase_messages_tx(tx: Tx, user_id: str, now: int) -> list[Redacted]:
    """Redact every live message the user sent, each as its own deletion (its event, its
    tombstones, its media released), acting as the user."""
    redactions = []
    for room_id, message_id in users.live_messages_sent(tx, user_id):
        owner = messages.message_owner(tx, room_id, message_id)
        if owner is not None and owner.deleted_at is None:
            redactions.append(redact_tx(tx, room_id, message_id, owner, user_id, now))
    return redactions


def _leave_every_room_tx(
    tx: Tx, user: User, room_ids: list[str], actor_id: str | None, now: int
) -> list[Event]:
    """The user leaves each room with a ``member.left``. Where they were the last owner, the
    earliest-joined admin, else the earliest-joined member, becomes owner first (with its
    ``member.role_changed``, acted by the leaving user); a room left empty is deleted."""
    left: list[Event] = []
    for room_id in room_ids:
        room = rooms.find_room(tx, room_id, lock=True)
        if room is None:
            continue
        members = rooms.list_members(tx, room_id)  # by joined_at
        mine = next((member for member in members if member.user.id == user.id), None)
        if mine is None:
            continue
        others = [member for member in members if member.user.id != user.id]
        if mine.role == "owner" and others and all(m.role != "owner" for m in others):
            heir = next((m for m in others if m.role == "admin"), others[0])
            rooms.set_role(tx, room_id, heir.user.id, "owner")
            data = member_data(heir.user, "owner")
            left.append(events.append(tx, room_id, "member.role_changed", user.id, data, now))
            audit.record(
                tx,
                "member.role_changed",
                actor_id,
                now,
                room_id=room_id,
                target_user_id=heir.user.id,
                data={"role": "owner", "reason": "owner_deleted"},
            )
        data = member_data(user, mine.role)
        left.append(events.append(tx, room_id, "member.left", user.id, data, now))
        rooms.delete_member(tx, room_id, user.id)
        if not others:
            rooms.mark_deleted(tx, room_id, now)  # nobody left to see it
    return left
