"""Signed, expiring media URLs: what lets an ``<img>`` tag load an image with no header.

A link is ``/api/v1/media/{id}[/thumbnail]?expires=UNIX&signature=SIG`` where SIG is
HMAC-SHA256 over the media id, the variant and the expiry, under a key derived from the
server secret. The link is the whole grant: whoever holds it may load that one variant of
that one image until it expires. Links are made when an answer or an event leaves the
server, never stored (see :mod:`cronchat.views`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from cronchat.errors import Forbidden

ORIGINAL, THUMBNAIL = "original", "thumbnail"
MEDIA_PATH = "/api/v1/media"
_KEY_PURPOSE = b"cronchat media links v1"


class MediaLinks:
    def __init__(self, server_secret: str, ttl: int) -> None:
        # A key of its own, so that a media signature can never pass for a token's.
        self._key = hmac.new(server_secret.encode(), _KEY_PURPOSE, hashlib.sha256).digest()
        self.ttl = ttl
        # Expiries are rounded down to a step, so that the same link is handed out for a
        # while and a browser's cache keeps serving it; a link lives between 0.9 and 1 ttl.
        self._step = max(1, ttl // 10)

    def url(self, media_id: str, variant: str = ORIGINAL, now: float | None = None) -> str:
        expires = (int(time.time() if now is None else now) + self.ttl) // self._step * self._step
        path = f"{MEDIA_PATH}/{media_id}" + ("/thumbnail" if variant == THUMBNAIL else "")
        return f"{path}?expires={expires}&signature={self._sign(media_id, variant, expires)}"

    def verify(
        self, media_id: str, variant: str, expires: str | None, signature: str | None
    ) -> int:
        """The expiry (Unix seconds) of a valid link; Forbidden for a forged or expired one."""
        if not expires or not signature or not (expires.isascii() and expires.isdigit()):
            raise Forbidden("the media link is not valid")
        if len(expires) > 12:
            raise Forbidden("the media link is not valid")
        expected = self._sign(media_id, variant, int(expires))
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise Forbidden("the media link is not valid")
        if int(expires) <= time.time():
            raise Forbidden("the media link has expired; fetch a fresh one")
        return int(expires)

    def _sign(self, media_id: str, variant: str, expires: int) -> str:
        message = f"{media_id}\n{variant}\n{expires}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
