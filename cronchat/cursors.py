"""Opaque paging cursors: the (time, id) of a page's last item, which the next page starts
after. A client cannot read or forge a position out of them."""

from __future__ import annotations

import base64
import binascii

from cronchat.errors import Invalid


def encode_cursor(at: int, item_id: str) -> str:
    return base64.urlsafe_b64encode(f"{at}:{item_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The (time, id) of a cursor this server gave; Invalid naming ``cursor`` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, item_id = raw.split(":", 1)
        if not item_id:
            raise ValueError(cursor)
        return int(at), item_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Invalid("cursor is not one this server gave", field="cursor") from None
