"""What counts as a reaction: one emoji (a single grapheme) or a short ``:name:``."""

from __future__ import annotations

import re
import unicodedata

SHORTCODE = re.compile(r":[a-z0-9_+-]{1,32}:")
MAX_CODE_POINTS = 16

ZWJ = "\u200d"
VARIATION_SELECTOR = "\ufe0f"
KEYCAP = "\u20e3"


def _is_modifier(char: str) -> bool:
    code = ord(char)
    return (
        char in (VARIATION_SELECTOR, KEYCAP, "\ufe0e")
        or 0x1F3FB <= code <= 0x1F3FF  # skin tones
        or 0xE0020 <= code <= 0xE007F  # tag sequences (subdivision flags)
    )


def _is_regional_indicator(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _is_base(char: str) -> bool:
    return unicodedata.category(char) == "So" or 0x1F000 <= ord(char) <= 0x1FAFF


def is_emoji(value: str) -> bool:
    """True for one emoji grapheme: a base with modifiers, ZWJ sequences of those, a flag of
    two regional indicators, or a keycap (``1️⃣``); true also for ``:shortcode:``."""
    if SHORTCODE.fullmatch(value):
        return True
    if not value or len(value) > MAX_CODE_POINTS:
        return False
    if len(value) == 2 and all(_is_regional_indicator(char) for char in value):
        return True
    for part in value.split(ZWJ):
        if not part:
            return False
        head, tail = part[0], part[1:]
        keycap = head in "0123456789#*" and tail in (KEYCAP, VARIATION_SELECTOR + KEYCAP)
        if not keycap and not (_is_base(head) and all(_is_modifier(char) for char in tail)):
            return False
    return True
