"""What a push carries and how it is sealed: RFC 8291 encryption, RFC 8292 VAPID, the VAPID
key's storage, the payloads and their size bound, the gateway body, and the tests' own push
receivers that the delivery scenarios rely on."""

from __future__ import annotations

import json
import os
import stat
import time
from typing import Any

import http_ece
import jwt
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from push_receivers import (
    GatewayReceiver,
    PushRejected,
    WebPushReceiver,
    b64url,
    check_notify_body,
    decrypt_push,
    push_gateway_fixture,  # noqa: F401 (the push_gateway fixture)
    unb64url,
    webpush_receiver_fixture,  # noqa: F401 (the webpush_receiver fixture)
)
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from cronchat.config import ConfigError, load_settings
from cronchat.errors import Invalid
from cronchat.push import (
    GatewayDevice,
    MessagePush,
    PushRequest,
    ReadPush,
    SubscriptionKeys,
    VapidKeys,
    encrypt,
    gateway_body,
    gateway_request,
    rejected_pushkeys,
    topic_for,
    webpush_payload,
    webpush_request,
)
from cronchat.push.payloads import MAX_GATEWAY_BODY
from cronchat.push.vapid import TOKEN_LIFETIME, TOKEN_REUSE, generate_private_key_pem
from cronchat.push.webpush import MAX_PLAINTEXT

JWT_SECRET = "test-secret-" + "x" * 40

# RFC 8291 section 5 and appendix A: the example's keys, salt, plaintext and body.
RFC_PLAINTEXT = b"When I grow up, I want to be a watermelon"
RFC_AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
RFC_UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
RFC_UA_PUBLIC = (
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
)
RFC_AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
RFC_SALT = "DGv6ra1nlYgDCS1FRnbzlw"
RFC_BODY = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAm"
    "S6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxs"
    "j_Qulcy4a-fN"
)


def scalar_key(text: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(unb64url(text), "big"), ec.SECP256R1())


def vapid_keys(subject: str = "mailto:ops@example.org") -> VapidKeys:
    return VapidKeys.load(generate_private_key_pem(), subject)


def message(**changes: Any) -> MessagePush:
    values: dict[str, Any] = {
        "room_id": "01room",
        "room_name": "Général",
        "seq": 42,
        "message_id": "01message",
        "sender_id": "01alice",
        "sender_display_name": "Alice",
        "text": "see you at 5",
        "mention": "user",
        "unread_count": 3,
    }
    values.update(changes)
    return MessagePush(**values)


# --- RFC 8291: encryption -----------------------------------------------------------------


def test_encrypt_reproduces_the_rfc8291_example() -> None:
    keys = SubscriptionKeys(RFC_UA_PUBLIC, RFC_AUTH)
    body = encrypt(
        keys, RFC_PLAINTEXT, salt=unb64url(RFC_SALT), sender_key=scalar_key(RFC_AS_PRIVATE)
    )
    assert b64url(body) == RFC_BODY


def test_the_receiver_decrypts_the_rfc8291_example() -> None:
    plaintext = decrypt_push(unb64url(RFC_BODY), scalar_key(RFC_UA_PRIVATE), unb64url(RFC_AUTH))
    assert plaintext == RFC_PLAINTEXT


def test_a_push_body_is_read_by_the_receiver_and_by_http_ece() -> None:
    receiver_key = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    keys = SubscriptionKeys.parse(b64url(_point(receiver_key)), b64url(auth))
    payload = webpush_payload(message())

    body = encrypt(keys, payload)

    assert decrypt_push(body, receiver_key, auth) == payload
    assert http_ece.decrypt(body, private_key=receiver_key, auth_secret=auth) == payload
    assert body[16:20] == (4096).to_bytes(4, "big"), "record size 4096"
    assert encrypt(keys, payload) != body, "a fresh key and salt for every push"


def test_the_largest_payload_fills_one_4096_byte_record() -> None:
    receiver_key = ec.generate_private_key(ec.SECP256R1())
    keys = SubscriptionKeys(b64url(_point(receiver_key)), b64url(os.urandom(16)))
    assert len(encrypt(keys, b"x" * MAX_PLAINTEXT)) == 4096
    with pytest.raises(ValueError, match="at most 3993 bytes"):
        encrypt(keys, b"x" * (MAX_PLAINTEXT + 1))


@pytest.mark.parametrize(
    ("p256dh", "auth", "field"),
    [
        ("not base64!", RFC_AUTH, "keys.p256dh"),
        (b64url(b"\x04" + b"\x01" * 64), RFC_AUTH, "keys.p256dh"),  # not on the curve
        (RFC_UA_PUBLIC[:40], RFC_AUTH, "keys.p256dh"),
        (RFC_UA_PUBLIC, b64url(b"short"), "keys.auth"),
        (RFC_UA_PUBLIC, 16, "keys.auth"),
    ],
)
def test_subscription_keys_that_cannot_work_are_refused(p256dh: Any, auth: Any, field: str) -> None:
    with pytest.raises(Invalid) as caught:
        SubscriptionKeys.parse(p256dh, auth)
    assert caught.value.details == {"field": field}


# --- RFC 8292: VAPID ------------------------------------------------------------------------


def test_the_vapid_token_verifies_and_carries_aud_exp_sub() -> None:
    vapid = vapid_keys("mailto:ops@example.org")
    now = 1_800_000_000.4
    header = vapid.authorization("https://push.example.net:8443/wpush/v2/abc?x=1", now)

    scheme, _, params = header.partition(" ")
    values = dict(part.strip().split("=", 1) for part in params.split(","))
    assert scheme == "vapid"
    assert values["k"] == vapid.public_key_b64url()
    claims = jwt.decode(
        values["t"],
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(values["k"])),
        algorithms=["ES256"],
        audience="https://push.example.net:8443",
        options={"verify_exp": False},
    )
    assert claims == {
        "aud": "https://push.example.net:8443",
        "exp": 1_800_000_000 + 12 * 3600,
        "sub": "mailto:ops@example.org",
    }


@pytest.mark.parametrize(
    ("endpoint", "audience"),
    [
        ("https://fcm.googleapis.com/fcm/send/abc", "https://fcm.googleapis.com"),
        (
            "https://Updates.Push.Services.Mozilla.com:443/wpush/v2/x",
            "https://updates.push.services.mozilla.com",
        ),
        ("http://127.0.0.1:8123/push/t", "http://127.0.0.1:8123"),
        ("https://[::1]:9000/push", "https://[::1]:9000"),
    ],
)
def test_the_audience_is_the_push_services_origin(endpoint: str, audience: str) -> None:
    token = vapid_keys().token(endpoint, 1_800_000_000)
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == audience


def test_the_vapid_signature_is_the_raw_r_and_s_of_jws() -> None:
    """ES256 in a JWT is r || s (64 bytes), not DER: a push service reading DER refuses it."""
    vapid = vapid_keys()
    token = vapid.token("https://push.example.net/x", 1_800_000_000)
    signed, _, signature = token.rpartition(".")
    raw = unb64url(signature)
    assert len(raw) == 64
    public_key = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), unb64url(vapid.public_key_b64url())
    )
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public_key.verify(der, signed.encode(), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        public_key.verify(der, signed.encode() + b"x", ec.ECDSA(hashes.SHA256()))


def test_a_vapid_token_is_reused_within_the_hour_then_renewed() -> None:
    vapid = vapid_keys()
    first = vapid.token("https://push.example.net/a", 1_800_000_000)
    assert vapid.token("https://push.example.net/b", 1_800_000_000 + TOKEN_REUSE - 1) == first
    assert vapid.token("https://other.example.net/b", 1_800_000_000) != first
    renewed = vapid.token("https://push.example.net/a", 1_800_000_000 + TOKEN_REUSE)
    assert renewed != first
    claims = jwt.decode(renewed, options={"verify_signature": False})
    assert claims["exp"] == 1_800_000_000 + TOKEN_REUSE + TOKEN_LIFETIME


# --- the VAPID key in the settings ----------------------------------------------------------


def test_the_vapid_key_is_generated_once_into_the_data_dir_0600(tmp_path: Any) -> None:
    first = load_settings({}, data_dir=str(tmp_path), jwt_secret=JWT_SECRET)
    path = tmp_path / "vapid_private_key.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_settings({}, data_dir=str(tmp_path), jwt_secret=JWT_SECRET)
    assert again.vapid_private_key == first.vapid_private_key
    public = VapidKeys.load(again.vapid_private_key.reveal(), again.vapid_subject)
    assert (
        public.public_key_b64url()
        == VapidKeys.load(path.read_text(), "mailto:a@b").public_key_b64url()
    )
    assert [p.name for p in tmp_path.iterdir() if "vapid" in p.name] == ["vapid_private_key.pem"]
    assert "BEGIN" not in repr(first)


def test_a_damaged_stored_vapid_key_fails_fast(tmp_path: Any) -> None:
    (tmp_path / "vapid_private_key.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n")
    with pytest.raises(ConfigError, match="vapid_private_key.pem"):
        load_settings({}, data_dir=str(tmp_path), jwt_secret=JWT_SECRET)


@pytest.mark.parametrize("form", ["raw", "pem", "pem-one-line"])
def test_the_configured_vapid_key_is_used(tmp_path: Any, form: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    if form == "raw":
        text = b64url(key.private_numbers().private_value.to_bytes(32, "big"))
    else:
        text = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        if form == "pem-one-line":
            text = text.replace("\n", "\\n")
    settings = load_settings(
        {"CRONCHAT_VAPID_PRIVATE_KEY": text}, data_dir=str(tmp_path), jwt_secret=JWT_SECRET
    )
    vapid = VapidKeys.load(settings.vapid_private_key.reveal(), settings.vapid_subject)
    assert vapid.public_key_b64url() == b64url(_point(key))
    assert not (tmp_path / "vapid_private_key.pem").exists()


@pytest.mark.parametrize(
    ("environ", "message_part"),
    [
        ({"CRONCHAT_VAPID_PRIVATE_KEY": "bm90IGEga2V5"}, "CRONCHAT_VAPID_PRIVATE_KEY"),
        ({"CRONCHAT_VAPID_SUBJECT": "admin@example.org"}, "CRONCHAT_VAPID_SUBJECT"),
        ({"CRONCHAT_PUSH_CONTENT": "maybe"}, "CRONCHAT_PUSH_CONTENT"),
    ],
)
def test_push_settings_that_cannot_work_fail_fast(
    tmp_path: Any, environ: dict[str, str], message_part: str
) -> None:
    with pytest.raises(ConfigError, match=message_part):
        load_settings(environ, data_dir=str(tmp_path), jwt_secret=JWT_SECRET)


def test_push_settings_defaults_and_overrides(tmp_path: Any) -> None:
    defaults = load_settings({}, data_dir=str(tmp_path), jwt_secret=JWT_SECRET)
    assert (defaults.vapid_subject, defaults.push_content) == ("mailto:admin@localhost", True)
    chosen = load_settings(
        {"CRONCHAT_VAPID_SUBJECT": "https://chat.example.org", "CRONCHAT_PUSH_CONTENT": "false"},
        data_dir=str(tmp_path),
        jwt_secret=JWT_SECRET,
    )
    assert (chosen.vapid_subject, chosen.push_content) == ("https://chat.example.org", False)


# --- payloads --------------------------------------------------------------------------------


def test_a_message_push_has_the_shape_of_the_api() -> None:
    assert json.loads(webpush_payload(message())) == {
        "type": "message",
        "room_id": "01room",
        "room_name": "Général",
        "seq": 42,
        "message_id": "01message",
        "sender": {"id": "01alice", "display_name": "Alice"},
        "excerpt": "see you at 5",
        "mention": "user",
        "unread_count": 3,
    }


def test_a_read_push_has_the_room_and_its_count() -> None:
    payload = webpush_payload(ReadPush(room_id="01room", unread_count=0))
    assert json.loads(payload) == {"type": "read", "room_id": "01room", "unread_count": 0}


@pytest.mark.parametrize("unit", ["a", "é", "😀", '"', "\n", "\x01"])
def test_a_long_excerpt_is_shortened_to_fit(unit: str) -> None:
    text = unit * 5000
    payload = webpush_payload(message(text=text))
    body = json.loads(payload)

    assert len(payload) <= MAX_PLAINTEXT
    assert len(payload) > MAX_PLAINTEXT - 8, "the excerpt uses the room there is"
    assert body["excerpt"].endswith("…") and text.startswith(body["excerpt"][:-1])
    assert body["room_name"] == "Général" and body["sender"]["display_name"] == "Alice"


def test_long_names_are_cut_and_the_excerpt_still_fits() -> None:
    payload = webpush_payload(
        message(room_name="r" * 5000, sender_display_name="😀" * 5000, text="t" * 5000)
    )
    body = json.loads(payload)
    assert len(payload) <= MAX_PLAINTEXT
    assert len(body["room_name"]) == 200 and body["room_name"].endswith("…")
    assert len(body["sender"]["display_name"]) == 200
    assert body["excerpt"].startswith("ttt")


def test_an_image_without_text_has_no_excerpt() -> None:
    assert json.loads(webpush_payload(message(text=None)))["excerpt"] is None


def test_without_content_a_push_carries_no_names_and_no_text() -> None:
    body = json.loads(webpush_payload(message(text="secret plans"), include_content=False))
    assert body == {
        "type": "message",
        "room_id": "01room",
        "seq": 42,
        "message_id": "01message",
        "sender": {"id": "01alice"},
        "mention": "user",
        "unread_count": 3,
    }


def test_the_gateway_body_of_a_message() -> None:
    device = GatewayDevice(app_id="org.example.chat.android", pushkey="fcm-token-1")
    body = gateway_body(message(), device)
    notification = check_notify_body(body)
    assert notification == {
        "event_id": "01message",
        "room_id": "01room",
        "type": "m.room.message",
        "sender": "01alice",
        "sender_display_name": "Alice",
        "room_name": "Général",
        "content": {"msgtype": "m.text", "body": "see you at 5"},
        "prio": "high",
        "counts": {"unread": 3},
        "devices": [{"app_id": "org.example.chat.android", "pushkey": "fcm-token-1"}],
        "seq": 42,
        "mention": "user",
    }


def test_the_gateway_body_of_a_read_has_no_event_id() -> None:
    device = GatewayDevice(app_id="org.example.chat.ios", pushkey="apns-token")
    notification = check_notify_body(gateway_body(ReadPush("01room", 0), device))
    assert notification == {
        "room_id": "01room",
        "counts": {"unread": 0},
        "devices": [{"app_id": "org.example.chat.ios", "pushkey": "apns-token"}],
    }


def test_the_gateway_body_without_content_and_its_size_bound() -> None:
    device = GatewayDevice(app_id="a", pushkey="k")
    quiet = check_notify_body(gateway_body(message(), device, include_content=False))
    assert not {"room_name", "sender_display_name", "content"} & set(quiet)
    long_body = gateway_body(message(text="😀" * 5000), device)
    assert len(long_body) <= MAX_GATEWAY_BODY
    assert json.loads(long_body)["notification"]["content"]["body"].endswith("…")


def test_a_gateway_answer_names_the_rejected_pushkeys() -> None:
    assert rejected_pushkeys(b'{"rejected": ["k1", 7, "k2"]}') == {"k1", "k2"}
    assert rejected_pushkeys(b'{"rejected": []}') == set()
    assert rejected_pushkeys(b"<html>") == set()
    assert rejected_pushkeys(b'["k1"]') == set()


def test_a_webpush_request_has_the_headers_of_the_rfcs() -> None:
    vapid = vapid_keys()
    keys = SubscriptionKeys(RFC_UA_PUBLIC, RFC_AUTH)
    request = webpush_request(
        "https://push.example.net/x",
        keys,
        b"{}",
        vapid,
        1_800_000_000,
        ttl=600,
        urgency="high",
        topic=topic_for("01jb2p3q4r5s6t7v8w9x0yz1ab"),
    )
    assert request.url == "https://push.example.net/x"
    assert {name: value for name, value in request.headers.items() if name != "Authorization"} == {
        "Content-Type": "application/octet-stream",
        "Content-Encoding": "aes128gcm",
        "TTL": "600",
        "Urgency": "high",
        "Topic": "01jb2p3q4r5s6t7v8w9x0yz1ab",
    }
    assert request.headers["Authorization"].startswith("vapid t=")
    assert len(topic_for("a room id with spaces, and then some more")) == 32


# --- the receivers, served ---------------------------------------------------------------


async def post(request: PushRequest) -> tuple[int, bytes]:
    client = AsyncHTTPClient()
    http_request = HTTPRequest(request.url, "POST", headers=request.headers, body=request.body)
    try:
        response = await client.fetch(http_request)
    except HTTPClientError as error:
        return error.code, error.response.body if error.response else b""
    return response.code, response.body


@pytest.mark.gen_test
async def test_the_receiver_takes_a_push_and_answers_410_when_told(
    webpush_receiver: WebPushReceiver,
) -> None:
    vapid = vapid_keys()
    subscription = webpush_receiver.subscribe(application_server_key=vapid.public_key_b64url())
    keys = SubscriptionKeys.parse(**subscription.as_json()["keys"])

    def push(unread_count: int) -> PushRequest:
        payload = webpush_payload(ReadPush("01room", unread_count))
        return webpush_request(subscription.endpoint, keys, payload, vapid, _now())

    assert (await post(push(1)))[0] == 201
    pushes = await webpush_receiver.wait_for(1, subscription)
    assert pushes[0].payload == {"type": "read", "room_id": "01room", "unread_count": 1}
    assert pushes[0].vapid_key == vapid.public_key_b64url()
    assert pushes[0].claims["aud"] == webpush_receiver.origin

    subscription.status = 410
    assert (await post(push(2)))[0] == 410
    assert len(subscription.pushes) == 1
    assert webpush_receiver.answered == [201, 410]
    assert webpush_receiver.problems == []


@pytest.mark.gen_test
async def test_the_receiver_refuses_what_a_push_service_would(
    webpush_receiver: WebPushReceiver,
) -> None:
    vapid, stranger = vapid_keys(), vapid_keys()
    subscription = webpush_receiver.subscribe(application_server_key=vapid.public_key_b64url())
    keys = SubscriptionKeys.parse(**subscription.as_json()["keys"])
    now = _now()

    signed_by_stranger = webpush_request(subscription.endpoint, keys, b"{}", stranger, now)
    assert (await post(signed_by_stranger))[0] == 403
    for_another_origin = webpush_request(subscription.endpoint, keys, b"{}", vapid, now)
    for_another_origin.headers["Authorization"] = vapid.authorization(
        "https://elsewhere.example/x", now
    )
    assert (await post(for_another_origin))[0] == 401
    other_keys = SubscriptionKeys.parse(RFC_UA_PUBLIC, RFC_AUTH)
    sealed_for_another = webpush_request(subscription.endpoint, other_keys, b"{}", vapid, now)
    assert (await post(sealed_for_another))[0] == 400
    assert subscription.pushes == [] and len(webpush_receiver.problems) == 3


@pytest.mark.gen_test
async def test_the_receiver_is_down_between_stop_and_start(
    webpush_receiver: WebPushReceiver,
) -> None:
    vapid = vapid_keys()
    subscription = webpush_receiver.subscribe()
    keys = SubscriptionKeys.parse(**subscription.as_json()["keys"])
    request = webpush_request(subscription.endpoint, keys, b'{"n":1}', vapid, _now())

    await webpush_receiver.stop()
    with pytest.raises(ConnectionRefusedError):
        await post(request)
    webpush_receiver.start()
    assert (await post(request))[0] == 201
    assert [push.payload for push in subscription.pushes] == [{"n": 1}]


@pytest.mark.gen_test
async def test_the_gateway_receiver_records_and_rejects(push_gateway: GatewayReceiver) -> None:
    device = GatewayDevice(app_id="org.example.chat", pushkey="device-1")
    push_gateway.reject("device-1")

    status, answer = await post(gateway_request(push_gateway.url, gateway_body(message(), device)))

    assert status == 200
    assert rejected_pushkeys(answer) == {"device-1"}
    notifications = await push_gateway.wait_for(1)
    assert notifications[0]["event_id"] == "01message"
    bad = PushRequest(push_gateway.url, {"Content-Type": "application/json"}, b'{"x": 1}')
    assert (await post(bad))[0] == 400
    assert push_gateway.problems == ["400: no notification object"]


def test_a_receiver_check_failing_names_the_status() -> None:
    with pytest.raises(PushRejected) as caught:
        check_notify_body(b'{"notification": {"devices": [{"app_id": "a"}]}}')
    assert caught.value.status == 400 and "pushkey" in caught.value.reason


def _point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _now() -> float:
    return time.time()
