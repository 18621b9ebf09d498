"""Exports (POST /users/me/export, GET /users/me/exports/{id}, `cronchat user export`): a zip
of JSON Lines and the user's images, prepared in the background, behind a signed expiring
link, once per 24 hours, in bounded memory. Every test runs on local disk and on S3."""

from __future__ import annotations

import io
import json
import time
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from test_cli import cronchat
from test_media import image_bytes, media_backend, s3_endpoint, send_image, uploaded

from clients import ApiClient, User, eventually
from conftest import cronchat_env
from cronchat.runtime import Runtime

# The fixtures of test_media that these tests use (each test on local disk and on S3).
__all__ = ["media_backend", "s3_endpoint"]

pytestmark = pytest.mark.gen_test(timeout=60)

EXPORT = "/api/v1/users/me/export"
FILES = {
    "profile.jsonl",
    "sessions.jsonl",
    "memberships.jsonl",
    "settings.jsonl",
    "blocks.jsonl",
    "reports.jsonl",
    "messages.jsonl",
    "reactions.jsonl",
    "uploads.jsonl",
}


@pytest.fixture
def settings_overrides(
    request: pytest.FixtureRequest, media_backend: dict[str, Any]
) -> dict[str, Any]:
    marker = request.node.get_closest_marker("server_settings")
    return {**media_backend, **(marker.kwargs if marker else {})}


async def ready_export(api: ApiClient, user: User) -> dict[str, Any]:
    """Ask for an export and wait until it is ready; answers its status."""
    asked = await api.post(EXPORT, token=user["token"])
    assert asked.status == 202, asked.body
    assert asked.body == {"id": asked.body["id"], "status": "pending"}
    path = f"/api/v1/users/me/exports/{asked.body['id']}"
    answers: list[Any] = []

    async def ready() -> bool:
        answers.append(await api.get(path, user["token"]))
        assert answers[-1].body["status"] != "failed", answers[-1].body
        return answers[-1].body["status"] == "ready"

    await eventually(ready, 30, "the export to be ready")
    return answers[-1].body


def lines(archive: zipfile.ZipFile, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in archive.read(name).decode().splitlines()]


async def downloaded(api: ApiClient, status: dict[str, Any]) -> zipfile.ZipFile:
    reply = await api.get(status["url"])  # no token: the link is the grant
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"] == "application/zip"
    assert len(reply.body) == status["size"]
    return zipfile.ZipFile(io.BytesIO(reply.body))


async def execute(runtime: Runtime, sql: str, *params: Any) -> None:
    await runtime.db.run(lambda tx: tx.execute(sql, params))


async def test_the_export_holds_everything_the_user_owns(api: ApiClient, runtime: Runtime) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob, name="Garden")
    mine, theirs = alice["user"]["id"], bob["user"]["id"]
    sent = await api.send(alice, room["id"], "first words")
    edit = await api.patch(
        f"/api/v1/rooms/{room['id']}/messages/{sent['id']}",
        {"text": "better words"},
        alice["token"],
    )
    assert edit.status == 200
    bobs = await api.send(bob, room["id"], "bob's own words")
    reacted = await api.put(
        f"/api/v1/rooms/{room['id']}/messages/{bobs['id']}/reactions/{quote('👍')}",
        token=alice["token"],
    )
    assert reacted.status == 204
    media = await uploaded(api, alice, image_bytes("PNG", (64, 48)))
    assert (await send_image(api, alice, room["id"], media["id"])).status == 201
    await api.put(
        f"/api/v1/rooms/{room['id']}/notifications", {"level": "mentions"}, alice["token"]
    )
    assert (await api.put(f"/api/v1/users/me/blocks/{theirs}", token=alice["token"])).status == 204
    filed = await api.post(
        f"/api/v1/rooms/{room['id']}/messages/{bobs['id']}/report",
        {"reason": "spam", "comment": "too much"},
        alice["token"],
    )
    assert filed.status == 201, filed.body

    status = await ready_export(api, alice)
    assert set(status) == {"id", "status", "url", "expires_at", "size"}
    archive = await downloaded(api, status)
    names = set(archive.namelist())
    assert FILES <= names

    [profile] = lines(archive, "profile.jsonl")
    assert profile["id"] == mine and profile["username"] == alice["user"]["username"]
    assert "password_hash" not in profile
    sessions = lines(archive, "sessions.jsonl")
    assert [s["user_agent"] is not None for s in sessions] == [True]
    raw = b"".join(archive.read(name) for name in FILES)
    assert alice["refresh_token"].encode() not in raw and b"token" not in raw
    assert [(m["room_id"], m["role"], m["name"]) for m in lines(archive, "memberships.jsonl")] == [
        (room["id"], "owner", "Garden")
    ]
    messages = lines(archive, "messages.jsonl")
    assert [m["text"] for m in messages] == ["better words", None]
    assert [e["text"] for e in messages[0]["edits"]] == ["better words"]
    assert messages[1]["media_id"] == media["id"]
    assert "bob's own words" not in raw.decode()
    [reaction] = lines(archive, "reactions.jsonl")
    assert (reaction["message_id"], reaction["emoji"]) == (bobs["id"], "👍")
    [upload] = lines(archive, "uploads.jsonl")
    assert upload["id"] == media["id"] and upload["file"] in names
    assert archive.read(upload["file"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert [b["user_id"] for b in lines(archive, "blocks.jsonl")] == [theirs]
    assert [s["level"] for s in lines(archive, "settings.jsonl")] == ["mentions"]
    [report] = lines(archive, "reports.jsonl")
    assert (report["message_id"], report["reason"], report["comment"]) == (
        bobs["id"],
        "spam",
        "too much",
    )
    assert "snapshot" not in report


async def test_a_second_export_within_24_hours_is_429_and_changes_nothing(
    api: ApiClient, runtime: Runtime
) -> None:
    alice = await api.register()
    await ready_export(api, alice)
    again = await api.post(EXPORT, token=alice["token"])
    assert again.status == 429 and again.error_code == "rate_limited"
    retry_after = int(again.headers["Retry-After"])
    assert 23 * 3600 < retry_after <= 24 * 3600
    count = await runtime.db.read(
        lambda tx: tx.scalar(
            "SELECT COUNT(*) FROM exports WHERE user_id = %s", (alice["user"]["id"],)
        )
    )
    assert count == 1


async def test_another_users_export_is_404(api: ApiClient) -> None:
    alice, mallory = await api.register(), await api.register()
    asked = await api.post(EXPORT, token=alice["token"])
    theirs = await api.get(f"/api/v1/users/me/exports/{asked.body['id']}", mallory["token"])
    assert theirs.status == 404 and theirs.error_code == "not_found"
    unknown = await api.get("/api/v1/users/me/exports/nothing", alice["token"])
    assert unknown.status == 404
    assert (await api.get(f"/api/v1/users/me/exports/{asked.body['id']}")).status == 401
    assert (await api.post(EXPORT)).status == 401


async def test_a_forged_or_unsigned_link_is_refused(api: ApiClient) -> None:
    alice = await api.register()
    status = await ready_export(api, alice)
    forged = status["url"].replace("signature=", "signature=x")
    assert (await api.get(forged)).status == 403
    later = status["url"].replace("expires=", "expires=9")
    assert (await api.get(later)).status == 403
    assert (await api.get(f"/api/v1/exports/{status['id']}/download")).status == 403
    another = status["url"].replace(status["id"], "0" * 26)
    assert (await api.get(another)).status == 403


async def test_a_deleted_account_takes_its_exports_with_it(
    api: ApiClient, runtime: Runtime
) -> None:
    alice = await api.register()
    status = await ready_export(api, alice)
    deleted = await api.call(
        "DELETE", "/api/v1/users/me", {"password": alice["password"]}, alice["token"]
    )
    assert deleted.status == 204
    assert (await api.get(status["url"])).status == 404


@pytest.mark.gen_test(timeout=120)
async def test_cli_export_writes_the_same_zip(
    api: ApiClient, runtime: Runtime, database_url: str, tmp_path: Path
) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    await api.send(alice, room["id"], "for the record")
    media = await uploaded(api, alice)
    assert (await send_image(api, alice, room["id"], media["id"])).status == 201
    settings = runtime.settings
    env = cronchat_env(
        database_url,
        settings.data_dir,
        CRONCHAT_MEDIA_BACKEND=settings.media_backend,
        **(
            {
                "CRONCHAT_S3_ENDPOINT_URL": settings.s3_endpoint_url,
                "CRONCHAT_S3_BUCKET": settings.s3_bucket,
                "CRONCHAT_S3_REGION": settings.s3_region,
                "CRONCHAT_S3_ACCESS_KEY_ID": settings.s3_access_key_id.reveal(),
                "CRONCHAT_S3_SECRET_ACCESS_KEY": settings.s3_secret_access_key.reveal(),
            }
            if settings.media_backend == "s3"
            else {}
        ),
    )
    out = tmp_path / "alice.zip"
    code, stdout, err = await cronchat(
        env, "user", "export", alice["user"]["username"], "--out", str(out), "--json"
    )
    assert code == 0, err
    assert json.loads(stdout)["size"] == out.stat().st_size
    assert out.stat().st_mode & 0o077 == 0
    with zipfile.ZipFile(out) as archive:
        assert FILES | {f"media/{media['id']}.png"} == set(archive.namelist())
        assert [m["text"] for m in lines(archive, "messages.jsonl")] == ["for the record", None]
    code, _, err = await cronchat(env, "user", "export", "nobody-here", "--out", str(out))
    assert code == 1 and "no user named" in err


@pytest.mark.gen_test(timeout=300)
async def test_a_large_account_exports_in_bounded_memory(
    api: ApiClient, runtime: Runtime, media_backend: dict[str, Any], tmp_path: Path
) -> None:
    if media_backend["media_backend"] != "local":
        pytest.skip("the memory bound is the same whatever the store; measured once")
    alice = await api.register()
    room = await api.group(alice)
    mine, count, text = alice["user"]["id"], 20_000, "x" * 1000  # 20 MB of text
    now = int(time.time() * 1000)
    rows = [
        (f"m{mine[-8:]}{i:08d}", room["id"], i + 10, mine, "text", f"{i} {text}", now)
        for i in range(count)
    ]
    await runtime.db.run(
        lambda tx: tx.executemany(
            "INSERT INTO messages (id, room_id, seq, sender_id, kind, text, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            rows,
        )
    )
    rows.clear()
    out = tmp_path / "large.zip"
    tracemalloc.start()
    try:
        with out.open("wb") as handle:
            await runtime.services.exports.write_zip(mine, handle)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Half of what the messages weigh: pages pass through, the account is never held.
    assert peak < 10_000_000, f"the export held {peak} bytes at its peak"
    with zipfile.ZipFile(out) as archive, archive.open("messages.jsonl") as entry:
        seen = sum(1 for _ in entry)
    assert seen == count
