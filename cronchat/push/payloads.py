"""What a push says: the Web Push payloads of the API (``message`` and ``read``) and the
Matrix push gateway's notify body for the same two, each bounded in size.

``include_content=False`` (``CRONCHAT_PUSH_CONTENT=false``) leaves out every text a person
wrote or chose (room name, sender's display name, excerpt): push services and gateways are
third parties, and some operators want them to carry ids and counts only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cronchat.push.request import PushRequest
from cronchat.push.webpush import MAX_PLAINTEXT

# The notify body of a gateway is bounded like a Web Push payload: gateways relay it to FCM
# and APNs, whose payloads are capped at 4 KiB.
MAX_GATEWAY_BODY = 4096
# Names are cut to this many characters in a push, so that the excerpt always has room.
NAME_LIMIT = 200
ELLIPSIS = "…"


@dataclass(frozen=True, slots=True)
class MessagePush:
    """A message that should alert a member who has no open socket. ``text`` is the message
    text (None for an image without one), ``mention`` how it mentions the member ("user",
    "room" or None), ``unread_count`` the member's unread count of the room."""

    room_id: str
    room_name: str
    seq: int
    message_id: str
    sender_id: str
    sender_display_name: str
    text: str | None
    mention: str | None
    unread_count: int


@dataclass(frozen=True, slots=True)
class ReadPush:
    """The member read the room on some device: their other devices clear its notifications."""

    room_id: str
    unread_count: int


Push = MessagePush | ReadPush


@dataclass(frozen=True, slots=True)
class GatewayDevice:
    """A pusher of a Matrix-style push gateway: the app it relays to and the device's key."""

    app_id: str
    pushkey: str


def webpush_payload(push: Push, *, include_content: bool = True) -> bytes:
    """The JSON a service worker receives, at most :data:`MAX_PLAINTEXT` bytes (the excerpt
    shortened to fit)."""
    if isinstance(push, ReadPush):
        return _json({"type": "read", "room_id": push.room_id, "unread_count": push.unread_count})

    def build(excerpt: str | None) -> bytes:
        sender: dict[str, Any] = {"id": push.sender_id}
        body: dict[str, Any] = {
            "type": "message",
            "room_id": push.room_id,
            "seq": push.seq,
            "message_id": push.message_id,
            "sender": sender,
            "mention": push.mention,
            "unread_count": push.unread_count,
        }
        if include_content:
            body["room_name"] = _cut(push.room_name, NAME_LIMIT)
            sender["display_name"] = _cut(push.sender_display_name, NAME_LIMIT)
            body["excerpt"] = excerpt
        return _json(body)

    return _fit(build, push.text if include_content else None, MAX_PLAINTEXT)


def gateway_body(push: Push, device: GatewayDevice, *, include_content: bool = True) -> bytes:
    """The body of ``POST {url}`` to a push gateway (the Matrix Push Gateway API's
    ``/_matrix/push/v1/notify``): ``event_id`` the message id, ``counts.unread``, the device;
    a read has no ``event_id`` (a counts-only notification, which clears). At most
    :data:`MAX_GATEWAY_BODY` bytes."""
    devices = [{"app_id": device.app_id, "pushkey": device.pushkey}]
    if isinstance(push, ReadPush):
        notification: dict[str, Any] = {
            "room_id": push.room_id,
            "counts": {"unread": push.unread_count},
            "devices": devices,
        }
        return _json({"notification": notification})

    def build(excerpt: str | None) -> bytes:
        notification: dict[str, Any] = {
            "event_id": push.message_id,
            "room_id": push.room_id,
            "type": "m.room.message",
            "sender": push.sender_id,
            "prio": "high",
            "counts": {"unread": push.unread_count},
            "devices": devices,
            "seq": push.seq,
            "mention": push.mention,
        }
        if include_content:
            notification["room_name"] = _cut(push.room_name, NAME_LIMIT)
            notification["sender_display_name"] = _cut(push.sender_display_name, NAME_LIMIT)
            notification["content"] = {"msgtype": "m.text", "body": excerpt}
        return _json({"notification": notification})

    return _fit(build, push.text if include_content else None, MAX_GATEWAY_BODY)


def gateway_request(url: str, body: bytes) -> PushRequest:
    """The request of one gateway push: the notify body as JSON to the pusher's URL."""
    return PushRequest(url, {"Content-Type": "application/json"}, body)


def rejected_pushkeys(response_body: bytes) -> frozenset[str]:
    """The pushkeys a gateway's answer rejects (``{"rejected": [...]}``): their pushers are
    to be removed. An answer that is not that shape rejects none."""
    try:
        answer = json.loads(response_body)
    except (ValueError, UnicodeDecodeError):
        return frozenset()
    rejected = answer.get("rejected") if isinstance(answer, dict) else None
    if not isinstance(rejected, list):
        return frozenset()
    return frozenset(key for key in rejected if isinstance(key, str))


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _cut(text: str, limit: int) -> str:
    """``text`` of at most ``limit`` characters, an ellipsis marking a cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + ELLIPSIS


def _fit(build: Callable[[str | None], bytes], text: str | None, limit: int) -> bytes:
    """``build(text)`` if it fits in ``limit`` bytes, else built with the longest prefix of
    ``text`` (and an ellipsis) that does. JSON escapes make the byte count of a prefix
    uneven, so the prefix is found by bisection on its length in characters."""
    body = build(text)
    if len(body) <= limit or not text:
        if len(body) > limit:
            raise ValueError(f"a push without its text is still over {limit} bytes")
        return body
    shortest = build(ELLIPSIS)
    if len(shortest) > limit:
        raise ValueError(f"a push without its text is still over {limit} bytes")
    low, high = 0, len(text) - 1  # low always fits
    while low < high:
        middle = (low + high + 1) // 2
        if len(build(text[:middle] + ELLIPSIS)) <= limit:
            low = middle
        else:
            high = middle - 1
    return build(text[:low] + ELLIPSIS)
