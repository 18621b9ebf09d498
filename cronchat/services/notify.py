"""What services tell the realtime side after a commit, as notices on the broker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from cronchat.media_links import MediaLinks
from cronchat.metrics import Metrics
from cronchat.models import Event, Message, Summary, User
from cronchat.realtime.broker import Broker
from cronchat.views import event_json, shared_message_json, summary_json, user_json

# Which of these users have a socket open, on any process.
OnlineLookup = Callable[[Iterable[str]], Awaitable[set[str]]]


class Notifier:
    """Publishes after commit, never before: a notice describes what is already durable.
    Publishing never waits for other processes (the broker queues for them), so that an
    ack depends on its commit only.

    Notices carry JSON as sent, media URLs signed here once per notice, so that every
    recipient gets the same bytes."""

    def __init__(
        self,
        broker: Broker,
        metrics: Metrics,
        links: MediaLinks,
        online: OnlineLookup,
    ) -> None:
        self.broker = broker
        self.metrics = metrics
        self.links = links
        self.online = online

    def live_event_json(self, event: Event) -> dict[str, Any]:
        """An event as live delivery sends it: its media URLs signed."""
        return event_json(event, self.links)

    async def events(self, events: list[Event]) -> None:
        """Room events, in seq order."""
        await self._publish(events, None)

    async def message_created(self, event: Event) -> None:
        """A new message: its event, then each member's ``room.summary`` with it as the
        room's last message."""
        self.metrics.events_published.inc()
        live = self.live_event_json(event)
        summary = {"last_message": live["data"]}
        await self.broker.publish({"kind": "event", "event": live, "summary": summary})

    async def summary_events(self, events: list[Event], last_message: Message | None) -> None:
        """Room events that move every member's summary (a deleted message): after the
        last one, each member also gets a ``room.summary`` with the room's last message.
        The hub fills in each member's own unread count and read marker."""
        shaped = shared_message_json(last_message, self.links) if last_message else None
        await self._publish(events, {"last_message": shaped})

    async def _publish(self, events: list[Event], summary: dict[str, Any] | None) -> None:
        self.metrics.events_published.inc(len(events))
        for index, event in enumerate(events):
            notice: dict[str, Any] = {"kind": "event", "event": self.live_event_json(event)}
            if summary is not None and index == len(events) - 1:
                notice["summary"] = summary
            await self.broker.publish(notice)

    async def read(self, user_id: str, summary: Summary) -> None:
        """A member read up to a seq: a receipt for the room, a summary for their devices."""
        await self.broker.publish(
            {
                "kind": "read",
                "room_id": summary.room_id,
                "user_id": user_id,
                "seq": summary.last_read_seq,
                "summary": summary_json(summary, self.links),
            }
        )

    async def user_updated(self, user: User, room_ids: list[str]) -> None:
        """A profile changed: the user's public profile, for their own sockets and those of
        everyone in ``room_ids`` (their rooms), who may all see its presence fields."""
        online = user.id in await self.online([user.id])
        await self.broker.publish(
            {
                "kind": "user.updated",
                "user": user_json(user, online, self.links),
                "room_ids": room_ids,
            }
        )

    async def typing(self, room_id: str, user_id: str) -> None:
        await self.broker.publish({"kind": "typing", "room_id": room_id, "user_id": user_id})
