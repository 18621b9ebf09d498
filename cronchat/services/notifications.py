"""What calls for a member's attention: the feed of their mentions, and their notification
settings of each room (what alerts them: :func:`cronchat.alerts.should_alert`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from cronchat.cursors import Cursors
from cronchat.db import Database, Tx
from cronchat.errors import Invalid
from cronchat.models import LEVELS, Mention, NotificationSettings, Summary, User
from cronchat.realtime.notifier import Notifier
from cronchat.repos import mentions, messages, rooms
from cronchat.services.access import require_member
from cronchat.services.read_markers import summary_tx
from cronchat.times import now_ms, parse_rfc3339

FEED_LIMIT_MAX = 100


@dataclass(frozen=True, slots=True)
class SetNotifications:
    """Settings to change; absent ones stay (see ``keep_mute`` for ``muted_until``, whose
    null unmutes)."""

    level: str | None = None
    room_mentions: bool | None = None
    muted_until: str | None = None


class Notifications:
    def __init__(self, db: Database, notify: Notifier, cursors: Cursors) -> None:
        self.db = db
        self.notify = notify
        self.cursors = cursors

    async def mentions(
        self,
        user: User,
        limit: int = 50,
        cursor: str | None = None,
        unread: bool | None = None,
        room_id: str | None = None,
    ) -> tuple[list[Mention], str | None]:
        """The caller's mentions, newest first, paged by an opaque cursor; only unread (or
        only read) ones with ``unread``, of one room with ``room_id``."""
        if not 1 <= limit <= FEED_LIMIT_MAX:
            raise Invalid(f"limit must be between 1 and {FEED_LIMIT_MAX}", field="limit")
        after = self.cursors.decode(cursor) if cursor else None
        found, has_more = await self.db.read(
            self._mentions_tx, user.id, limit, after, unread, room_id
        )
        next_cursor = None
        if has_more and found:
            last = found[-1].message
            next_cursor = self.cursors.encode(last.created_at, last.id)
        return found, next_cursor

    @staticmethod
    def _mentions_tx(
        tx: Tx,
        user_id: str,
        limit: int,
        after: tuple[int, str] | None,
        unread: bool | None,
        room_id: str | None,
    ) -> tuple[list[Mention], bool]:
        entries = mentions.feed(tx, user_id, limit + 1, after, unread, room_id)
        page = entries[:limit]
        found = messages.messages_by_id(tx, [entry.message_id for entry in page], user_id)
        listed = [
            Mention(found[entry.message_id], entry.kind, entry.read)
            for entry in page
            if entry.message_id in found
        ]
        return listed, len(entries) > limit

    async def set_notifications(
        self, user: User, room_id: str, cmd: SetNotifications, keep_mute: bool
    ) -> NotificationSettings:
        """Change the caller's settings of a room (``keep_mute``: ``muted_until`` was not
        given); every device of theirs gets the room's summary with them."""
        if cmd.level is not None and cmd.level not in LEVELS:
            raise Invalid(f"level must be one of {', '.join(LEVELS)}", field="level")
        muted_until = None
        if not keep_mute and cmd.muted_until is not None:
            muted_until = parse_rfc3339(cmd.muted_until)
            if muted_until is None:
                raise Invalid("muted_until must be an RFC 3339 time", field="muted_until")
            if muted_until <= now_ms():
                raise Invalid("muted_until must be in the future", field="muted_until")
        summary = await self.db.run(self._set_tx, user.id, room_id, cmd, keep_mute, muted_until)
        await self.notify.notifications(user.id, summary)
        return summary.notifications

    @staticmethod
    def _set_tx(
        tx: Tx,
        user_id: str,
        room_id: str,
        cmd: SetNotifications,
        keep_mute: bool,
        muted_until: int | None,
    ) -> Summary:
        require_member(tx, room_id, user_id, lock=True)
        settings = rooms.notifications_of(tx, room_id, user_id)
        assert settings is not None
        if cmd.level is not None:
            settings = replace(settings, level=cmd.level)
        if cmd.room_mentions is not None:
            settings = replace(settings, room_mentions=cmd.room_mentions)
        if not keep_mute:
            settings = replace(settings, muted_until=muted_until)
        rooms.set_notifications(tx, room_id, user_id, settings)
        return summary_tx(tx, room_id, user_id)
