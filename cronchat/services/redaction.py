"""Redaction: deleting a message so that its content exists nowhere a client can read it.

Every deletion of a message goes through :func:`redact_tx`, whoever deletes it and however
(the sender, a room admin or owner, REST or WebSocket), so that the guarantee lives in one
place: history, the event log, ``resume`` and media links all show the tombstone only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from cronchat.db import Tx
from cronchat.event_data import shared_message_data
from cronchat.models import Event, MediaRecord, Mentions, Message
from cronchat.repos import events, media, messages, reports, rooms


@dataclass(frozen=True, slots=True)
class Redacted:
    """A deletion as committed: its event, the room's last message after it, the media
    record it released, whose files are to be removed from the store after commit, and
    whom the message mentioned (their mention counts drop)."""

    event: Event
    last_message: Message | None
    released_media: MediaRecord | None
    mentions: Mentions


def redact_tx(
    tx: Tx, room_id: str, message_id: str, owner: messages.MessageOwner, actor_id: str, now: int
) -> Redacted:
    """Delete a message (``owner`` its row as locked) as redaction; every deletion goes
    through here. In the caller's transaction: the row becomes a tombstone (its mentions
    gone), every stored event of the message carries the tombstone from then on, the replies
    quoting it lose their excerpt in their events too, the snapshots of its handled reports
    lose its text and media (an open report keeps them for its moderators until handled),
    and its media record goes once nothing refers to it, so that its links stop loading.

    The deletion's seq is taken first: that locks the room row, which every send and edit
    of the room holds until commit too, so that a reply sent meanwhile has either committed
    (and is rewritten here) or reads the tombstone once this commits."""
    seq = rooms.next_seq(tx, room_id, now)
    messages.mark_deleted(tx, message_id, now)
    tombstone_message = messages.find_message(tx, room_id, message_id, actor_id)
    assert tombstone_message is not None
    tombstone = shared_message_data(tombstone_message)
    quoted = {
        "id": message_id,
        "sender_id": tombstone_message.sender_id,
        "excerpt": None,
        "deleted": True,
    }
    changed = []
    for event in events.events_of_messages(tx, [message_id, *messages.replies_to(tx, message_id)]):
        if event.data["id"] == message_id:
            changed.append(replace(event, data=tombstone))
        elif (event.data.get("reply_to") or {}).get("id") == message_id:
            changed.append(replace(event, data={**event.data, "reply_to": quoted}))
    events.replace_data(tx, changed)
    event = events.insert_event(tx, room_id, seq, "message.deleted", actor_id, now, tombstone)
    reports.redact_snapshots(tx, message_id)
    released = media.release(tx, owner.media_id) if owner.media_id is not None else None
    last = messages.last_messages(tx, [room_id], actor_id).get(room_id)
    return Redacted(event, last, released, owner.mentions)
