"""Web Push messages (RFC 8030) to a browser's push subscription: the payload encrypted per
RFC 8291 (the ``aes128gcm`` content coding of RFC 8188, done by ``http_ece``) and the request
signed with VAPID (RFC 8292)."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

import http_ece  # type: ignore[import-untyped]
from cryptography.hazmat.primitives.asymmetric import ec

from cronchat.errors import Invalid
from cronchat.push.request import PushRequest
from cronchat.push.vapid import VapidKeys, b64url_decode, b64url_encode

# RFC 8291 section 4: one record of 4096 bytes holds the header (86 bytes), the padding
# delimiter (1) and the tag (16); push services must accept a body of 4096 bytes, so the
# plaintext of a push is at most 3993 bytes.
RECORD_SIZE = 4096
MAX_PLAINTEXT = 3993
# How long a push service keeps a push for a device that is away (RFC 8030 section 5.2).
DEFAULT_TTL = 24 * 3600
URGENCIES = ("very-low", "low", "normal", "high")
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")


@dataclass(frozen=True, slots=True)
class SubscriptionKeys:
    """The keys of a browser's PushSubscription: ``p256dh`` (its P-256 public key, an
    uncompressed point) and ``auth`` (16 random bytes), both base64url as the browser gives."""

    p256dh: str
    auth: str

    @classmethod
    def parse(cls, p256dh: object, auth: object) -> SubscriptionKeys:
        """Checked keys; :class:`Invalid` naming ``keys.p256dh`` or ``keys.auth`` otherwise."""
        if not isinstance(p256dh, str):
            raise Invalid("keys.p256dh must be a base64url string", field="keys.p256dh")
        if not isinstance(auth, str):
            raise Invalid("keys.auth must be a base64url string", field="keys.auth")
        keys = cls(p256dh.strip(), auth.strip())
        try:
            keys.public_key()
        except ValueError as error:
            raise Invalid(f"keys.p256dh: {error}", field="keys.p256dh") from None
        try:
            keys.auth_secret()
        except ValueError as error:
            raise Invalid(f"keys.auth: {error}", field="keys.auth") from None
        return keys

    def public_key(self) -> bytes:
        """The subscription's public key as bytes, checked to be a point of P-256."""
        point = b64url_decode(self.p256dh)
        if len(point) != 65 or point[0] != 4:
            raise ValueError("expected an uncompressed P-256 point (65 bytes)")
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)  # on the curve
        return point

    def auth_secret(self) -> bytes:
        secret = b64url_decode(self.auth)
        if len(secret) != 16:
            raise ValueError("expected 16 bytes")
        return secret


def encrypt(
    keys: SubscriptionKeys,
    payload: bytes,
    *,
    salt: bytes | None = None,
    sender_key: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """The body of a push carrying ``payload`` to the subscription with ``keys``: RFC 8291,
    one aes128gcm record with a fresh ECDH key pair and salt. ``salt`` and ``sender_key`` are
    given only to reproduce a known example (RFC 8291 section 5); never reuse them."""
    if len(payload) > MAX_PLAINTEXT:
        raise ValueError(f"a push payload is at most {MAX_PLAINTEXT} bytes, not {len(payload)}")
    if sender_key is None:
        sender_key = ec.generate_private_key(ec.SECP256R1())
    body: bytes = http_ece.encrypt(
        payload,
        salt=salt if salt is not None else os.urandom(16),
        private_key=sender_key,
        dh=keys.public_key(),
        auth_secret=keys.auth_secret(),
        version="aes128gcm",
        rs=RECORD_SIZE,
    )
    return body


def topic_for(room_id: str) -> str:
    """The ``Topic`` of a room's pushes (RFC 8030 section 5.4): a push service keeps only the
    latest undelivered push of a topic, so a device that was away gets one per room. At most
    32 base64url characters: a room id that is not one is hashed."""
    if _TOPIC.fullmatch(room_id):
        return room_id
    return b64url_encode(hashlib.sha256(room_id.encode()).digest())[:32]


def webpush_request(
    endpoint: str,
    keys: SubscriptionKeys,
    payload: bytes,
    vapid: VapidKeys,
    now: float,
    *,
    ttl: int = DEFAULT_TTL,
    urgency: str = "normal",
    topic: str | None = None,
) -> PushRequest:
    """The whole request of one push: the encrypted body and the headers of RFC 8030 (``TTL``,
    ``Urgency``, ``Topic``), RFC 8291 (``Content-Encoding: aes128gcm``) and RFC 8292
    (``Authorization: vapid t=..., k=...``) signed at ``now`` (epoch seconds)."""
    if urgency not in URGENCIES:
        raise ValueError(f"urgency must be one of {', '.join(URGENCIES)}")
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Encoding": "aes128gcm",
        "TTL": str(max(0, int(ttl))),
        "Urgency": urgency,
        "Authorization": vapid.authorization(endpoint, now),
    }
    if topic is not None:
        if not _TOPIC.fullmatch(topic):
            raise ValueError("a topic is 1 to 32 base64url characters")
        headers["Topic"] = topic
    return PushRequest(endpoint, headers, encrypt(keys, payload))
