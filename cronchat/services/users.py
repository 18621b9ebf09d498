"""Profiles: reading and editing one's own, reading others', finding users by prefix, and
whose presence a user may see."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cronchat.db import Database, Tx
from cronchat.errors import Invalid, NotFound
from cronchat.models import User
from cronchat.realtime.notifier import Notifier
from cronchat.repos import rooms, users
from cronchat.services.accounts import check_display_name
from cronchat.times import now_ms
from cronchat.validation import check_shown_text

BIO_MAX = 500
SEARCH_LIMIT_MAX = 50


@dataclass(frozen=True, slots=True)
class UpdateProfile:
    display_name: str | None = None
    bio: str | None = None


def check_bio(bio: str) -> str:
    """The bio trimmed, its line ends made ``\\n``; lines and direction marks are allowed,
    control and bidirectional override characters are not; empty clears it (400 otherwise)."""
    bio = bio.replace("\r\n", "\n")
    check_shown_text("bio", bio, lines=True)
    bio = bio.strip()
    if len(bio) > BIO_MAX:
        raise Invalid(f"bio must be at most {BIO_MAX} characters", field="bio")
    return bio


class Users:
    def __init__(self, db: Database, notify: Notifier) -> None:
        self.db = db
        self.notify = notify

    async def get_user(self, user_id: str) -> User:
        return await self.db.read(self._get_user_tx, user_id)

    @staticmethod
    def _get_user_tx(tx: Tx, user_id: str) -> User:
        user = users.find_user(tx, user_id)
        if user is None:
            raise NotFound("no such user")
        return user

    async def update_profile(self, user: User, cmd: UpdateProfile) -> User:
        changes: dict[str, str] = {}
        if cmd.display_name is not None:
            changes["display_name"] = check_display_name(cmd.display_name)
        if cmd.bio is not None:
            changes["bio"] = check_bio(cmd.bio)
        if not changes:
            return await self.get_user(user.id)
        updated, room_ids = await self.db.run(self._update_profile_tx, user.id, changes)
        await self.notify.user_updated(updated, room_ids)
        return updated

    @staticmethod
    def _update_profile_tx(tx: Tx, user_id: str, changes: dict[str, str]) -> tuple[User, list[str]]:
        users.update_profile(tx, user_id, changes, now_ms())
        user = users.find_user(tx, user_id)
        assert user is not None
        return user, rooms.room_ids_of(tx, user_id)

    async def presence_visible(self, viewer_id: str, user_ids: Iterable[str]) -> set[str]:
        """Of these users, those whose ``online`` and ``last_seen_at`` the viewer may see:
        themselves, and whoever shares a live room with them (one query for all)."""
        others = set(user_ids) - {viewer_id}
        visible = {viewer_id}
        if others:
            visible |= await self.db.read(self._sharing_a_room_tx, viewer_id, others)
        return visible

    @staticmethod
    def _sharing_a_room_tx(tx: Tx, viewer_id: str, others: set[str]) -> set[str]:
        return rooms.sharing_a_room(tx, viewer_id, others)

    async def search(self, prefix: str, limit: int = 20) -> list[User]:
        prefix = prefix.strip()
        if not prefix:
            raise Invalid("q must not be empty", field="q")
        if not 1 <= limit <= SEARCH_LIMIT_MAX:
            raise Invalid(f"limit must be between 1 and {SEARCH_LIMIT_MAX}", field="limit")
        return await self.db.read(self._search_tx, prefix, limit)

    @staticmethod
    def _search_tx(tx: Tx, prefix: str, limit: int) -> list[User]:
        return users.search_users(tx, prefix, limit)
