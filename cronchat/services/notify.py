"""What services tell the realtime side after a commit, as notices on the broker."""

from __future__ import annotations

from typing import Any

from cronchat.models import Event, Message, Summary
from cronchat.realtime.broker import Broker
from cronchat.views import event_json, shared_message_json, summary_json


class Notifier:
    """Publishes after commit, never before: a notice describes what is already durable."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def events(
        self,
        events: list[Event],
        unread: dict[str, tuple[int, int]] | None = None,
        last_message: Message | None = None,
    ) -> None:
        """Room events, in seq order. With ``unread`` ({user_id: (unread_count,
        last_read_seq)}), each member also gets a ``room.summary`` after the last event."""
        for index, event in enumerate(events):
            notice: dict[str, Any] = {"kind": "event", "event": event_json(event)}
            if unread is not None and index == len(events) - 1:
                notice["summary"] = {
                    "last_seq": event.seq,
                    "last_message": shared_message_json(last_message) if last_message else None,
                    "unread": {user_id: list(pair) for user_id, pair in unread.items()},
                }
            await self.broker.publish(notice)

    async def read(self, user_id: str, summary: Summary) -> None:
        """A member read up to a seq: a receipt for the room, a summary for their devices."""
        await self.broker.publish(
            {
                "kind": "read",
                "room_id": summary.room_id,
                "user_id": user_id,
                "seq": summary.last_read_seq,
                "summary": summary_json(summary),
            }
        )

    async def typing(self, room_id: str, user_id: str) -> None:
        await self.broker.publish({"kind": "typing", "room_id": room_id, "user_id": user_id})
