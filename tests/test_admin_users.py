"""Server admins over REST: disabling and enabling users (PATCH /admin/users/{id}), live and
recorded in the audit log, and the audit of the operator's acts on users."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_cli import cronchat

from clients import ApiClient, User
from conftest import cronchat_env
from cronchat.repos import audit
from cronchat.runtime import Runtime

pytestmark = pytest.mark.gen_test


async def admin_of(api: ApiClient, runtime: Runtime) -> User:
    """A registered user made a server admin (as `cronchat user promote` does)."""
    admin = await api.register()
    await runtime.services.accounts.promote(admin["user"]["username"])
    return admin


async def audit_of(runtime: Runtime, target_user_id: str) -> list[Any]:
    """The audit entries about a user, newest first."""

    def read(tx: Any) -> list[Any]:
        return audit.entries(tx, 100, audit.AuditFilter(target_user_id=target_user_id))

    return await runtime.db.read(read)


def user_path(user: User) -> str:
    return f"/api/v1/admin/users/{user['user']['id']}"


async def test_admin_disables_a_user_whose_socket_closes_and_who_cannot_log_in(
    api: ApiClient, runtime: Runtime, connect: Any
) -> None:
    admin, erin = await admin_of(api, runtime), await api.register()
    ws = await connect(erin["token"])
    reply = await api.patch(user_path(erin), {"disabled": True}, admin["token"])
    assert reply.status == 200, reply.body
    assert reply.body["disabled"] is True and reply.body["id"] == erin["user"]["id"]
    assert await ws.closed() == 4003
    assert (await api.get("/api/v1/users/me", erin["token"])).status == 401
    login = await api.post(
        "/api/v1/auth/login", {"username": erin["user"]["username"], "password": erin["password"]}
    )
    assert login.status == 401 and login.error_code == "invalid_credentials"
    [entry] = await audit_of(runtime, erin["user"]["id"])
    assert (entry.action, entry.actor_id) == ("user.disabled", admin["user"]["id"])


async def test_admin_enables_a_disabled_user_recorded_as_user_enabled(
    api: ApiClient, runtime: Runtime
) -> None:
    admin, erin = await admin_of(api, runtime), await api.register()
    assert (await api.patch(user_path(erin), {"disabled": True}, admin["token"])).status == 200
    reply = await api.patch(user_path(erin), {"disabled": False}, admin["token"])
    assert reply.status == 200 and reply.body["disabled"] is False
    login = await api.post(
        "/api/v1/auth/login", {"username": erin["user"]["username"], "password": erin["password"]}
    )
    assert login.status == 200
    actions = [entry.action for entry in await audit_of(runtime, erin["user"]["id"])]
    assert actions == ["user.enabled", "user.disabled"]


async def test_disabling_twice_records_one_act(api: ApiClient, runtime: Runtime) -> None:
    admin, erin = await admin_of(api, runtime), await api.register()
    for _ in range(2):
        assert (await api.patch(user_path(erin), {"disabled": True}, admin["token"])).status == 200
    actions = [entry.action for entry in await audit_of(runtime, erin["user"]["id"])]
    assert actions == ["user.disabled"]


async def test_a_non_admin_on_admin_users_is_403_and_changes_nothing(
    api: ApiClient, runtime: Runtime, connect: Any
) -> None:
    mallory, erin = await api.register(), await api.register()
    ws = await connect(erin["token"])
    reply = await api.patch(user_path(erin), {"disabled": True}, mallory["token"])
    assert reply.status == 403 and reply.error_code == "forbidden"
    assert (await ws.request({"type": "ping"}))["type"] == "pong"
    assert (await api.get("/api/v1/users/me", erin["token"])).status == 200
    assert await audit_of(runtime, erin["user"]["id"]) == []


async def test_admin_users_needs_a_token(api: ApiClient) -> None:
    erin = await api.register()
    assert (await api.patch(user_path(erin), {"disabled": True})).status == 401


async def test_an_unknown_user_is_404(api: ApiClient, runtime: Runtime) -> None:
    admin = await admin_of(api, runtime)
    reply = await api.patch("/api/v1/admin/users/nobody", {"disabled": True}, admin["token"])
    assert reply.status == 404 and reply.error_code == "not_found"


@pytest.mark.parametrize("body", [{}, {"disabled": "yes"}, {"disabled": 1}, {"disabled": None}])
async def test_a_bad_body_is_400_naming_disabled_and_changes_nothing(
    api: ApiClient, runtime: Runtime, body: dict[str, Any]
) -> None:
    admin, erin = await admin_of(api, runtime), await api.register()
    reply = await api.patch(user_path(erin), body, admin["token"])
    assert reply.status == 400 and reply.body["error"]["details"]["field"] == "disabled"
    assert (await api.get("/api/v1/users/me", erin["token"])).status == 200
    assert await audit_of(runtime, erin["user"]["id"]) == []


async def test_a_body_that_is_not_an_object_is_400(api: ApiClient, runtime: Runtime) -> None:
    admin, erin = await admin_of(api, runtime), await api.register()
    reply = await api.patch(user_path(erin), [True], admin["token"])
    assert reply.status == 400


async def test_an_admin_cannot_disable_themselves(api: ApiClient, runtime: Runtime) -> None:
    admin = await admin_of(api, runtime)
    reply = await api.patch(user_path(admin), {"disabled": True}, admin["token"])
    assert reply.status == 400
    assert (await api.get("/api/v1/users/me", admin["token"])).status == 200


async def test_a_demoted_admin_acts_no_more(api: ApiClient, runtime: Runtime) -> None:
    admin, erin = await admin_of(api, runtime), await api.register()
    await runtime.services.accounts.promote(admin["user"]["username"], False)
    reply = await api.patch(user_path(erin), {"disabled": True}, admin["token"])
    assert reply.status == 403
    assert (await api.get("/api/v1/users/me", erin["token"])).status == 200


async def test_the_own_profile_carries_is_admin(api: ApiClient, runtime: Runtime) -> None:
    admin, erin = await admin_of(api, runtime), await api.register()
    assert (await api.get("/api/v1/users/me", admin["token"])).body["is_admin"] is True
    assert (await api.get("/api/v1/users/me", erin["token"])).body["is_admin"] is False
    assert erin["user"]["is_admin"] is False
    others_view = await api.get(f"/api/v1/users/{admin['user']['id']}", erin["token"])
    assert "is_admin" not in others_view.body


@pytest.mark.gen_test(timeout=120)
async def test_the_operators_acts_on_users_are_audited_with_via_cli(
    api: ApiClient, runtime: Runtime, database_url: str, tmp_path: Path
) -> None:
    env = cronchat_env(database_url, tmp_path / "cli-data")
    erin = await api.register()
    name = erin["user"]["username"]
    for args in (
        ("promote", name),
        ("disable", name),
        ("enable", name),
        ("set-password", name, "--password-stdin"),
    ):
        code, _, err = await cronchat(env, "user", *args, stdin="a fresh password\n")
        assert code == 0, err
    entries = await audit_of(runtime, erin["user"]["id"])
    assert [entry.action for entry in entries][::-1] == [
        "user.promoted",
        "user.disabled",
        "user.enabled",
        "user.password_set",
    ]
    assert all(entry.actor_id is None and entry.data["via"] == "cli" for entry in entries)
