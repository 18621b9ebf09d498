"""Pushers: the devices a user registers to be pushed to while no socket of theirs is open,
a browser's Web Push subscription (``webpush``) or a device behind a Matrix-style push
gateway (``gateway``).

Their URLs are chosen by clients, so each is judged by the egress guard
(:mod:`cronchat.egress`) when registered, and again by every request sent to it. A pusher
belongs to the session that registered it: logout and every other end of a session remove
it (:mod:`cronchat.repos.sessions`), and so does deleting the account. The same device
registered again replaces itself (its new keys, its new session).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cronchat.db import Database, Tx, UniqueViolation
from cronchat.egress import Egress, check_url
from cronchat.errors import Conflict, Invalid, NotFound
from cronchat.ids import new_id
from cronchat.models import Principal, Pusher
from cronchat.push.webpush import SubscriptionKeys
from cronchat.repos import pushers
from cronchat.times import now_ms

KINDS = ("webpush", "gateway")
MAX_PUSHERS = 20  # per user
URL_MAX = 2048
PUSHKEY_MAX = 512
APP_ID_MAX = 64


@dataclass(frozen=True, slots=True)
class RegisterPusher:
    kind: str
    endpoint: str | None = None
    keys: dict[str, Any] | None = None
    url: str | None = None
    pushkey: str | None = None
    app_id: str | None = None


def _bounded(value: str | None, field: str, most: int) -> str:
    cleaned = (value or "").strip()
    if not 1 <= len(cleaned) <= most:
        raise Invalid(f"{field} must be 1-{most} characters", field=field)
    if not cleaned.isprintable():
        raise Invalid(f"{field} must be printable", field=field)
    return cleaned


def _device_key(*parts: str) -> str:
    """What names a device whoever registers it: a digest of what reaches it."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class Pushers:
    def __init__(self, db: Database, egress: Egress) -> None:
        self.db = db
        self.egress = egress

    async def register(self, principal: Principal, cmd: RegisterPusher) -> tuple[Pusher, bool]:
        """Register a device for the caller's session; created False when the device was
        registered before (it is replaced)."""
        now = now_ms()
        user, session_id = principal.user, principal.session_id
        # The body's shape first; the destination, which may take a DNS lookup, last.
        if cmd.kind == "webpush":
            field = "endpoint"
            url = _bounded(cmd.endpoint, field, URL_MAX)
            check_url(url, self.egress.allow_private, field)
            if not isinstance(cmd.keys, dict):
                raise Invalid("keys {p256dh, auth} is required", field="keys")
            keys = SubscriptionKeys.parse(cmd.keys.get("p256dh"), cmd.keys.get("auth"))
            pusher = Pusher(
                new_id(), user.id, session_id, "webpush", url, keys.p256dh, keys.auth,
                None, None, now,
            )  # fmt: skip
            device_key = _device_key("webpush", url)
        elif cmd.kind == "gateway":
            field = "url"
            url = _bounded(cmd.url, field, URL_MAX)
            check_url(url, self.egress.allow_private, field)
            pushkey = _bounded(cmd.pushkey, "pushkey", PUSHKEY_MAX)
            app_id = _bounded(cmd.app_id, "app_id", APP_ID_MAX)
            pusher = Pusher(
                new_id(), user.id, session_id, "gateway", url, None, None, pushkey, app_id, now
            )
            device_key = _device_key("gateway", url, app_id, pushkey)
        else:
            raise Invalid(f"kind must be one of {', '.join(KINDS)}", field="kind")
        await self.egress.check_destination(url, field=field)
        try:
            return await self.db.run(self._register_tx, pusher, device_key, now)
        except UniqueViolation:
            # The same device registered at the same moment elsewhere: it exists now.
            return await self.db.run(self._register_tx, pusher, device_key, now)

    @staticmethod
    def _register_tx(tx: Tx, pusher: Pusher, device_key: str, now: int) -> tuple[Pusher, bool]:
        known = pushers.find_by_device(tx, device_key)
        if known is not None:
            pushers.replace(tx, pusher, device_key, now)
            found = pushers.find_by_device(tx, device_key)
            assert found is not None
            return found, False
        if pushers.count_of_user(tx, pusher.user_id) >= MAX_PUSHERS:
            raise Conflict(f"at most {MAX_PUSHERS} push devices per user; remove one first")
        pushers.insert(tx, pusher, device_key, now)
        return pusher, True

    async def list_pushers(self, principal: Principal) -> list[Pusher]:
        return await self.db.read(pushers.of_user, principal.user.id)

    async def remove(self, principal: Principal, pusher_id: str) -> None:
        """Remove one of the caller's devices; another user's answers 404 as a missing one."""
        if not await self.db.run(pushers.delete, principal.user.id, pusher_id):
            raise NotFound("no such push device")
