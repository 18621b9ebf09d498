"""What services tell the realtime side after a commit, as notices on the broker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from cronchat.media_links import MediaLinks
from cronchat.metrics import Metrics
from cronchat.models import Event, Mentions, Message, Summary, User
from cronchat.realtime.broker import Broker
from cronchat.realtime.notices import (
    BlocksNotice,
    EventNotice,
    EventSummary,
    NotificationsNotice,
    ReadNotice,
    TypingNotice,
    UsersNotice,
    UserUpdatedNotice,
    event_notice,
)
from cronchat.views import event_json, shared_message_json, summary_json, user_json

# Which of these users have a socket open, on any process.
OnlineLookup = Callable[[Iterable[str]], Awaitable[set[str]]]


class Notifier:
    """Publishes after commit, never before: a notice describes what is already durable.
    Publishing never waits for other processes (the broker queues for them), so that an
    ack depends on its commit only; the notices of one change go in one publication.

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
        """A new message: its event, carrying each member's summary with it as the room's
        last message."""
        self.metrics.events_published.inc()
        live = self.live_event_json(event)
        await self.broker.publish([event_notice(live, EventSummary(live["data"]))])

    async def summary_events(
        self,
        events: list[Event],
        last_message: Message | None,
        mentions_before: Mentions | None = None,
    ) -> None:
        """Room events that move every member's summary (a deleted message, an edit of
        mentions): the last one's frame carries each member's summary, with the room's last
        message. The hub fills in each member's own counts, read marker and settings;
        ``mentions_before`` is what the last event's message mentioned before it."""
        shaped = shared_message_json(last_message, self.links) if last_message else None
        await self._publish(events, EventSummary(shaped), mentions_before)

    async def _publish(
        self,
        events: list[Event],
        summary: EventSummary | None,
        mentions_before: Mentions | None = None,
    ) -> None:
        if not events:
            return
        self.metrics.events_published.inc(len(events))
        notices: list[EventNotice] = [
            event_notice(self.live_event_json(event)) for event in events[:-1]
        ]
        last = self.live_event_json(events[-1])
        notices.append(event_notice(last, summary, mentions_before))
        await self.broker.publish(notices)

    async def read(self, user_id: str, summary: Summary) -> None:
        """A member read up to a seq: a receipt for the room, a summary for their devices."""
        notice = ReadNotice(
            summary.room_id,
            user_id,
            summary.last_read_seq,
            summary.last_seq,
            summary.unread_count,
            summary_json(summary, self.links),
            summary.unread_mention_count,
        )
        await self.broker.publish([notice])

    async def notifications(self, user_id: str, summary: Summary) -> None:
        """A member's notification settings of a room changed: their summary, for their
        devices."""
        room = summary_json(summary, self.links)
        await self.broker.publish(
            [NotificationsNotice(summary.room_id, user_id, summary.notifications, room)]
        )

    async def user_updated(self, user: User, room_ids: list[str]) -> None:
        """A profile changed: the user's public profile, for their own sockets and those of
        everyone in ``room_ids`` (their rooms), who may all see its presence fields."""
        online = user.id in await self.online([user.id])
        shaped = user_json(user, online, self.links)
        await self.broker.publish([UserUpdatedNotice(user.id, shaped, tuple(room_ids))])

    async def blocks(self, user_id: str, blocked_ids: frozenset[str]) -> None:
        """A user's blocks changed: whom they block now, for their devices."""
        await self.broker.publish([BlocksNotice(user_id, tuple(sorted(blocked_ids)))])

    async def to_users(self, user_ids: Iterable[str], frame: dict[str, Any]) -> None:
        """A frame for the sockets of these users, on every process."""
        recipients = tuple(dict.fromkeys(user_ids))
        if recipients:
            await self.broker.publish([UsersNotice(recipients, frame)])

    async def typing(self, room_id: str, user_id: str) -> None:
        await self.broker.publish([TypingNotice(room_id, user_id)])
