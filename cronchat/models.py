"""Domain values passed between layers: plain, frozen dataclasses (built from rows by
:mod:`cronchat.repos.rows`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    display_name: str
    bio: str
    avatar_media_id: str | None
    is_admin: bool
    disabled: bool
    created_at: int
    last_seen_at: int | None
    deleted: bool = False  # the account was deleted: its profile answers as "Deleted user"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an authenticated user, the session their token belongs to, and when
    the token expires (epoch seconds)."""

    user: User
    session_id: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class AuthResult:
    user: User
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: str


@dataclass(frozen=True, slots=True)
class Event:
    """A room event: the change, its seq in the room, and its JSON ``data``."""

    room_id: str
    seq: int
    type: str
    actor_id: str
    at: int
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Room:
    id: str
    kind: str
    name: str
    topic: str
    avatar_media_id: str | None
    member_count: int
    last_seq: int
    last_message_seq: int | None
    created_at: int
    updated_at: int
    last_activity_at: int


@dataclass(frozen=True, slots=True)
class Membership:
    room_id: str
    user_id: str
    role: str
    joined_at: int
    last_read_seq: int
    # A timed mute by the room's admins (epoch ms; past or None: not muted).
    muted_until: int | None = None


@dataclass(frozen=True, slots=True)
class Member:
    """A member as listed: the profile with the role, how far they have read, and until
    when the room's admins muted them."""

    user: User
    role: str
    joined_at: int
    last_read_seq: int = 0
    muted_until: int | None = None


@dataclass(frozen=True, slots=True)
class Ban:
    """A user banned from a room (``banned_by`` None for the operator); a ban whose
    ``expires_at`` has passed no longer holds."""

    room_id: str
    user: User
    banned_by: str | None
    reason: str
    created_at: int
    expires_at: int | None


@dataclass(frozen=True, slots=True)
class ReplyRef:
    id: str
    sender_id: str
    excerpt: str | None
    deleted: bool


@dataclass(frozen=True, slots=True)
class ReactionCount:
    emoji: str
    count: int
    me: bool


@dataclass(frozen=True, slots=True)
class MediaInfo:
    id: str
    owner_id: str
    content_type: str
    width: int
    height: int
    size: int


@dataclass(frozen=True, slots=True)
class MediaRecord:
    """An upload as stored: where its bytes are, what it is for, and whether it was used."""

    id: str
    owner_id: str
    purpose: str  # "message" or "avatar"
    storage_key: str
    thumbnail_key: str
    content_type: str
    width: int
    height: int
    size: int
    checksum: str  # sha256 of the stored bytes, hex
    created_at: int
    used_at: int | None

    def info(self) -> MediaInfo:
        return MediaInfo(
            self.id, self.owner_id, self.content_type, self.width, self.height, self.size
        )


@dataclass(frozen=True, slots=True)
class Mentions:
    """Whom a message mentions: these users, and the whole room when ``room``."""

    user_ids: tuple[str, ...] = ()
    room: bool = False

    def names(self, user_id: str) -> bool:
        """Whether the message mentions this user, by name or through the room."""
        return self.room or user_id in self.user_ids

    def kind_for(self, user_id: str) -> str | None:
        """How it mentions the user: "user" when named, "room" through the room, else None."""
        if user_id in self.user_ids:
            return "user"
        return "room" if self.room else None


NO_MENTIONS = Mentions()

LEVELS = ("all", "mentions", "none")


@dataclass(frozen=True, slots=True)
class NotificationSettings:
    """A member's notification settings for one room; ``muted_until`` in epoch ms."""

    level: str = "all"
    room_mentions: bool = True
    muted_until: int | None = None


DEFAULT_SETTINGS = NotificationSettings()


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    room_id: str
    seq: int
    sender_id: str
    kind: str
    text: str | None
    media: MediaInfo | None
    reply_to: ReplyRef | None
    reactions: tuple[ReactionCount, ...]
    created_at: int
    edited_at: int | None
    deleted: bool
    # Chosen by the sending client, so that the sender's devices match their local echo.
    client_msg_id: str | None = None
    mentions: Mentions = NO_MENTIONS


@dataclass(frozen=True, slots=True)
class Mention:
    """A mention of a user as their feed lists it: the message, how it names them ("user"
    or "room"), and whether their read marker passed it."""

    message: Message
    kind: str
    read: bool


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A moderation act as the audit log holds it; ``actor_id`` None for the operator."""

    id: str
    at: int
    actor_id: str | None
    action: str
    room_id: str | None
    target_user_id: str | None
    message_id: str | None
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Export:
    """A download of everything a user owns: ``pending`` while it is prepared, then
    ``ready`` (its zip in the media store under ``storage_key`` until ``expires_at``) or
    ``failed``."""

    id: str
    user_id: str
    status: str
    storage_key: str | None
    size: int | None
    created_at: int
    ready_at: int | None
    expires_at: int | None


@dataclass(frozen=True, slots=True)
class Pusher:
    """A device a user is pushed to: ``webpush`` (a browser's subscription: ``url`` is its
    endpoint, with its keys) or ``gateway`` (``url`` is a Matrix-style push gateway, with the
    device's ``pushkey`` and ``app_id``), registered by ``session_id``."""

    id: str
    user_id: str
    session_id: str | None
    kind: str
    url: str
    p256dh: str | None
    auth: str | None
    pushkey: str | None
    app_id: str | None
    created_at: int


@dataclass(frozen=True, slots=True)
class RoomView:
    """A room as one member sees it."""

    room: Room
    my_role: str
    last_read_seq: int
    unread_count: int
    last_message: Message | None
    peer: User | None
    unread_mention_count: int = 0
    notifications: NotificationSettings = DEFAULT_SETTINGS


@dataclass(frozen=True, slots=True)
class Summary:
    """The part of a member's room view that moves with every message and read."""

    room_id: str
    last_seq: int
    last_message: Message | None
    unread_count: int
    last_read_seq: int
    unread_mention_count: int = 0
    notifications: NotificationSettings = DEFAULT_SETTINGS


@dataclass(frozen=True, slots=True)
class ReadState:
    """Where a member stands in a room: its last seq, their unread and mention counts, their
    read marker and notification settings."""

    last_seq: int
    unread_count: int
    last_read_seq: int
    unread_mention_count: int = 0
    notifications: NotificationSettings = DEFAULT_SETTINGS


REPORT_REASONS = ("spam", "harassment", "hate", "sexual", "violence", "self_harm", "other")
REPORT_STATUSES = ("open", "resolved", "dismissed")


@dataclass(frozen=True, slots=True)
class ReportSnapshot:
    """A reported message as it was when the report was filed: edits and deletion do not
    change it; once the report is handled, a deleted message's text and media leave it."""

    sender_id: str
    kind: str
    text: str | None
    media_id: str | None
    created_at: int
    edited_at: int | None


@dataclass(frozen=True, slots=True)
class Report:
    """A report of a message; ``reporter_id`` None once the reporter's account is gone,
    ``handled_by`` None while open or when the operator (the CLI) handled it."""

    id: str
    room_id: str
    message_id: str
    reporter_id: str | None
    reason: str
    comment: str | None
    status: str
    snapshot: ReportSnapshot
    created_at: int
    handled_by: str | None
    handled_at: int | None
    note: str | None
