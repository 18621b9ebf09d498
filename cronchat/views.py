"""The JSON shape of each domain value, one function each, as API.md and openapi.yaml say."""

from __future__ import annotations

from typing import Any

from cronchat.models import AuthResult, User
from cronchat.times import rfc3339


def user_json(user: User, online: bool = False) -> dict[str, Any]:
    """The public profile: nothing secret, ever."""
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "bio": user.bio,
        "avatar_url": None,
        "created_at": rfc3339(user.created_at),
        "online": online,
        "last_seen_at": rfc3339(user.last_seen_at),
    }


def auth_json(result: AuthResult) -> dict[str, Any]:
    return {
        "user": user_json(result.user, online=False),
        "access_token": result.access_token,
        "refresh_token": result.refresh_token,
        "token_type": "Bearer",
        "expires_in": result.expires_in,
    }
