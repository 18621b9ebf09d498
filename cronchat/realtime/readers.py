"""What the hub reads from the database: stored events to fill a hole in live delivery, and
a member's read state to correct their unread view. Not for clients: no membership check."""

from __future__ import annotations

from dataclasses import replace

from cronchat.db import Database
from cronchat.media_links import MediaLinks
from cronchat.models import ReadState
from cronchat.realtime.notices import EventNotice, event_notice
from cronchat.repos import events, rooms
from cronchat.views import event_json


class StoredEvents:
    """Stored events as live delivery sends them (media URLs signed)."""

    def __init__(self, db: Database, links: MediaLinks) -> None:
        self.db = db
        self.links = links

    async def events_between(
        self, room_id: str, after_seq: int, up_to_seq: int
    ) -> list[EventNotice]:
        found = await self.db.read(events.events_between, room_id, after_seq, up_to_seq)
        return [
            replace(event_notice(event_json(event, self.links)), from_store=True) for event in found
        ]


class StoredReadStates:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def read_state(self, user_id: str, room_id: str) -> ReadState | None:
        """The member's read state in the room; None when they are no longer in it."""
        states = await self.db.read(rooms.read_states, user_id, room_id)
        return states.get(room_id)
