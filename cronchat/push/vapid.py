"""The server's VAPID identity (RFC 8292): one P-256 key pair, its public half announced to
browsers as ``applicationServerKey``, its private half signing a short JWT on every push so
that the push service knows the pushes come from the server the subscription was made for.
"""

from __future__ import annotations

import base64
import binascii
import threading
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

# RFC 8292 section 2: the push service refuses an ``exp`` more than 24 hours ahead.
TOKEN_LIFETIME = 12 * 3600
# A token is reused for the same push service for this long, so that it always has at least
# TOKEN_LIFETIME - TOKEN_REUSE seconds left when it is sent.
TOKEN_REUSE = 3600
# Endpoints are chosen by clients: the cache of tokens per origin is bounded.
_MAX_CACHED_TOKENS = 1024
_DEFAULT_PORTS = {"https": 443, "http": 80}


def b64url_encode(data: bytes) -> str:
    """Base64url without padding, the encoding of every key in Web Push."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Base64url with or without padding (some clients send standard base64: accepted)."""
    cleaned = text.strip().replace("+", "-").replace("/", "_").rstrip("=")
    try:
        return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"not base64url ({error})") from None


def generate_private_key_pem() -> str:
    """A new VAPID private key, as PKCS#8 PEM (the form stored in the data dir)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def parse_private_key(text: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key from PEM (PKCS#8 or SEC 1), from the base64url raw 32-byte scalar
    that web-push tools print, or from base64url DER. Raises ValueError naming the problem."""
    text = text.strip()
    if not text:
        raise ValueError("empty key")
    if text.startswith("-----BEGIN") and "\\n" in text:
        text = text.replace("\\n", "\n")  # a PEM written on one line, as env files hold it
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        else:
            raw = b64url_decode(text)
            if len(raw) == 32:
                key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
            else:
                key = serialization.load_der_private_key(raw, password=None)
    except (TypeError, ValueError) as error:
        raise ValueError(f"not a P-256 private key ({error})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("not a P-256 (prime256v1) elliptic curve key")
    return key


def origin_of(endpoint: str) -> str:
    """The origin of a push endpoint (scheme, host, port unless the default): the ``aud``
    of the VAPID token, which the push service compares with its own origin."""
    parts = urlsplit(endpoint)
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        raise ValueError(f"not an http(s) URL with a host: {endpoint!r}")
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://{host}"


class VapidKeys:
    """The VAPID key pair and subject; signs the ``Authorization`` header of each push.

    Safe to share between threads: the only state is a cache of one token per push service
    (a race at worst signs a token twice)."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, subject: str) -> None:
        self._private_key = private_key
        self.subject = subject
        point = private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self._public_key_b64url = b64url_encode(point)
        self._tokens: dict[str, tuple[int, str]] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, private_key: str, subject: str) -> VapidKeys:
        """From the configured key text (see :func:`parse_private_key`) and subject."""
        return cls(parse_private_key(private_key), subject)

    def public_key_b64url(self) -> str:
        """The public key as an uncompressed P-256 point in base64url: what a browser takes as
        ``applicationServerKey``, what ``GET /push/vapid`` answers and the ``k`` of each push."""
        return self._public_key_b64url

    def token(self, endpoint: str, now: float) -> str:
        """The signed JWT (ES256) for pushes to ``endpoint`` at ``now`` (epoch seconds):
        ``aud`` the endpoint's origin, ``exp`` 12 hours ahead, ``sub`` the subject."""
        audience = origin_of(endpoint)
        issued = int(now)
        with self._lock:
            cached = self._tokens.get(audience)
        if cached is not None and cached[0] <= issued < cached[0] + TOKEN_REUSE:
            return cached[1]
        claims = {"aud": audience, "exp": issued + TOKEN_LIFETIME, "sub": self.subject}
        token = jwt.encode(claims, self._private_key, algorithm="ES256")
        with self._lock:
            if len(self._tokens) >= _MAX_CACHED_TOKENS:
                self._tokens.clear()
            self._tokens[audience] = (issued, token)
        return token

    def authorization(self, endpoint: str, now: float) -> str:
        """The ``Authorization`` header value of RFC 8292: ``vapid t=JWT, k=PUBLIC_KEY``."""
        return f"vapid t={self.token(endpoint, now)}, k={self._public_key_b64url}"

    def __repr__(self) -> str:
        return f"VapidKeys(public_key={self._public_key_b64url!r}, subject={self.subject!r})"
