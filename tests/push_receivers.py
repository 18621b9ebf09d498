"""The tests' own push services, served on loopback: what CronChat's pushes reach.

``WebPushReceiver`` plays a Web Push service and the browser behind it: it makes
subscriptions (a P-256 key pair and a 16-byte auth secret each, the ``{endpoint, keys}`` a
browser gives), and for each ``POST /push/<token>`` checks what a push service checks (the
VAPID token of RFC 8292: scheme, ES256 signature by the key in ``k``, ``aud`` its own origin,
``exp`` ahead and within 24 hours, a ``sub``; a ``TTL``; ``Content-Encoding: aes128gcm``),
then decrypts the body as the browser would (RFC 8291) and records the JSON. It answers 201,
or the status a test sets (404, 410, 429, 500...). A request that fails a check is answered
400, 401 or 403 and recorded in ``problems``.

``GatewayReceiver`` plays a Matrix-style push gateway (Sygnal): it checks the shape of the
notify body, records each notification and answers ``{"rejected": [...]}``.

The decryption here is written from RFC 8291 with the primitives of ``cryptography``, not
with ``http_ece`` (which the server encrypts with), so that a misuse of the library is not
confirmed by the same library. The fixtures ``webpush_receiver`` and ``push_gateway`` come
into a test module with ``from push_receivers import webpush_receiver_fixture  # noqa: F401``
(and ``push_gateway_fixture``), or with ``pytest_plugins = ["push_receivers"]``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

MAX_VAPID_LIFETIME = 24 * 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PushRejected(Exception):
    """A request a push service would refuse: the status it answers and why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _hkdf(salt: bytes, secret: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(secret)


def decrypt_push(body: bytes, private_key: ec.EllipticCurvePrivateKey, auth_secret: bytes) -> bytes:
    """The plaintext of an aes128gcm push body (RFC 8291 section 3, RFC 8188 section 2), as
    the user agent holding ``private_key`` and ``auth_secret`` reads it; ValueError if not."""
    if len(body) < 21:
        raise ValueError("shorter than the aes128gcm header")
    salt, record_size, key_id_length = body[:16], int.from_bytes(body[16:20], "big"), body[20]
    sender_public = body[21 : 21 + key_id_length]
    ciphertext = body[21 + key_id_length :]
    if key_id_length != 65 or sender_public[:1] != b"\x04":
        raise ValueError("the keyid is not the sender's uncompressed P-256 key")
    if len(ciphertext) > record_size or len(ciphertext) < 17:
        raise ValueError("a push is exactly one record")  # RFC 8291 section 4
    receiver_public = private_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    shared = private_key.exchange(
        ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_public)
    )
    key_info = b"WebPush: info\x00" + receiver_public + sender_public
    input_key = _hkdf(auth_secret, shared, key_info, 32)
    content_key = _hkdf(salt, input_key, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, input_key, b"Content-Encoding: nonce\x00", 12)
    try:
        padded = AESGCM(content_key).decrypt(nonce, ciphertext, None)
    except InvalidTag:
        raise ValueError("the record does not decrypt (wrong keys, or altered)") from None
    unpadded = padded.rstrip(b"\x00")
    if not unpadded.endswith(b"\x02"):
        raise ValueError("the last record's padding delimiter is not 0x02")
    return unpadded[:-1]


def vapid_params(authorization: str) -> dict[str, str]:
    """The ``t`` and ``k`` of an ``Authorization: vapid t=..., k=...`` header (RFC 8292
    section 3)."""
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() != "vapid":
        raise PushRejected(401, f"Authorization scheme {scheme!r}, not vapid")
    params: dict[str, str] = {}
    for part in rest.split(","):
        name, equals, value = part.strip().partition("=")
        if equals:
            params[name.strip().lower()] = value.strip().strip('"')
    if "t" not in params or "k" not in params:
        raise PushRejected(401, "the vapid Authorization lacks t= or k=")
    return params


def check_vapid(authorization: str, origin: str, now: float) -> tuple[str, dict[str, Any]]:
    """The public key (``k``) and the claims of a valid VAPID header for a push service at
    ``origin``; :class:`PushRejected` (401) otherwise."""
    params = vapid_params(authorization)
    try:
        point = unb64url(params["k"])
        public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError as error:
        raise PushRejected(401, f"k= is not a P-256 public key: {error}") from None
    try:
        header = jwt.get_unverified_header(params["t"])
        claims = jwt.decode(
            params["t"],
            public_key,
            algorithms=["ES256"],
            audience=origin,
            options={"require": ["aud", "exp", "sub"]},
        )
    except jwt.PyJWTError as error:
        raise PushRejected(401, f"the VAPID token does not verify: {error}") from None
    if header.get("typ", "JWT").upper() != "JWT":
        raise PushRejected(401, f"the token's typ is {header.get('typ')!r}")
    if claims["exp"] > now + MAX_VAPID_LIFETIME:
        raise PushRejected(401, f"exp {claims['exp']} is more than 24 hours after {int(now)}")
    if not str(claims["sub"]).startswith(("mailto:", "https:")):
        raise PushRejected(401, f"sub {claims['sub']!r} is not a mailto: or https: URI")
    return params["k"], claims


@dataclass
class ReceivedPush:
    """A push as delivered: the decrypted JSON, the request's headers, the VAPID key that
    signed it and the token's claims."""

    payload: Any
    headers: dict[str, str]
    vapid_key: str
    claims: dict[str, Any]
    body_size: int


@dataclass
class Subscription:
    """A browser's push subscription. ``status`` (None: the receiver's) is what pushes to it
    are answered; ``application_server_key`` set, pushes signed by another key get 403."""

    token: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth_secret: bytes
    application_server_key: str | None = None
    status: int | None = None
    pushes: list[ReceivedPush] = field(default_factory=list)

    @property
    def p256dh(self) -> str:
        return b64url(
            self.private_key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )

    @property
    def auth(self) -> str:
        return b64url(self.auth_secret)

    def as_json(self) -> dict[str, Any]:
        """What ``PushSubscription.toJSON()`` gives a page: the body of a registration."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}

    def decrypt(self, body: bytes) -> bytes:
        return decrypt_push(body, self.private_key, self.auth_secret)


class _LoopbackServer:
    """A Tornado app on a port of 127.0.0.1 that can go down and come back on the same port."""

    def __init__(self, app: Application) -> None:
        self._app = app
        self._server: HTTPServer | None = None
        self.port = 0
        self.requests = 0  # every request that reached a handler

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Listen (again, on the same port once one was taken)."""
        if self._server is not None:
            return
        sockets = bind_sockets(self.port, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self._server = HTTPServer(self._app)
        self._server.add_sockets(sockets)

    async def stop(self) -> None:
        """Refuse connections from now on, closing open ones (a push service that is down)."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.stop()
        await server.close_all_connections()


class WebPushReceiver(_LoopbackServer):
    """A push service and its browsers; see the module's docstring."""

    def __init__(self) -> None:
        super().__init__(
            Application([(r"/push/([A-Za-z0-9_-]+)", _WebPushHandler, {"receiver": self})])
        )
        self.subscriptions: dict[str, Subscription] = {}
        self.status = 201
        self.retry_after: int | None = None
        self.problems: list[str] = []
        self.answered: list[int] = []  # the status of every push request, in order
        self.arrivals: list[float] = []  # when each push request came (time.monotonic())
        self.hanging = False  # True: take requests and answer none (a push service stuck)

    def subscribe(self, application_server_key: str | None = None) -> Subscription:
        """A new subscription, as ``pushManager.subscribe`` makes one."""
        token = secrets.token_urlsafe(16)
        subscription = Subscription(
            token=token,
            endpoint=f"{self.origin}/push/{token}",
            private_key=ec.generate_private_key(ec.SECP256R1()),
            auth_secret=secrets.token_bytes(16),
            application_server_key=application_server_key,
        )
        self.subscriptions[token] = subscription
        return subscription

    def answer(self, status: int, retry_after: int | None = None) -> None:
        """Answer every push with ``status`` from now on (201 to deliver again)."""
        self.status, self.retry_after = status, retry_after

    @property
    def pushes(self) -> list[ReceivedPush]:
        """Every push delivered, to any subscription, in order of arrival per subscription."""
        return [push for sub in self.subscriptions.values() for push in sub.pushes]

    async def wait_for(
        self, count: int, subscription: Subscription | None = None, timeout: float = 30
    ) -> list[ReceivedPush]:
        """The pushes delivered, once there are at least ``count`` (to ``subscription`` when
        given); fails after ``timeout`` seconds saying what came."""
        deadline = time.monotonic() + timeout
        while True:
            pushes = subscription.pushes if subscription is not None else self.pushes
            if len(pushes) >= count:
                return list(pushes)
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"expected {count} pushes within {timeout} s, got {len(pushes)}:"
                    f" {[push.payload for push in pushes]}; problems: {self.problems}"
                )
            await asyncio.sleep(0.05)

    def receive(self, token: str, headers: dict[str, str], body: bytes) -> ReceivedPush:
        """Check and decrypt one push; :class:`PushRejected` if a push service would refuse it."""
        subscription = self.subscriptions.get(token)
        if subscription is None:
            raise PushRejected(404, f"no subscription {token}")
        if "Authorization" not in headers:
            raise PushRejected(401, "no Authorization header")
        key, claims = check_vapid(headers["Authorization"], self.origin, time.time())
        wanted = subscription.application_server_key
        if wanted is not None and key != wanted:
            raise PushRejected(403, "signed by another key than the subscription's")
        ttl = headers.get("Ttl", "")
        if not ttl.isdigit():
            raise PushRejected(400, f"TTL header {ttl!r}: RFC 8030 requires one")
        if headers.get("Content-Encoding") != "aes128gcm":
            raise PushRejected(400, f"Content-Encoding {headers.get('Content-Encoding')!r}")
        if len(body) > 4096:
            raise PushRejected(413, f"a body of {len(body)} bytes (at most 4096)")
        try:
            payload = json.loads(subscription.decrypt(body))
        except ValueError as error:
            raise PushRejected(400, f"the body does not decrypt to JSON: {error}") from None
        return ReceivedPush(payload, headers, key, claims, len(body))


class _WebPushHandler(RequestHandler):
    def initialize(self, receiver: WebPushReceiver) -> None:
        self.receiver = receiver
        self._closed = asyncio.Event()

    def on_connection_close(self) -> None:
        self._closed.set()

    async def post(self, token: str) -> None:
        receiver = self.receiver
        receiver.requests += 1
        receiver.arrivals.append(time.monotonic())
        if receiver.hanging:
            await self._closed.wait()  # answered never; the sender gives up or dies
            return
        headers = dict(self.request.headers.get_all())
        try:
            push = receiver.receive(token, headers, self.request.body)
        except PushRejected as rejection:
            receiver.problems.append(f"{rejection.status}: {rejection.reason}")
            receiver.answered.append(rejection.status)
            self.set_status(rejection.status)
            self.finish(rejection.reason)
            return
        subscription = receiver.subscriptions[token]
        status = subscription.status or receiver.status
        receiver.answered.append(status)
        if status == 201:
            subscription.pushes.append(push)
            self.set_header("Location", f"{receiver.origin}/message/{secrets.token_hex(8)}")
        elif status == 429 and receiver.retry_after is not None:
            self.set_header("Retry-After", str(receiver.retry_after))
        self.set_status(status)
        self.finish()


class GatewayReceiver(_LoopbackServer):
    """A Matrix-style push gateway; see the module's docstring."""

    PATH = "/_matrix/push/v1/notify"

    def __init__(self) -> None:
        super().__init__(Application([(self.PATH, _GatewayHandler, {"receiver": self})]))
        self.notifications: list[dict[str, Any]] = []
        self.rejected: set[str] = set()  # pushkeys answered as rejected
        self.status = 200
        self.problems: list[str] = []
        self.answered: list[int] = []

    @property
    def url(self) -> str:
        """The pusher's ``url``."""
        return self.origin + self.PATH

    def answer(self, status: int) -> None:
        self.status = status

    def reject(self, pushkey: str) -> None:
        """Answer pushes to this pushkey ``{"rejected": [pushkey]}`` (the app was removed)."""
        self.rejected.add(pushkey)

    async def wait_for(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.notifications) < count:
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"expected {count} notifications within {timeout} s, got"
                    f" {self.notifications}; problems: {self.problems}"
                )
            await asyncio.sleep(0.05)
        return list(self.notifications)


def check_notify_body(body: bytes) -> dict[str, Any]:
    """The ``notification`` of a notify body of the Matrix Push Gateway API, its shape checked:
    ``devices`` (each with ``app_id`` and ``pushkey``), ``counts.unread``, ``room_id`` (which
    CronChat always sends), and ``event_id`` for a message (a read, counts only, has none)."""
    try:
        document = json.loads(body)
    except ValueError:
        raise PushRejected(400, "the body is not JSON") from None
    notification = document.get("notification") if isinstance(document, dict) else None
    if not isinstance(notification, dict):
        raise PushRejected(400, "no notification object")
    devices = notification.get("devices")
    if not isinstance(devices, list) or not devices:
        raise PushRejected(400, "notification.devices must be a non-empty list")
    for device in devices:
        if not isinstance(device, dict) or not all(
            isinstance(device.get(name), str) and device[name] for name in ("app_id", "pushkey")
        ):
            raise PushRejected(400, f"a device without app_id and pushkey: {device!r}")
    counts = notification.get("counts")
    if not isinstance(counts, dict) or not isinstance(counts.get("unread"), int):
        raise PushRejected(400, "notification.counts.unread must be an integer")
    if not isinstance(notification.get("room_id"), str):
        raise PushRejected(400, "notification.room_id must be a string")
    if "event_id" in notification and not isinstance(notification["event_id"], str):
        raise PushRejected(400, "notification.event_id must be a string")
    if notification.get("prio", "high") not in ("high", "low"):
        raise PushRejected(400, f"prio {notification.get('prio')!r}")
    content = notification.get("content")
    if content is not None and not isinstance(content, dict):
        raise PushRejected(400, "notification.content must be an object")
    return notification


class _GatewayHandler(RequestHandler):
    def initialize(self, receiver: GatewayReceiver) -> None:
        self.receiver = receiver

    def post(self) -> None:
        receiver = self.receiver
        receiver.requests += 1
        try:
            if "application/json" not in self.request.headers.get("Content-Type", ""):
                raise PushRejected(400, "Content-Type is not application/json")
            notification = check_notify_body(self.request.body)
        except PushRejected as rejection:
            receiver.problems.append(f"{rejection.status}: {rejection.reason}")
            receiver.answered.append(rejection.status)
            self.set_status(rejection.status)
            self.finish({"errcode": "M_BAD_JSON", "error": rejection.reason})
            return
        receiver.answered.append(receiver.status)
        self.set_status(receiver.status)
        if receiver.status != 200:
            self.finish()
            return
        receiver.notifications.append(notification)
        keys = [device["pushkey"] for device in notification["devices"]]
        self.finish({"rejected": [key for key in keys if key in receiver.rejected]})


@pytest.fixture(name="webpush_receiver")
def webpush_receiver_fixture(io_loop: Any) -> Iterator[WebPushReceiver]:
    """A push service on loopback for this test (pytest-tornado's loop)."""
    receiver = WebPushReceiver()
    receiver.start()
    yield receiver
    io_loop.run_sync(receiver.stop)


@pytest.fixture(name="push_gateway")
def push_gateway_fixture(io_loop: Any) -> Iterator[GatewayReceiver]:
    """A push gateway on loopback for this test (pytest-tornado's loop)."""
    receiver = GatewayReceiver()
    receiver.start()
    yield receiver
    io_loop.run_sync(receiver.stop)
