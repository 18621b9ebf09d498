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
# Access tokens whose signature and claims were verified, kept with their claims: a client
# sends the same token with every request until it refreshes, and verifying one costs more
# than the rest of authenticating a request. Past this many, the oldest are verified again.
VERIFIED_MAX = 10_000


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    session_id: str
    expires_at: int


class TokenIssuer:
    def __init__(self, secret: Secret, access_ttl: int) -> None:
        self._secret = secret
        self.access_ttl = access_ttl
        self._verified: dict[str, AccessClaims] = {}

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

    def decode_access(self, token: str, remember: bool = True) -> AccessClaims:
        """Verify signature, algorithm, expiry, issuer and audience; raise Unauthorized. A
        token verified before is not verified again (the same string has the same claims),
        but its expiry is checked each time. ``remember=False``: a token used once (a
        socket's) is verified without being kept."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self._verify(token)
            if not remember:
                return claims
            if len(self._verified) >= VERIFIED_MAX:
                del self._verified[next(iter(self._verified))]
            self._verified[token] = claims
        elif claims.expires_at <= time.time():  # as jwt.decode: expired once exp is reached
            del self._verified[token]
            raise Unauthorized("the access token has expired")
        return claims

    def _verify(self, token: str) -> AccessClaims:
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
