"""Opaque paging cursors: the (time, id) of a page's last item, which the next page starts
after, signed with a key of the server's, so that a cursor a client made up, or changed, is
refused (400) rather than read as a position."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from cronchat.errors import Invalid

_KEY_PURPOSE = b"cronchat paging cursors v1"
_MAC_BYTES = 12


class Cursors:
    def __init__(self, server_secret: str) -> None:
        self._key = hmac.new(server_secret.encode(), _KEY_PURPOSE, hashlib.sha256).digest()

    def _mac(self, position: bytes) -> bytes:
        return hmac.new(self._key, position, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, at: int, item_id: str) -> str:
        position = f"{at}:{item_id}".encode()
        return base64.urlsafe_b64encode(self._mac(position) + position).decode().rstrip("=")

    def decode(self, cursor: str) -> tuple[int, str]:
        """The (time, id) of a cursor this server gave; Invalid naming ``cursor`` otherwise."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            mac, position = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
            if not hmac.compare_digest(mac, self._mac(position)):
                raise ValueError(cursor)
            at, item_id = position.decode().split(":", 1)
            return int(at), item_id
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise Invalid("cursor is not one this server gave", field="cursor") from None
