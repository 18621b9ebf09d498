"""Registration, login, refresh rotation, logout, and every way a token can be wrong."""

from __future__ import annotations

import time

import jwt
import pytest

from clients import ApiClient, eventually, unique_name
from conftest import JWT_SECRET

pytestmark = pytest.mark.gen_test


async def test_register_answers_user_and_tokens(api: ApiClient) -> None:
    name = unique_name("Reg")
    reply = await api.post(
        "/api/v1/auth/register",
        {"username": name, "password": "long enough", "display_name": "Reggie"},
    )
    assert reply.status == 201, reply.body
    assert reply.body["user"]["username"] == name
    assert reply.body["user"]["display_name"] == "Reggie"
    assert reply.body["expires_in"] == 900
    assert reply.body["access_token"] and reply.body["refresh_token"]
    assert "password" not in reply.body["user"] and "password_hash" not in reply.body["user"]


async def test_register_defaults_display_name_to_username(api: ApiClient) -> None:
    user = await api.register()
    assert user["user"]["display_name"] == user["user"]["username"]


async def test_username_taken_in_any_case_is_conflict(api: ApiClient) -> None:
    name = unique_name("dup")
    await api.register(name)
    reply = await api.post(
        "/api/v1/auth/register", {"username": name.upper(), "password": "long enough"}
    )
    assert reply.status == 409
    assert reply.error_code == "conflict"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": "long enough"}, "username"),
        ({"username": "someone"}, "password"),
        ({"username": 12345, "password": "long enough"}, "username"),
        ({"username": "someone", "password": ["x"]}, "password"),
        ({"username": "ab", "password": "long enough"}, "username"),
        ({"username": "x" * 33, "password": "long enough"}, "username"),
        ({"username": "bad name!", "password": "long enough"}, "username"),
        ({"username": "newline\n", "password": "long enough"}, "username"),
        ({"username": "someone", "password": "short"}, "password"),
        ({"username": "someone", "password": "x" * 257}, "password"),
        ({"username": "someone", "password": "long enough", "display_name": 7}, "display_name"),
        ({"username": "someone", "password": "long enough", "display_name": "   "}, "display_name"),
    ],
)
async def test_register_rejects_bad_fields_naming_them(
    api: ApiClient, body: dict, field: str
) -> None:
    reply = await api.post("/api/v1/auth/register", body)
    assert reply.status == 400, reply.body
    assert reply.error_code == "invalid_request"
    assert reply.body["error"]["details"]["field"] == field


async def test_malformed_json_is_a_clear_400(api: ApiClient) -> None:
    reply = await api.post(
        "/api/v1/auth/register", body=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert reply.status == 400
    assert reply.error_code == "invalid_request"
    reply = await api.post("/api/v1/auth/register", body=b"[1, 2]")
    assert reply.status == 400


async def test_oversize_body_is_413_and_creates_nothing(api: ApiClient) -> None:
    name = unique_name("big")
    body = {"username": name, "password": "long enough", "padding": "x" * 300_000}
    reply = await api.post("/api/v1/auth/register", body)
    assert reply.status == 413
    assert reply.error_code == "payload_too_large"
    login = await api.post("/api/v1/auth/login", {"username": name, "password": "long enough"})
    assert login.status == 401


async def test_login_with_any_case_of_the_username(api: ApiClient) -> None:
    user = await api.register()
    reply = await api.post(
        "/api/v1/auth/login",
        {"username": user["user"]["username"].upper(), "password": user["password"]},
    )
    assert reply.status == 200
    assert reply.body["user"]["id"] == user["user"]["id"]


async def test_wrong_password_and_unknown_user_answer_alike(api: ApiClient) -> None:
    user = await api.register()
    wrong = await api.post(
        "/api/v1/auth/login", {"username": user["user"]["username"], "password": "not it at all"}
    )
    unknown = await api.post(
        "/api/v1/auth/login", {"username": unique_name("ghost"), "password": "whatever1"}
    )
    assert wrong.status == unknown.status == 401
    assert wrong.error_code == unknown.error_code == "invalid_credentials"
    assert wrong.body["error"]["message"] == unknown.body["error"]["message"]


async def test_refresh_rotates_and_spent_token_revokes_the_session(api: ApiClient) -> None:
    user = await api.register()
    first = await api.post("/api/v1/auth/refresh", {"refresh_token": user["refresh_token"]})
    assert first.status == 200
    assert first.body["refresh_token"] != user["refresh_token"]
    new_access = first.body["access_token"]
    assert (await api.get("/api/v1/users/me", new_access)).status == 200

    replay = await api.post("/api/v1/auth/refresh", {"refresh_token": user["refresh_token"]})
    assert replay.status == 401
    # The whole session is revoked: its newest access and refresh tokens stop working too.
    assert (await api.get("/api/v1/users/me", new_access)).status == 401
    again = await api.post("/api/v1/auth/refresh", {"refresh_token": first.body["refresh_token"]})
    assert again.status == 401


async def test_refresh_with_unknown_token_is_401(api: ApiClient) -> None:
    reply = await api.post("/api/v1/auth/refresh", {"refresh_token": "not-a-token"})
    assert reply.status == 401
    assert reply.error_code == "unauthorized"
    missing = await api.post("/api/v1/auth/refresh", {})
    assert missing.status == 400
    assert missing.body["error"]["details"]["field"] == "refresh_token"


async def test_logout_revokes_access_and_refresh_at_once(api: ApiClient) -> None:
    user = await api.register()
    other_device = await api.post(
        "/api/v1/auth/login", {"username": user["user"]["username"], "password": user["password"]}
    )
    reply = await api.post("/api/v1/auth/logout", token=user["token"])
    assert reply.status == 204
    assert (await api.get("/api/v1/users/me", user["token"])).status == 401
    assert (
        await api.post("/api/v1/auth/refresh", {"refresh_token": user["refresh_token"]})
    ).status == 401
    # Only that session ended: another login of the same user still works.
    assert (await api.get("/api/v1/users/me", other_device.body["access_token"])).status == 200


async def test_missing_and_malformed_authorization_is_401(api: ApiClient) -> None:
    assert (await api.get("/api/v1/users/me")).status == 401
    reply = await api.get("/api/v1/users/me", headers={"Authorization": "Basic abc"})
    assert reply.status == 401
    assert reply.error_code == "unauthorized"
    assert (await api.get("/api/v1/users/me", "garbage")).status == 401


def _claims(user: dict, **changes: object) -> dict:
    claims = jwt.decode(user["token"], options={"verify_signature": False})
    claims.update(changes)
    return claims


async def test_expired_token_is_refused(api: ApiClient) -> None:
    user = await api.register()
    token = jwt.encode(_claims(user, exp=int(time.time()) - 5), JWT_SECRET, algorithm="HS256")
    reply = await api.get("/api/v1/users/me", token)
    assert reply.status == 401
    assert "expired" in reply.body["error"]["message"]


async def test_token_used_before_is_refused_once_it_expires(api: ApiClient) -> None:
    """A token verified once is not verified again, but its expiry still counts."""
    user = await api.register()
    token = jwt.encode(_claims(user, exp=int(time.time()) + 2), JWT_SECRET, algorithm="HS256")
    assert (await api.get("/api/v1/users/me", token)).status == 200

    async def refused_as_expired() -> bool:
        reply = await api.get("/api/v1/users/me", token)
        return reply.status == 401 and "expired" in reply.body["error"]["message"]

    await eventually(refused_as_expired, 10, "401 for the expired token")


async def test_token_signed_with_another_key_is_refused(api: ApiClient) -> None:
    user = await api.register()
    token = jwt.encode(_claims(user), "another-secret-" + "y" * 40, algorithm="HS256")
    assert (await api.get("/api/v1/users/me", token)).status == 401


async def test_alg_none_token_is_refused(api: ApiClient) -> None:
    user = await api.register()
    token = jwt.encode(_claims(user), None, algorithm="none")
    assert (await api.get("/api/v1/users/me", token)).status == 401


async def test_token_with_wrong_audience_or_issuer_is_refused(api: ApiClient) -> None:
    user = await api.register()
    for change in ({"aud": "elsewhere"}, {"iss": "someone-else"}):
        token = jwt.encode(_claims(user, **change), JWT_SECRET, algorithm="HS256")
        assert (await api.get("/api/v1/users/me", token)).status == 401


@pytest.mark.server_settings(open_registration=False)
async def test_closed_registration_answers_403(api: ApiClient) -> None:
    reply = await api.post(
        "/api/v1/auth/register", {"username": unique_name(), "password": "long enough"}
    )
    assert reply.status == 403
    assert reply.error_code == "forbidden"
