"""Request bodies as dataclasses: :func:`parse` checks presence and JSON types by annotation.

Domain limits (lengths, formats) are rules, checked by the services; this module only makes
sure a value has the shape its field declares, and names the field when it does not. It also
holds :func:`check_shown_text`, the characters any text shown to other users may hold, which
the services apply to the fields they judge.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
import unicodedata
from typing import Any, TypeVar

from cronchat.errors import Invalid

T = TypeVar("T")

_JSON_NAMES = {
    str: "a string",
    int: "an integer",
    bool: "a boolean",
    dict: "an object",
    list: "a list",
}


# How deep a client's JSON may nest: far more than any body or frame of the API needs, far
# less than the decoder's recursion limit.
MAX_JSON_DEPTH = 32


def load_json(raw: bytes | str, what: str = "the body") -> Any:
    """Decode a client's JSON (a REST body or a WebSocket frame), nested at most
    MAX_JSON_DEPTH deep; anything else is Invalid, never a RecursionError."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise Invalid(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise Invalid(f"{what} is not valid JSON") from None
    if _is_deeper_than(value, raw, MAX_JSON_DEPTH):
        raise Invalid(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _is_deeper_than(value: Any, raw: bytes | str, limit: int) -> bool:
    """Whether arrays and objects nest past ``limit``: walked without recursion, and only
    when the text has enough brackets to nest that deep (most have not)."""
    if isinstance(raw, str):
        brackets = raw.count("[") + raw.count("{")
    else:
        brackets = raw.count(b"[") + raw.count(b"{")
    if brackets <= limit:
        return False
    pending = [(value, 1)] if isinstance(value, dict | list) else []
    while pending:
        container, depth = pending.pop()
        children = container.values() if isinstance(container, dict) else container
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                pending.append((child, depth + 1))
    return False


def parse(cls: type[T], data: Any) -> T:
    """Build ``cls`` from a decoded JSON object; unknown keys are ignored."""
    if not isinstance(data, dict):
        raise Invalid("the body must be a JSON object")
    values = {}
    shaped: type = cls  # mypy takes a type[T] for unhashable; every class is hashable
    for name, annotation, required in _shape(shaped):
        if name not in data:
            if required:
                raise Invalid(f"{name} is required", field=name)
            continue
        values[name] = check_type(name, data[name], annotation)
    return cls(**values)


@functools.cache
def _shape(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    """Each field's name, annotation and whether it is required: resolved once per class."""
    hints = typing.get_type_hints(cls)
    return tuple(
        (
            field.name,
            hints[field.name],
            field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING,
        )
        for field in dataclasses.fields(cls)
    )


def check_type(name: str, value: Any, annotation: Any) -> Any:
    """Answer ``value`` if it is of the annotated JSON type, else raise Invalid naming it."""
    allowed = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    if value is None:
        if type(None) in allowed:
            return None
        raise Invalid(f"{name} must not be null", field=name)
    for kind in allowed:
        origin = typing.get_origin(kind) or kind
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return check_int_range(name, value)
        if origin is dict and isinstance(value, dict):
            return value
        if origin is list and isinstance(value, list):
            (item_type,) = typing.get_args(kind) or (Any,)
            if item_type is not Any:
                for item in value:
                    check_type(name, item, item_type)
            return value
        if origin in (str, bool) and isinstance(value, origin):
            return value
    expected = " or ".join(
        f"a list of {_JSON_NAMES[typing.get_args(kind)[0]]}s"
        if typing.get_origin(kind) is list
        else _JSON_NAMES.get(typing.get_origin(kind) or kind, "null")
        for kind in allowed
        if kind is not type(None)
    )
    raise Invalid(f"{name} must be {expected}", field=name)


INT_MIN, INT_MAX = -(2**63), 2**63 - 1


def check_int_range(name: str, value: int) -> int:
    """Integers must fit the database's 64 bits."""
    if not INT_MIN <= value <= INT_MAX:
        raise Invalid(f"{name} is out of range", field=name)
    return value


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


# Embeddings, overrides and isolates: they reorder all that follows them, so that a name can
# read as another ("Alice \u202e)nimda(" shows as "Alice (admin)").
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Direction marks: invisible, they only steer their neighbours. Prose in right-to-left
# scripts needs them now and then; a name does not.
_DIRECTION_MARKS = frozenset("\u200e\u200f\u061c")
# Letters and symbols that draw nothing: Hangul fillers and the blank Braille pattern.
_BLANK_LOOKING = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Categories that draw nothing on their own: controls, format characters (zero-width
# spaces and joiners, tags, the byte order mark), surrogates, private use, separators
# (spaces), and marks, which only decorate the character before them.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zs", "Zl", "Zp", "Mn", "Me", "Mc"})


def check_shown_text(field: str, text: str, lines: bool = False) -> None:
    """Raise Invalid naming ``field`` unless ``text`` is safe to show to other users: no
    control characters (but newlines where ``lines``), no bidirectional embeddings,
    overrides or isolates (nor direction marks, except in ``lines`` of prose), no unpaired
    surrogates, and at least one character that draws something, unless it is blank (whether
    blank text is allowed is the caller's rule)."""
    for character in text:
        category = unicodedata.category(character)
        if category == "Cc" and not (lines and character == "\n"):
            raise Invalid(f"{field} must not contain control characters", field=field)
        if character in _BIDI_CONTROLS or (not lines and character in _DIRECTION_MARKS):
            raise Invalid(
                f"{field} must not contain bidirectional formatting characters", field=field
            )
        if category == "Cs":
            raise Invalid(f"{field} must be valid Unicode (no lone surrogates)", field=field)
    if text.strip() and not any(_draws_something(character) for character in text):
        raise Invalid(f"{field} must show at least one visible character", field=field)


def _draws_something(character: str) -> bool:
    return (
        unicodedata.category(character) not in _INVISIBLE_CATEGORIES
        and character not in _BLANK_LOOKING
    )
