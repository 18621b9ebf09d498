"""Hostile profile text: display names and bios that would hide, reorder or fake what other
users see (a direct room is named after the peer's display name), refused with 400 on
register, on PATCH /users/me and in `cronchat user create`, changing nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli import cronchat

from clients import ApiClient, unique_name
from conftest import cronchat_env

pytestmark = pytest.mark.gen_test(timeout=60)

HOSTILE_NAMES = {
    "NUL": "adm\x00in",
    "C0 control": "ad\x07min",
    "tab": "ad\tmin",
    "newline": "ad\nmin",
    "C1 control": "ad\x85min",
    "DEL": "ad\x7fmin",
    "right-to-left override": "\u202enimda",
    "left-to-right embedding": "a\u202adb",
    "pop directional formatting": "ab\u202c",
    "first strong isolate": "\u2068admin\u2069",
    "right-to-left isolate": "x\u2067y",
    "right-to-left mark": "admin\u200f",
    "left-to-right mark": "\u200eadmin",
    "arabic letter mark": "ad\u061cmin",
    "lone surrogate": "ad\ud800min",
    "zero-width space only": "\u200b",
    "zero-width joiners only": "\u200d\u200c\u2060",
    "byte order mark only": " \ufeff ",
    "braille blank only": "\u2800\u2800",
    "hangul filler only": "\u3164",
    "halfwidth hangul filler only": "\uffa0",
    "hangul choseong filler only": "\u115f\u1160",
    "combining marks only": "\u0301\u0308",
    "variation selector only": "\ufe0f",
    "ideographic space only": "\u3000",
    "soft hyphen only": "\u00ad",
    "tag characters only": "\U000e0041\U000e0042",
}
GOOD_NAMES = {
    "accents, decomposed": ("Jose\u0301 Garci\u0301a", "Jose\u0301 Garci\u0301a"),
    "arabic": ("\u0645\u0631\u062d\u0628\u0627", "\u0645\u0631\u062d\u0628\u0627"),
    "emoji with zero-width joiner": (
        "\U0001f469\u200d\U0001f4bb Dev",
        "\U0001f469\u200d\U0001f4bb Dev",
    ),
    "runs of spaces collapsed": ("  Ada   Lovelace ", "Ada Lovelace"),
    "no-break space made a plain space": ("Ada\u00a0L", "Ada L"),
}
HOSTILE_BIOS = {
    "NUL": "hello\x00there",
    "C0 control": "bell\x07",
    "C1 control": "next\x85line",
    "carriage return alone": "one\rtwo",
    "right-to-left override": "I am \u202enimda",
    "isolate": "\u2066hidden\u2069",
    "lone surrogate": "x\udfffy",
    "zero-width space only": "\u200b\u200b",
    "braille blank only": "\u2800\n\u2800",
    "hangul filler only": "\u3164",
}


async def register_reply(api: ApiClient, username: str, display_name: str) -> object:
    return await api.post(
        "/api/v1/auth/register",
        {"username": username, "password": "correct horse", "display_name": display_name},
    )


@pytest.mark.parametrize("case", sorted(HOSTILE_NAMES))
async def test_register_refuses_a_hostile_display_name_and_creates_no_one(
    api: ApiClient, case: str
) -> None:
    username = unique_name("hostile")
    reply = await register_reply(api, username, HOSTILE_NAMES[case])
    assert reply.status == 400, f"{case}: expected 400, got {reply.status} {reply.body}"
    assert reply.error_code == "invalid_request"
    assert reply.body["error"]["details"] == {"field": "display_name"}, case
    login = await api.post(
        "/api/v1/auth/login", {"username": username, "password": "correct horse"}
    )
    assert login.status == 401, f"{case}: the user was created anyway"


@pytest.mark.parametrize("case", sorted(GOOD_NAMES))
async def test_ordinary_names_of_every_script_are_kept(api: ApiClient, case: str) -> None:
    sent, kept = GOOD_NAMES[case]
    user = await api.register(display_name=sent)
    assert user["user"]["display_name"] == kept, case
    renamed = await api.patch("/api/v1/users/me", {"display_name": sent}, user["token"])
    assert (renamed.status, renamed.body["display_name"]) == (200, kept), case


@pytest.mark.parametrize("case", sorted(HOSTILE_NAMES))
async def test_patch_me_refuses_a_hostile_display_name_and_changes_nothing(
    api: ApiClient, case: str
) -> None:
    user = await api.register(display_name="Plain Name")
    reply = await api.patch(
        "/api/v1/users/me", {"display_name": HOSTILE_NAMES[case]}, user["token"]
    )
    assert reply.status == 400, f"{case}: expected 400, got {reply.status} {reply.body}"
    assert reply.body["error"]["details"] == {"field": "display_name"}, case
    me = await api.get("/api/v1/users/me", user["token"])
    assert me.body["display_name"] == "Plain Name", case


@pytest.mark.parametrize("case", sorted(HOSTILE_BIOS))
async def test_patch_me_refuses_a_hostile_bio_and_changes_nothing(
    api: ApiClient, case: str
) -> None:
    user = await api.register()
    assert (await api.patch("/api/v1/users/me", {"bio": "before"}, user["token"])).status == 200
    reply = await api.patch(
        "/api/v1/users/me", {"bio": HOSTILE_BIOS[case], "display_name": "Changed"}, user["token"]
    )
    assert reply.status == 400, f"{case}: expected 400, got {reply.status} {reply.body}"
    assert reply.body["error"]["details"] == {"field": "bio"}, case
    me = await api.get("/api/v1/users/me", user["token"])
    assert (me.body["bio"], me.body["display_name"]) == ("before", user["user"]["display_name"])


async def test_a_bio_keeps_its_lines_and_its_direction_marks(api: ApiClient) -> None:
    user = await api.register()
    bio = "first line\r\nsecond line\n\u05e9\u05dc\u05d5\u05dd\u200f!"
    reply = await api.patch("/api/v1/users/me", {"bio": f"  {bio}  "}, user["token"])
    assert reply.status == 200, reply.body
    assert reply.body["bio"] == "first line\nsecond line\n\u05e9\u05dc\u05d5\u05dd\u200f!"
    cleared = await api.patch("/api/v1/users/me", {"bio": ""}, user["token"])
    assert (cleared.status, cleared.body["bio"]) == (200, "")


async def test_a_peer_cannot_rename_their_direct_room_into_a_reversed_name(api: ApiClient) -> None:
    alice = await api.register(display_name="Alice")
    mallory = await api.register(display_name="Mallory")
    room = await api.direct(alice, mallory)
    assert room["name"] == "Mallory"
    # Shown as "Alice (admin)" by a bidi-aware renderer.
    reply = await api.patch(
        "/api/v1/users/me", {"display_name": "Alice \u202e)nimda(\u202c"}, mallory["token"]
    )
    assert (reply.status, reply.body["error"]["details"]) == (400, {"field": "display_name"})
    again = await api.get(f"/api/v1/rooms/{room['id']}", alice["token"])
    assert again.body["name"] == "Mallory"


@pytest.mark.parametrize("display_name", ["\u202enimda", "\u2800", "a\u2066b"])
async def test_cli_user_create_refuses_a_hostile_display_name(
    api: ApiClient, database_url: str, tmp_path: Path, display_name: str
) -> None:
    env = cronchat_env(database_url, tmp_path / "cli-data")
    name = unique_name("cli")
    code, out, err = await cronchat(
        env,
        "user",
        "create",
        name,
        "--display-name",
        display_name,
        "--password-stdin",
        stdin="long enough password\n",
    )
    assert (code, out) == (1, ""), err
    assert err.startswith("error: display_name") and err.count("\n") == 1, err
    login = await api.post(
        "/api/v1/auth/login", {"username": name, "password": "long enough password"}
    )
    assert login.status == 401
