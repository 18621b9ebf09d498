"""What the push sender posts: one HTTP request, built here, sent through the egress guard."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PushRequest:
    """A ``POST`` to ``url`` with these headers and body; the sender adds nothing but what
    its HTTP client needs (``Content-Length``, ``Host``)."""

    url: str
    headers: dict[str, str]
    body: bytes
