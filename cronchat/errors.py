"""Domain errors: each carries the code and HTTP status of the API's error envelope.

Services raise them; the REST base handler and the WebSocket handler turn them into the
envelope (or an ``error`` frame) in one place each.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "internal"
    status = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def envelope(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class Invalid(DomainError):
    """Bad input; ``field`` names the offending field when there is one."""

    code, status = "invalid_request", 400

    def __init__(self, message: str, field: str | None = None, **details: Any) -> None:
        if field is not None:
            details["field"] = field
        super().__init__(message, **details)


class Unauthorized(DomainError):
    code, status = "unauthorized", 401


class InvalidCredentials(DomainError):
    code, status = "invalid_credentials", 401


class Forbidden(DomainError):
    code, status = "forbidden", 403


class NotFound(DomainError):
    code, status = "not_found", 404


class MethodNotAllowed(DomainError):
    code, status = "method_not_allowed", 405


class Conflict(DomainError):
    code, status = "conflict", 409


class PayloadTooLarge(DomainError):
    code, status = "payload_too_large", 413


class HeadersTooLarge(DomainError):
    code, status = "headers_too_large", 431


class UnsupportedMediaType(DomainError):
    code, status = "unsupported_media_type", 415


class RateLimited(DomainError):
    code, status = "rate_limited", 429

    def __init__(self, message: str, retry_after_ms: int) -> None:
        super().__init__(message, retry_after_ms=retry_after_ms)
        self.retry_after_ms = retry_after_ms


class Unavailable(DomainError):
    code, status = "unavailable", 503
