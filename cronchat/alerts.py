"""Who is alerted: the one decision of whether an event should alert a member, used by the
``mention`` frame's ``notify`` (and push).

Settings never change what is counted (unread and mention counts), only what alerts.
"""

from __future__ import annotations

from cronchat.models import NotificationSettings


def should_alert(settings: NotificationSettings, mention_kind: str | None, now: int) -> bool:
    """Whether a message should alert a member with these settings, at ``now`` (epoch ms):
    ``mention_kind`` is how it mentions them ("user", "room") or None for a plain message.
    Not while muted; never at level ``none``; at level ``mentions`` only for a mention of
    the member, or of the room while ``room_mentions`` is on."""
    if settings.muted_until is not None and settings.muted_until > now:
        return False
    if settings.level == "none":
        return False
    if settings.level == "mentions":
        return mention_kind == "user" or (mention_kind == "room" and settings.room_mentions)
    return True
