"""Media storage: one small interface and its backends (local disk, S3).

Nothing here knows about rooms, users or media records: a store keeps bytes under keys.
Keys are made by the server, never from user input, and every backend refuses a key that
does not match :data:`KEY_PATTERN`, so that no key can name anything outside the store.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod

# One to four segments of lower-case letters, digits, '-' and '_', each starting with a letter
# or digit, then at most one extension: no '..', no absolute path, no backslash.
KEY_PATTERN = re.compile(
    r"[a-z0-9][a-z0-9_-]{0,63}(?:/[a-z0-9][a-z0-9_-]{0,63}){0,3}(?:\.[a-z0-9]{1,8})?"
)


class StorageError(Exception):
    """The store cannot do what was asked; the message is one line for the operator."""


class MissingObject(StorageError):
    """Nothing is stored under the key."""


def check_key(key: str) -> str:
    """The key itself, or ValueError: a key that fails the pattern is a bug, not bad input."""
    if not KEY_PATTERN.fullmatch(key):
        raise ValueError(f"not a valid storage key: {key!r}")
    return key


class Storage(ABC):
    """Bytes under server-made keys. Every method blocks: run it in a worker thread."""

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key``, replacing whatever was there, all or nothing."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The bytes under ``key``; :class:`MissingObject` when there are none."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""

    @abstractmethod
    def check(self) -> None:
        """Return when the store works; else raise :class:`StorageError` saying why."""

    @abstractmethod
    def describe(self) -> str:
        """Where the store is, safe to print (no secrets)."""
