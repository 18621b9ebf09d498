"""Access tokens (HS256 JWTs) and refresh tokens (opaque, stored only as hashes)."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import jwt

from cronchat.config import Secret
from cronchat.errors import Unauthorized

ISSUER = "cronchat"
AUDIENCE = "cronchat-api"


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    session_id: str
    expires_at: int


class TokenIssuer:
    def __init__(self, secret: Secret, access_ttl: int) -> None:
        self._secret = secret
        self.access_ttl = access_ttl

    def issue_access(self, user_id: str, session_id: str) -> str:
        now = int(time.time())
        claims = {
            "sub": user_id,
            "sid": session_id,
            "iat": now,
            "exp": now + self.access_ttl,
            "iss": ISSUER,
            "aud": AUDIENCE,
        }
        return jwt.encode(claims, self._secret.reveal(), algorithm="HS256")

    def decode_access(self, token: str) -> AccessClaims:
        """Verify signature, algorithm, expiry, issuer and audience; raise Unauthorized."""
        try:
            claims = jwt.decode(
                token,
                self._secret.reveal(),
                algorithms=["HS256"],
                issuer=ISSUER,
                audience=AUDIENCE,
                options={"require": ["exp", "iat", "sub", "sid", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the access token has expired") from None
        except jwt.PyJWTError:
            raise Unauthorized("the access token is invalid") from None
        if not isinstance(claims["sub"], str) or not isinstance(claims["sid"], str):
            raise Unauthorized("the access token is invalid")
        return AccessClaims(claims["sub"], claims["sid"], int(claims["exp"]))


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
