"""REST handlers of a user's mentions and their notification settings of a room."""

from __future__ import annotations

from cronchat import validation
from cronchat.event_data import notifications_data
from cronchat.services.notifications import SetNotifications
from cronchat.views import mention_json
from cronchat.web.base import BaseHandler


class MentionsHandler(BaseHandler):
    async def get(self) -> None:
        found, next_cursor = await self.services.notifications.mentions(
            self.principal.user,
            limit=self.query_int("limit", 50),
            cursor=self.get_query_argument("cursor", None) or None,
            unread=self.query_bool("unread"),
            room_id=self.get_query_argument("room_id", None) or None,
        )
        self.write_json(
            {"mentions": [mention_json(m, self.links) for m in found], "next_cursor": next_cursor}
        )


class NotificationsHandler(BaseHandler):
    async def put(self, room_id: str) -> None:
        given = self.json_object()
        body = validation.parse(SetNotifications, given)
        settings = await self.services.notifications.set_notifications(
            self.principal.user, room_id, body, keep_mute="muted_until" not in given
        )
        self.write_json(notifications_data(settings))
