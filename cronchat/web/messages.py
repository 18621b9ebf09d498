"""REST handlers of a room's messages, reactions, read marker and events."""

from __future__ import annotations

from cronchat.rate_limits import SENDS
from cronchat.services.edits import EditMessage
from cronchat.services.read_markers import MarkRead
from cronchat.services.sending import SendMessage
from cronchat.views import event_json, message_json, read_json
from cronchat.web.base import BaseHandler


class MessagesHandler(BaseHandler):
    rate_rules = {"POST": SENDS}

    async def get(self, room_id: str) -> None:
        found, has_more = await self.services.history.page(
            self.principal.user,
            room_id,
            before_seq=self.query_int("before_seq"),
            after_seq=self.query_int("after_seq"),
            limit=self.query_int("limit", 50),
        )
        self.write_json(
            {"messages": [message_json(m, self.links) for m in found], "has_more": has_more}
        )

    async def post(self, room_id: str) -> None:
        body = self.json_body(SendMessage)
        message, created = await self.services.sending.send(self.principal.user, room_id, body)
        self.write_json(message_json(message, self.links), status=201 if created else 200)


class MessageHandler(BaseHandler):
    async def get(self, room_id: str, message_id: str) -> None:
        message = await self.services.history.get_message(self.principal.user, room_id, message_id)
        self.write_json(message_json(message, self.links))

    async def patch(self, room_id: str, message_id: str) -> None:
        body = self.json_body(EditMessage)
        message = await self.services.edits.edit(self.principal.user, room_id, message_id, body)
        self.write_json(message_json(message, self.links))

    async def delete(self, room_id: str, message_id: str) -> None:
        await self.services.edits.delete(self.principal.user, room_id, message_id)
        self.no_content()


class ReactionHandler(BaseHandler):
    async def put(self, room_id: str, message_id: str, emoji: str) -> None:
        await self.services.reactions.react(self.principal.user, room_id, message_id, emoji, True)
        self.no_content()

    async def delete(self, room_id: str, message_id: str, emoji: str) -> None:
        await self.services.reactions.react(self.principal.user, room_id, message_id, emoji, False)
        self.no_content()


class ReadHandler(BaseHandler):
    async def post(self, room_id: str) -> None:
        body = self.json_body(MarkRead)
        summary = await self.services.read_markers.mark_read(self.principal.user, room_id, body)
        self.write_json(read_json(summary))


class EventsHandler(BaseHandler):
    async def get(self, room_id: str) -> None:
        found, has_more = await self.services.history.events_after(
            self.principal.user,
            room_id,
            after_seq=self.query_int("after_seq", 0),
            limit=self.query_int("limit", 100),
        )
        self.write_json(
            {"events": [event_json(event, self.links) for event in found], "has_more": has_more}
        )
