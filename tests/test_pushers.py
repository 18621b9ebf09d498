"""Push devices (pushers): the server's VAPID key, registering a browser's subscription or
a push gateway device, the same device replacing itself, and the devices going with the
session that registered them."""

from __future__ import annotations

from typing import Any

import pytest
from push_receivers import (
    GatewayReceiver,
    WebPushReceiver,
    push_gateway_fixture,
    webpush_receiver_fixture,
)

from clients import ApiClient, User
from cronchat.runtime import Runtime

pytestmark = pytest.mark.gen_test(timeout=60)
# The receiver plays the push service on loopback, which the egress guard admits only when
# private addresses are allowed (CRONCHAT_PUSH_ALLOW_PRIVATE, as for tests and closed networks).
loopback_push = pytest.mark.server_settings(push_allow_private=True)
__all__ = ["push_gateway_fixture", "webpush_receiver_fixture"]

PUSH = "/api/v1/users/me/push"


async def pushers_of(api: ApiClient, user: User) -> list[dict[str, Any]]:
    reply = await api.get(PUSH, user["token"])
    assert reply.status == 200, reply.body
    return list(reply.body["pushers"])


def webpush(subscription: Any) -> dict[str, Any]:
    return {"kind": "webpush", **subscription.as_json()}


GATEWAY = "https://push.example.com/_matrix/push/v1/notify"


def gateway(pushkey: str = "device-token-1", url: str = GATEWAY) -> dict[str, Any]:
    return {"kind": "gateway", "url": url, "pushkey": pushkey, "app_id": "com.example.chat"}


async def test_the_vapid_key_is_public_and_the_servers_own(
    api: ApiClient, runtime: Runtime
) -> None:
    reply = await api.get("/api/v1/push/vapid")
    assert reply.status == 200
    assert reply.body == {"public_key": runtime.vapid.public_key_b64url()}


@loopback_push
async def test_a_browser_registers_lists_and_removes_its_subscription(
    api: ApiClient, webpush_receiver: WebPushReceiver
) -> None:
    alice = await api.register()
    subscription = webpush_receiver.subscribe()
    created = await api.post(PUSH, webpush(subscription), alice["token"])
    assert created.status == 201, created.body
    assert set(created.body) == {"id", "kind", "endpoint", "created_at"}
    assert created.body["endpoint"] == subscription.endpoint
    assert await pushers_of(api, alice) == [created.body]
    removed = await api.delete(f"{PUSH}/{created.body['id']}", alice["token"])
    assert removed.status == 204
    assert await pushers_of(api, alice) == []
    assert (await api.delete(f"{PUSH}/{created.body['id']}", alice["token"])).status == 404


@loopback_push
async def test_the_same_device_registered_again_replaces_itself(
    api: ApiClient, webpush_receiver: WebPushReceiver
) -> None:
    alice, bob = await api.register(), await api.register()
    subscription = webpush_receiver.subscribe()
    first = await api.post(PUSH, webpush(subscription), alice["token"])
    again = await api.post(PUSH, webpush(subscription), alice["token"])
    assert (first.status, again.status) == (201, 200)
    assert again.body["id"] == first.body["id"]
    assert len(await pushers_of(api, alice)) == 1
    # The browser changed hands: the device is the new user's now.
    taken = await api.post(PUSH, webpush(subscription), bob["token"])
    assert taken.status == 200
    assert await pushers_of(api, alice) == []
    assert [p["id"] for p in await pushers_of(api, bob)] == [first.body["id"]]


@loopback_push
async def test_a_gateway_device_is_registered_with_its_pushkey(
    api: ApiClient, push_gateway: GatewayReceiver
) -> None:
    alice = await api.register()
    device = gateway(url=push_gateway.url)
    created = await api.post(PUSH, device, alice["token"])
    assert created.status == 201, created.body
    assert {k: created.body[k] for k in ("kind", "url", "pushkey", "app_id")} == device
    assert (await api.post(PUSH, device, alice["token"])).status == 200
    other = gateway("device-token-2", push_gateway.url)
    assert (await api.post(PUSH, other, alice["token"])).status == 201
    assert len(await pushers_of(api, alice)) == 2


@loopback_push
async def test_another_users_device_cannot_be_removed(
    api: ApiClient, push_gateway: GatewayReceiver
) -> None:
    alice, bob = await api.register(), await api.register()
    created = await api.post(PUSH, gateway(url=push_gateway.url), alice["token"])
    assert (await api.delete(f"{PUSH}/{created.body['id']}", bob["token"])).status == 404
    assert len(await pushers_of(api, alice)) == 1


@pytest.mark.parametrize(
    "body, field",
    [
        ({"kind": "email", "url": "https://example.com"}, "kind"),
        ({"endpoint": "https://push.example.com/x"}, "kind"),
        ({"kind": "webpush", "keys": {"p256dh": "x", "auth": "y"}}, "endpoint"),
        ({"kind": "webpush", "endpoint": "https://push.example.com/x"}, "keys"),
        ({"kind": "webpush", "endpoint": "https://push.example.com/x", "keys": []}, "keys"),
        (
            {"kind": "webpush", "endpoint": "https://push.example.com/x", "keys": {"auth": "a"}},
            "keys.p256dh",
        ),
        ({**gateway(), "pushkey": ""}, "pushkey"),
        ({**gateway(), "app_id": 7}, "app_id"),
        ({**gateway(), "url": "ftp://push.example.com/notify"}, "url"),
        ({**gateway(), "url": "http://push.example.com/notify"}, "url"),
        ({**gateway(), "url": "https://127.0.0.1/notify"}, "url"),
        ({**gateway(), "url": "https://169.254.169.254/latest"}, "url"),
        ({**gateway(), "url": "https://localhost/notify"}, "url"),
    ],
)
async def test_bad_registrations_answer_400_naming_the_field_and_register_nothing(
    api: ApiClient, body: dict[str, Any], field: str
) -> None:
    alice = await api.register()
    reply = await api.post(PUSH, body, alice["token"])
    assert reply.status == 400, reply.body
    assert reply.body["error"]["details"]["field"] == field
    assert await pushers_of(api, alice) == []


async def test_a_browser_endpoint_on_loopback_is_refused_unless_allowed(
    api: ApiClient, webpush_receiver: WebPushReceiver
) -> None:
    alice = await api.register()
    reply = await api.post(PUSH, webpush(webpush_receiver.subscribe()), alice["token"])
    assert reply.status == 400 and reply.body["error"]["details"]["field"] == "endpoint"
    assert webpush_receiver.requests == 0


@loopback_push
async def test_a_user_has_at_most_twenty_devices(
    api: ApiClient, push_gateway: GatewayReceiver
) -> None:
    alice = await api.register()
    for number in range(20):
        device = gateway(f"token-{number}", push_gateway.url)
        assert (await api.post(PUSH, device, alice["token"])).status == 201
    refused = await api.post(PUSH, gateway("token-20", push_gateway.url), alice["token"])
    assert refused.status == 409
    assert len(await pushers_of(api, alice)) == 20


@loopback_push
async def test_devices_go_with_the_session_that_registered_them(
    api: ApiClient, push_gateway: GatewayReceiver
) -> None:
    alice = await api.register()
    login = await api.post(
        "/api/v1/auth/login", {"username": alice["user"]["username"], "password": alice["password"]}
    )
    assert login.status == 200, login.body
    phone = {**alice, "token": login.body["access_token"]}
    await api.post(PUSH, gateway("laptop", push_gateway.url), alice["token"])
    await api.post(PUSH, gateway("phone", push_gateway.url), phone["token"])
    assert (await api.post("/api/v1/auth/logout", token=phone["token"])).status == 204
    assert [p["pushkey"] for p in await pushers_of(api, alice)] == ["laptop"]


@loopback_push
async def test_deleting_the_account_removes_every_device(
    api: ApiClient, runtime: Runtime, push_gateway: GatewayReceiver
) -> None:
    alice = await api.register()
    await api.post(PUSH, gateway("laptop", push_gateway.url), alice["token"])
    deleted = await api.call(
        "DELETE", "/api/v1/users/me", {"password": alice["password"]}, alice["token"]
    )
    assert deleted.status == 204, deleted.body
    left = await runtime.db.read(
        lambda tx: tx.scalar(
            "SELECT COUNT(*) FROM pushers WHERE user_id = %s", (alice["user"]["id"],)
        )
    )
    assert left == 0
