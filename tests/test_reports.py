"""Reports: members report messages with a frozen snapshot; a room's admins and owners and
the server admins work the queues, handle reports with a note (recorded in the audit log)
and hear of them live; a reported image stays loadable by moderators until the report is
handled; the reporter is known to server admins only."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from test_cli import cronchat
from test_media import (  # noqa: F401  (fixtures of the media backends, used by name)
    image_bytes,
    media_backend,
    s3_endpoint,
    send_image,
    stored_keys,
    uploaded,
)
from test_scale import Server, free_port, require_redis
from tornado.httpclient import AsyncHTTPClient

from clients import ApiClient, User, WsClient, event_of, unique_name
from conftest import cronchat_env, ensure_migrated
from cronchat.config import Secret, Settings
from cronchat.db import Tx
from cronchat.models import AuditEntry
from cronchat.repos import audit
from cronchat.runtime import Runtime

pytestmark = pytest.mark.gen_test(timeout=60)

PASSWORD = "correct horse"
REPORT_FIELDS = {
    "id",
    "room_id",
    "message_id",
    "reason",
    "comment",
    "status",
    "snapshot",
    "reporter_id",
    "created_at",
    "handled_by",
    "handled_at",
    "note",
}
SNAPSHOT_FIELDS = {"sender_id", "kind", "text", "media_id", "created_at", "edited_at"}


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """conftest's fixture; a test that uses ``media_backend`` runs on each media backend,
    one that uses ``fan_out`` on that broker."""
    marker = request.node.get_closest_marker("server_settings")
    overrides = dict(marker.kwargs) if marker else {}
    if "media_backend" in request.fixturenames:
        overrides.update(request.getfixturevalue("media_backend"))
    if "fan_out" in request.fixturenames and request.getfixturevalue("fan_out"):
        overrides["redis_url"] = Secret(request.getfixturevalue("fan_out"))
    return overrides


# -- arranging -----------------------------------------------------------------------------


async def server_admin(api: ApiClient, runtime: Runtime) -> User:
    """A user with ``is_admin`` (made as `cronchat user create --admin` makes one), logged in."""
    name = unique_name("admin")
    await runtime.services.accounts.create_user(name, PASSWORD, None, True)
    reply = await api.post("/api/v1/auth/login", {"username": name, "password": PASSWORD})
    assert reply.status == 200, f"login: expected 200, got {reply.status} {reply.body}"
    return {**reply.body, "password": PASSWORD, "token": reply.body["access_token"]}


async def make_room_admin(api: ApiClient, owner: User, room_id: str, user: User) -> None:
    path = f"/api/v1/rooms/{room_id}/members/{user['user']['id']}"
    reply = await api.patch(path, {"role": "admin"}, owner["token"])
    assert reply.status == 200, f"role: expected 200, got {reply.status} {reply.body}"


class Room:
    """A group room: ``owner``, ``admin`` (a room admin), ``sender`` and ``reporter``
    (members); ``message`` is a message of ``sender``."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api

    async def arrange(self, text: str = "buy cheap watches") -> Room:
        api = self.api
        self.owner, self.admin = await api.register(), await api.register()
        self.sender, self.reporter = await api.register(), await api.register()
        self.room = await api.group(self.owner, self.admin, self.sender, self.reporter)
        self.id = self.room["id"]
        await make_room_admin(api, self.owner, self.id, self.admin)
        self.message = await api.send(self.sender, self.id, text)
        return self

    def report_path(self, message_id: str | None = None) -> str:
        return f"/api/v1/rooms/{self.id}/messages/{message_id or self.message['id']}/report"

    async def file(
        self, body: dict[str, Any] | None = None, user: User | None = None, status: int = 201
    ) -> dict[str, Any]:
        reply = await self.api.post(
            self.report_path(), body or {"reason": "spam"}, (user or self.reporter)["token"]
        )
        assert reply.status == status, f"report: expected {status}, got {reply.status} {reply.body}"
        return reply.body

    async def queue(self, user: User | None = None, query: str = "") -> list[dict[str, Any]]:
        reply = await self.api.get(
            f"/api/v1/rooms/{self.id}/reports{query}", (user or self.owner)["token"]
        )
        assert reply.status == 200, f"queue: expected 200, got {reply.status} {reply.body}"
        return reply.body["reports"]

    async def handle(
        self, report_id: str, body: dict[str, Any], user: User | None = None
    ) -> dict[str, Any]:
        reply = await self.api.patch(
            f"/api/v1/rooms/{self.id}/reports/{report_id}", body, (user or self.owner)["token"]
        )
        assert reply.status == 200, f"handle: expected 200, got {reply.status} {reply.body}"
        return reply.body

    async def delete_message(self, message_id: str | None = None) -> None:
        path = f"/api/v1/rooms/{self.id}/messages/{message_id or self.message['id']}"
        reply = await self.api.delete(path, self.owner["token"])
        assert reply.status == 204, f"delete: expected 204, got {reply.status} {reply.body}"


async def audit_of(runtime: Runtime, room_id: str) -> list[AuditEntry]:
    """The room's audit entries of reports (setting a room up records other acts)."""

    def entries_tx(tx: Tx) -> list[AuditEntry]:
        return audit.entries(tx, 50, audit.AuditFilter(room_id=room_id))

    entries = await runtime.db.read(entries_tx)
    return [entry for entry in entries if entry.action.startswith("report.")]


def report_frame_of(report_id: str) -> Any:
    return lambda frame: frame.get("type") == "report" and frame["report"]["id"] == report_id


# -- filing --------------------------------------------------------------------------------


async def test_a_member_files_a_report_with_a_snapshot_of_the_message(api: ApiClient) -> None:
    arranged = await Room(api).arrange()
    report = await arranged.file({"reason": "spam", "comment": "  sells watches  "})
    assert set(report) == REPORT_FIELDS and set(report["snapshot"]) == SNAPSHOT_FIELDS
    message = arranged.message
    assert (report["room_id"], report["message_id"]) == (arranged.id, message["id"])
    assert (report["reason"], report["comment"], report["status"]) == (
        "spam",
        "sells watches",
        "open",
    )
    assert report["snapshot"] == {
        "sender_id": arranged.sender["user"]["id"],
        "kind": "text",
        "text": "buy cheap watches",
        "media_id": None,
        "created_at": message["created_at"],
        "edited_at": None,
    }
    assert (report["handled_by"], report["handled_at"], report["note"]) == (None, None, None)
    assert report["reporter_id"] is None  # not even the reporter is told who filed it


async def test_the_same_reporter_again_gets_the_first_report(api: ApiClient) -> None:
    arranged = await Room(api).arrange()
    first = await arranged.file({"reason": "spam"})
    again = await arranged.file({"reason": "hate", "comment": "changed my mind"}, status=200)
    assert again == first
    assert [r["id"] for r in await arranged.queue()] == [first["id"]]


async def test_the_same_reporter_at_once_files_one_report(api: ApiClient) -> None:
    arranged = await Room(api).arrange()
    replies = await asyncio.gather(
        *[
            api.post(arranged.report_path(), {"reason": "spam"}, arranged.reporter["token"])
            for _ in range(4)
        ]
    )
    assert sorted(reply.status for reply in replies) == [200, 200, 200, 201], replies
    assert len({reply.body["id"] for reply in replies}) == 1
    assert len(await arranged.queue()) == 1


async def test_another_member_files_a_report_of_their_own(api: ApiClient) -> None:
    arranged = await Room(api).arrange()
    first = await arranged.file()
    second = await arranged.file({"reason": "harassment"}, user=arranged.admin)
    assert second["id"] != first["id"]
    assert {r["id"] for r in await arranged.queue()} == {first["id"], second["id"]}


async def test_reporting_your_own_message_is_400_and_files_nothing(api: ApiClient) -> None:
    arranged = await Room(api).arrange()
    reply = await api.post(arranged.report_path(), {"reason": "spam"}, arranged.sender["token"])
    assert (reply.status, reply.error_code) == (400, "invalid_request"), reply.body
    assert await arranged.queue() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "reason"),
        ({"reason": "rude"}, "reason"),
        ({"reason": "SPAM"}, "reason"),
        ({"reason": 3}, "reason"),
        ({"reason": None}, "reason"),
        ({"reason": ["spam"]}, "reason"),
        ({"reason": "spam", "comment": "x" * 1001}, "comment"),
        ({"reason": "spam", "comment": 42}, "comment"),
        ({"reason": "spam", "comment": {"text": "x"}}, "comment"),
        ({"reason": "spam", "comment": "look \u202eere"}, "comment"),
        ({"reason": "spam", "comment": "bell \u0007"}, "comment"),
    ],
)
async def test_a_bad_report_is_400_naming_the_field_and_files_nothing(
    api: ApiClient, body: dict[str, Any], field: str
) -> None:
    arranged = await Room(api).arrange()
    reply = await api.post(arranged.report_path(), body, arranged.reporter["token"])
    assert reply.status == 400, reply.body
    assert reply.body["error"]["details"]["field"] == field
    assert await arranged.queue() == []


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '"spam"', "{" * 40 + "}" * 40])
async def test_a_body_that_is_not_an_object_is_400_and_files_nothing(
    api: ApiClient, body: str
) -> None:
    arranged = await Room(api).arrange()
    reply = await api.post(arranged.report_path(), token=arranged.reporter["token"], body=body)
    assert (reply.status, reply.error_code) == (400, "invalid_request"), reply.body
    assert await arranged.queue() == []


async def test_a_comment_of_exactly_1000_characters_is_kept(api: ApiClient) -> None:
    arranged = await Room(api).arrange()
    report = await arranged.file({"reason": "other", "comment": "y" * 1000})
    assert report["comment"] == "y" * 1000


async def test_every_reason_of_the_contract_is_taken(api: ApiClient) -> None:
    arranged = await Room(api).arrange()
    for reason in ("spam", "harassment", "hate", "sexual", "violence", "self_harm", "other"):
        message = await api.send(arranged.sender, arranged.id, f"about {reason}")
        reply = await api.post(
            arranged.report_path(message["id"]), {"reason": reason}, arranged.reporter["token"]
        )
        assert (reply.status, reply.body["reason"]) == (201, reason), reply.body


async def test_a_non_member_reporting_gets_404_and_files_nothing(api: ApiClient) -> None:
    arranged = await Room(api).arrange()
    stranger = await api.register()
    reply = await api.post(arranged.report_path(), {"reason": "spam"}, stranger["token"])
    assert (reply.status, reply.error_code) == (404, "not_found"), reply.body
    unknown_room = await api.post(
        f"/api/v1/rooms/nosuchroom/messages/{arranged.message['id']}/report",
        {"reason": "spam"},
        arranged.reporter["token"],
    )
    assert unknown_room.status == 404
    unknown_message = await api.post(
        arranged.report_path("nosuchmessage"), {"reason": "spam"}, arranged.reporter["token"]
    )
    assert unknown_message.status == 404
    assert await arranged.queue() == []


async def test_a_message_of_another_room_is_404(api: ApiClient) -> None:
    arranged = await Room(api).arrange()
    elsewhere = await api.group(arranged.reporter, arranged.sender)
    reply = await api.post(
        f"/api/v1/rooms/{elsewhere['id']}/messages/{arranged.message['id']}/report",
        {"reason": "spam"},
        arranged.reporter["token"],
    )
    assert reply.status == 404, reply.body
    assert await arranged.queue() == []


async def test_a_deleted_message_is_409_but_a_report_filed_before_is_answered(
    api: ApiClient,
) -> None:
    arranged = await Room(api).arrange()
    first = await arranged.file(user=arranged.admin)
    await arranged.delete_message()
    late = await api.post(arranged.report_path(), {"reason": "spam"}, arranged.reporter["token"])
    assert (late.status, late.error_code) == (409, "conflict"), late.body
    again = await arranged.file(user=arranged.admin, status=200)
    assert again["id"] == first["id"]
    assert [r["id"] for r in await arranged.queue()] == [first["id"]]


async def test_a_direct_rooms_message_is_reported_to_server_admins(
    api: ApiClient, runtime: Runtime
) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.direct(alice, bob)
    message = await api.send(alice, room["id"], "hello there")
    path = f"/api/v1/rooms/{room['id']}/messages/{message['id']}/report"
    report = (await api.post(path, {"reason": "harassment"}, bob["token"])).body
    queue = await api.get(f"/api/v1/rooms/{room['id']}/reports", alice["token"])
    assert queue.status == 403  # a direct room has no admins
    admin = await server_admin(api, runtime)
    listed = await api.get(f"/api/v1/admin/reports?room_id={room['id']}", admin["token"])
    assert [r["id"] for r in listed.body["reports"]] == [report["id"]]


# -- the snapshot --------------------------------------------------------------------------


async def test_the_snapshot_survives_an_edit_and_the_deletion(api: ApiClient) -> None:
    arranged = await Room(api).arrange()
    report = await arranged.file()
    path = f"/api/v1/rooms/{arranged.id}/messages/{arranged.message['id']}"
    edited = await api.patch(path, {"text": "nothing to see"}, arranged.sender["token"])
    assert edited.status == 200
    (listed,) = await arranged.queue()
    assert listed["snapshot"] == report["snapshot"]
    await arranged.delete_message()
    (listed,) = await arranged.queue()
    assert listed["snapshot"]["text"] == "buy cheap watches"
    assert listed["snapshot"]["edited_at"] is None


async def test_handling_a_deleted_messages_report_drops_its_text(api: ApiClient) -> None:
    arranged = await Room(api).arrange()
    report = await arranged.file()
    await arranged.delete_message()
    handled = await arranged.handle(report["id"], {"status": "resolved"})
    assert handled["snapshot"]["text"] is None
    assert handled["snapshot"]["sender_id"] == arranged.sender["user"]["id"]
    (listed,) = await arranged.queue()
    assert listed["snapshot"] == handled["snapshot"]


async def test_deleting_a_message_after_its_report_was_handled_drops_its_text(
    api: ApiClient,
) -> None:
    arranged = await Room(api).arrange()
    report = await arranged.file()
    handled = await arranged.handle(report["id"], {"status": "dismissed"})
    assert handled["snapshot"]["text"] == "buy cheap watches"  # the message lives
    await arranged.delete_message()
    (listed,) = await arranged.queue()
    assert (listed["status"], listed["snapshot"]["text"]) == ("dismissed", None)


# -- the queues ----------------------------------------------------------------------------


async def test_room_admins_and_owners_read_the_queue_without_the_reporter(api: ApiClient) -> None:
    arranged = await Room(api).arrange()
    report = await arranged.file({"reason": "spam", "comment": "again"})
    for moderator in (arranged.owner, arranged.admin):
        (listed,) = await arranged.queue(moderator)
        assert listed == report
        assert listed["reporter_id"] is None
        assert arranged.reporter["user"]["id"] not in json.dumps(listed)


async def test_a_member_reading_the_queue_gets_403_and_a_non_member_404(api: ApiClient) -> None:
    arranged = await Room(api).arrange()
    await arranged.file()
    path = f"/api/v1/rooms/{arranged.id}/reports"
    for member in (arranged.sender, arranged.reporter):
        reply = await api.get(path, member["token"])
        assert (reply.status, reply.error_code) == (403, "forbidden"), reply.body
    stranger = await api.register()
    reply = await api.get(path, stranger["token"])
    assert (reply.status, reply.error_code) == (404, "not_found"), reply.body
    unknown = await api.get("/api/v1/rooms/nosuchroom/reports", arranged.owner["token"])
    assert unknown.status == 404


async def test_server_admins_see_every_rooms_reports_with_their_reporters(
    api: ApiClient, runtime: Runtime
) -> None:
    arranged = await Room(api).arrange()
    report = await arranged.file()
    other = await Room(api).arrange("another")
    elsewhere = await other.file({"reason": "hate"})
    admin = await server_admin(api, runtime)
    reply = await api.get(f"/api/v1/admin/reports?room_id={arranged.id}", admin["token"])
    assert reply.status == 200, reply.body
    (listed,) = reply.body["reports"]
    assert listed == {**report, "reporter_id": arranged.reporter["user"]["id"]}
    everything = await api.get("/api/v1/admin/reports?status=open&limit=100", admin["token"])
    assert everything.status == 200, everything.body
    ids = [r["id"] for r in everything.body["reports"]]
    assert ids.index(elsewhere["id"]) < ids.index(report["id"])  # newest first


async def test_a_non_admin_on_admin_reports_gets_403_and_changes_nothing(api: ApiClient) -> None:
    arranged = await Room(api).arrange()
    report = await arranged.file()
    for user in (arranged.owner, arranged.reporter, await api.register()):
        listed = await api.get("/api/v1/admin/reports", user["token"])
        assert (listed.status, listed.error_code) == (403, "forbidden"), listed.body
        handled = await api.patch(
            f"/api/v1/admin/reports/{report['id']}", {"status": "resolved"}, user["token"]
        )
        assert (handled.status, handled.error_code) == (403, "forbidden"), handled.body
    assert (await arranged.queue())[0]["status"] == "open"


async def test_the_queue_filters_by_status_and_pages_newest_first(api: ApiClient) -> None:
    arranged = await Room(api).arrange()
    messages = [arranged.message] + [
        await api.send(arranged.sender, arranged.id, f"spam {n}") for n in range(3)
    ]
    filed = []
    for message in messages:
        reply = await api.post(
            arranged.report_path(message["id"]), {"reason": "spam"}, arranged.reporter["token"]
        )
        filed.append(reply.body["id"])
    await arranged.handle(filed[1], {"status": "dismissed"})
    newest_first = list(reversed(filed))
    path = f"/api/v1/rooms/{arranged.id}/reports"
    first = await api.get(f"{path}?limit=3", arranged.owner["token"])
    assert [r["id"] for r in first.body["reports"]] == newest_first[:3]
    cursor = first.body["next_cursor"]
    assert cursor
    rest = await api.get(f"{path}?limit=3&cursor={cursor}", arranged.owner["token"])
    assert [r["id"] for r in rest.body["reports"]] == newest_first[3:]
    assert rest.body["next_cursor"] is None
    open_ones = await arranged.queue(query="?status=open")
    assert [r["id"] for r in open_ones] == [i for i in newest_first if i != filed[1]]
    dismissed = await arranged.queue(query="?status=dismissed")
    assert [r["id"] for r in dismissed] == [filed[1]]
    assert await arranged.queue(query="?status=resolved") == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?status=closed", "status"),
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=ten", "limit"),
        ("?cursor=not-ours", "cursor"),
    ],
)
async def test_a_bad_queue_query_is_400(
    api: ApiClient, runtime: Runtime, query: str, field: str
) -> None:
    arranged = await Room(api).arrange()
    reply = await api.get(f"/api/v1/rooms/{arranged.id}/reports{query}", arranged.owner["token"])
    assert reply.status == 400 and reply.body["error"]["details"]["field"] == field, reply.body
    admin = await server_admin(api, runtime)
    reply = await api.get(f"/api/v1/admin/reports{query}", admin["token"])
    assert reply.status == 400 and reply.body["error"]["details"]["field"] == field, reply.body


# -- handling ------------------------------------------------------------------------------


async def test_a_room_admin_resolves_a_report_and_the_audit_log_records_it(
    api: ApiClient, runtime: Runtime
) -> None:
    arranged = await Room(api).arrange()
    report = await arranged.file({"reason": "spam"})
    handled = await arranged.handle(
        report["id"], {"status": "resolved", "note": "removed the seller"}, arranged.admin
    )
    assert handled["status"] == "resolved" and handled["note"] == "removed the seller"
    assert handled["handled_by"] == arranged.admin["user"]["id"] and handled["handled_at"]
    assert handled["reporter_id"] is None
    assert (await arranged.queue())[0] == handled
    (entry,) = await audit_of(runtime, arranged.id)
    assert (entry.action, entry.actor_id, entry.message_id, entry.target_user_id) == (
        "report.resolved",
        arranged.admin["user"]["id"],
        arranged.message["id"],
        arranged.sender["user"]["id"],
    )
    assert entry.data == {"report_id": report["id"], "reason": "spam", "note": "removed the seller"}
    assert arranged.reporter["user"]["id"] not in json.dumps(entry.data)


async def test_a_server_admin_dismisses_a_report_of_a_room_they_are_not_in(
    api: ApiClient, runtime: Runtime
) -> None:
    arranged = await Room(api).arrange()
    report = await arranged.file()
    admin = await server_admin(api, runtime)
    reply = await api.patch(
        f"/api/v1/admin/reports/{report['id']}", {"status": "dismissed"}, admin["token"]
    )
    assert reply.status == 200, reply.body
    assert (reply.body["status"], reply.body["handled_by"], reply.body["note"]) == (
        "dismissed",
        admin["user"]["id"],
        None,
    )
    assert reply.body["reporter_id"] == arranged.reporter["user"]["id"]
    (entry,) = await audit_of(runtime, arranged.id)
    assert (entry.action, entry.actor_id) == ("report.dismissed", admin["user"]["id"])
    unknown = await api.patch(
        "/api/v1/admin/reports/nosuchreport", {"status": "dismissed"}, admin["token"]
    )
    assert unknown.status == 404


async def test_handling_a_handled_report_is_409_and_records_nothing_more(
    api: ApiClient, runtime: Runtime
) -> None:
    arranged = await Room(api).arrange()
    report = await arranged.file()
    handled = await arranged.handle(report["id"], {"status": "resolved", "note": "done"})
    path = f"/api/v1/rooms/{arranged.id}/reports/{report['id']}"
    for body in ({"status": "dismissed"}, {"status": "resolved", "note": "twice"}):
        again = await api.patch(path, body, arranged.admin["token"])
        assert (again.status, again.error_code) == (409, "conflict"), again.body
    assert (await arranged.queue())[0] == handled
    assert len(await audit_of(runtime, arranged.id)) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "status"),
        ({"status": "open"}, "status"),
        ({"status": "closed"}, "status"),
        ({"status": True}, "status"),
        ({"status": "resolved", "note": "n" * 1001}, "note"),
        ({"status": "resolved", "note": 7}, "note"),
        ({"status": "resolved", "note": "\u202egnirob"}, "note"),
    ],
)
async def test_a_bad_handling_is_400_and_changes_nothing(
    api: ApiClient, runtime: Runtime, body: dict[str, Any], field: str
) -> None:
    arranged = await Room(api).arrange()
    report = await arranged.file()
    path = f"/api/v1/rooms/{arranged.id}/reports/{report['id']}"
    reply = await api.patch(path, body, arranged.owner["token"])
    assert reply.status == 400 and reply.body["error"]["details"]["field"] == field, reply.body
    assert (await arranged.queue())[0] == report
    assert await audit_of(runtime, arranged.id) == []


async def test_a_bad_handling_on_admin_reports_is_400_and_changes_nothing(
    api: ApiClient, runtime: Runtime
) -> None:
    arranged = await Room(api).arrange()
    report = await arranged.file()
    admin = await server_admin(api, runtime)
    path = f"/api/v1/admin/reports/{report['id']}"
    for body, field in (
        ({"status": "open"}, "status"),
        ({"status": ["resolved"]}, "status"),
        ({"status": "dismissed", "note": "n" * 1001}, "note"),
        ({"status": "dismissed", "note": False}, "note"),
    ):
        reply = await api.patch(path, body, admin["token"])
        assert reply.status == 400 and reply.body["error"]["details"]["field"] == field, reply.body
    not_json = await api.patch(path, token=admin["token"], body="status=resolved")
    assert not_json.status == 400, not_json.body
    assert (await arranged.queue())[0] == report
    assert await audit_of(runtime, arranged.id) == []
    nowhere = await api.get("/api/v1/admin/reports?room_id=nosuchroom", admin["token"])
    assert nowhere.body == {"reports": [], "next_cursor": None}


async def test_a_member_handling_gets_403_a_stranger_404_and_nothing_changes(
    api: ApiClient, runtime: Runtime
) -> None:
    arranged = await Room(api).arrange()
    report = await arranged.file()
    path = f"/api/v1/rooms/{arranged.id}/reports/{report['id']}"
    member = await api.patch(path, {"status": "dismissed"}, arranged.reporter["token"])
    assert (member.status, member.error_code) == (403, "forbidden"), member.body
    stranger = await api.patch(path, {"status": "dismissed"}, (await api.register())["token"])
    assert (stranger.status, stranger.error_code) == (404, "not_found"), stranger.body
    # The owner of another room cannot reach this room's report through their own room.
    other = await Room(api).arrange()
    crossed = await api.patch(
        f"/api/v1/rooms/{other.id}/reports/{report['id']}",
        {"status": "dismissed"},
        other.owner["token"],
    )
    assert (crossed.status, crossed.error_code) == (404, "not_found"), crossed.body
    assert (await arranged.queue())[0] == report
    assert await audit_of(runtime, arranged.id) == []


# -- the report frame ----------------------------------------------------------------------


async def test_the_report_frame_reaches_online_moderators_and_not_the_reporter(
    api: ApiClient, runtime: Runtime, connect: Any
) -> None:
    arranged = await Room(api).arrange()
    admin = await server_admin(api, runtime)
    owner_ws, room_admin_ws = (
        await connect(arranged.owner["token"]),
        await connect(arranged.admin["token"]),
    )
    server_admin_ws = await connect(admin["token"])
    reporter_ws, sender_ws = (
        await connect(arranged.reporter["token"]),
        await connect(arranged.sender["token"]),
    )
    report = await arranged.file({"reason": "violence", "comment": "threat"})
    for socket in (owner_ws, room_admin_ws):
        frame = await socket.wait_for(report_frame_of(report["id"]), "the report frame")
        assert frame["report"] == report and frame["report"]["reporter_id"] is None
    frame = await server_admin_ws.wait_for(report_frame_of(report["id"]), "the report frame")
    assert frame["report"] == {**report, "reporter_id": arranged.reporter["user"]["id"]}

    handled = await arranged.handle(report["id"], {"status": "resolved", "note": "warned"})
    frame = await room_admin_ws.wait_for(report_frame_of(report["id"]), "the handled frame")
    assert frame["report"] == handled
    frame = await server_admin_ws.wait_for(report_frame_of(report["id"]), "the handled frame")
    assert frame["report"]["status"] == "resolved"
    assert frame["report"]["reporter_id"] == arranged.reporter["user"]["id"]

    # A marker after both: what the reporter and the sender got before it has no report.
    marker = await api.send(arranged.owner, arranged.id, "marker")
    for socket in (reporter_ws, sender_ws):
        before = await socket.frames_before(
            lambda frame: event_of(arranged.id, marker["seq"])(frame), "the marker"
        )
        assert [f for f in before if f.get("type") == "report"] == [], before


async def test_a_moderator_who_reports_hears_of_the_report_too(
    api: ApiClient, connect: Any
) -> None:
    arranged = await Room(api).arrange()
    owner_ws = await connect(arranged.owner["token"])
    report = await arranged.file(user=arranged.admin)
    frame = await owner_ws.wait_for(report_frame_of(report["id"]), "the report frame")
    assert frame["report"]["reporter_id"] is None
    admin_ws = await connect(arranged.admin["token"])
    handled = await arranged.handle(report["id"], {"status": "dismissed"})
    frame = await admin_ws.wait_for(report_frame_of(report["id"]), "the handled frame")
    assert frame["report"] == handled


@pytest.mark.gen_test(timeout=120)
async def test_the_report_frame_crosses_processes_through_redis(
    mysql_url: str, tmp_path: Path
) -> None:
    ensure_migrated(mysql_url, tmp_path)
    env = cronchat_env(mysql_url, tmp_path / "data", CRONCHAT_REDIS_URL=require_redis())
    servers: list[Server] = []
    client = AsyncHTTPClient(force_instance=True)
    sockets: list[WsClient] = []
    try:
        servers.append(await Server.start(env, free_port()))
        servers.append(await Server.start(env, free_port()))
        first, second = (ApiClient(client, server.url) for server in servers)
        arranged = await Room(first).arrange()
        owner_ws = await WsClient.connect(servers[1].url, arranged.owner["token"])
        sockets.append(owner_ws)
        report = await arranged.file()
        frame = await owner_ws.wait_for(report_frame_of(report["id"]), "the report frame")
        assert frame["report"] == report
        handled = await ApiClient(client, servers[1].url).patch(
            f"/api/v1/rooms/{arranged.id}/reports/{report['id']}",
            {"status": "resolved"},
            arranged.admin["token"],
        )
        assert handled.status == 200, handled.body
        moved = await owner_ws.wait_for(report_frame_of(report["id"]), "the handled frame")
        assert moved["report"] == handled.body
        assert second  # both processes served the test
    finally:
        for socket in sockets:
            socket.close()
        client.close()
        for server in servers:
            server.stop()


# -- a reported image ----------------------------------------------------------------------


async def image_room(api: ApiClient) -> tuple[Room, dict[str, Any], dict[str, Any]]:
    """A room whose sender sent an image: the room, the media, the message."""
    arranged = await Room(api).arrange()
    media = await uploaded(api, arranged.sender, image_bytes("PNG"))
    sent = await send_image(api, arranged.sender, arranged.id, media["id"], text="look")
    assert sent.status == 201, sent.body
    return arranged, media, sent.body


@pytest.mark.usefixtures("media_backend")
async def test_a_reported_image_stays_loadable_by_moderators_until_the_report_is_handled(
    api: ApiClient, runtime: Runtime, settings: Settings
) -> None:
    arranged, media, message = await image_room(api)
    admin = await server_admin(api, runtime)
    report = (
        await api.post(
            arranged.report_path(message["id"]), {"reason": "sexual"}, arranged.reporter["token"]
        )
    ).body
    assert report["snapshot"]["media_id"] == media["id"]
    assert report["snapshot"]["kind"] == "image"
    files = [f"/api/v1/media/{media['id']}", f"/api/v1/media/{media['id']}/thumbnail"]
    outsider = await api.register()
    for path in files:
        # A server admin in no room of the image may load it while the report is open.
        assert (await api.get(path, admin["token"])).status == 200, path
        assert (await api.get(path, outsider["token"])).status == 404, path

    await arranged.delete_message(message["id"])
    for path in files:
        for moderator in (arranged.owner, arranged.admin, admin):
            loaded = await api.get(path, moderator["token"])
            assert loaded.status == 200, (path, loaded.body)
        for member in (arranged.reporter, arranged.sender, outsider):
            gone = await api.get(path, member["token"])
            assert (gone.status, gone.error_code) == (404, "not_found"), path
    for link in (message["media"]["url"], message["media"]["thumbnail_url"]):
        assert (await api.get(link)).status == 404, link  # links stop loading at deletion
    assert [key for key in stored_keys(settings) if media["id"] in key] != []
    (listed,) = await arranged.queue()
    assert listed["snapshot"]["media_id"] == media["id"]

    handled = await arranged.handle(report["id"], {"status": "resolved"})
    assert handled["snapshot"]["media_id"] is None
    for path in files:
        for moderator in (arranged.owner, admin):
            gone = await api.get(path, moderator["token"])
            assert (gone.status, gone.error_code) == (404, "not_found"), path
    assert [key for key in stored_keys(settings) if media["id"] in key] == []


async def test_a_deleted_image_stays_until_its_last_open_report_is_handled(
    api: ApiClient, settings: Settings
) -> None:
    arranged, media, message = await image_room(api)
    path = arranged.report_path(message["id"])
    first = (await api.post(path, {"reason": "spam"}, arranged.reporter["token"])).body
    second = (await api.post(path, {"reason": "hate"}, arranged.admin["token"])).body
    await arranged.delete_message(message["id"])
    await arranged.handle(first["id"], {"status": "dismissed"})
    file = f"/api/v1/media/{media['id']}"
    assert (await api.get(file, arranged.owner["token"])).status == 200
    assert [key for key in stored_keys(settings) if media["id"] in key] != []
    await arranged.handle(second["id"], {"status": "resolved"})
    assert (await api.get(file, arranged.owner["token"])).status == 404
    assert [key for key in stored_keys(settings) if media["id"] in key] == []


async def test_a_handled_reports_image_goes_with_the_messages_deletion(
    api: ApiClient, settings: Settings
) -> None:
    arranged, media, message = await image_room(api)
    report = (
        await api.post(
            arranged.report_path(message["id"]), {"reason": "spam"}, arranged.reporter["token"]
        )
    ).body
    await arranged.handle(report["id"], {"status": "dismissed"})
    assert [key for key in stored_keys(settings) if media["id"] in key] != []
    await arranged.delete_message(message["id"])
    assert (await api.get(f"/api/v1/media/{media['id']}", arranged.owner["token"])).status == 404
    assert [key for key in stored_keys(settings) if media["id"] in key] == []
    (listed,) = await arranged.queue()
    assert (listed["snapshot"]["text"], listed["snapshot"]["media_id"]) == (None, None)


async def test_a_moderator_of_another_room_cannot_load_a_reported_image(
    api: ApiClient,
) -> None:
    arranged, media, message = await image_room(api)
    await api.post(
        arranged.report_path(message["id"]), {"reason": "spam"}, arranged.reporter["token"]
    )
    await arranged.delete_message(message["id"])
    other = await Room(api).arrange()
    reply = await api.get(f"/api/v1/media/{media['id']}", other.owner["token"])
    assert (reply.status, reply.error_code) == (404, "not_found")


# -- the CLI -------------------------------------------------------------------------------


@pytest.fixture(params=["in-process", "redis"])
def fan_out(request: pytest.FixtureRequest) -> str:
    """The served app's broker, and the CLI's: in-process (through the database) or Redis."""
    return "" if request.param == "in-process" else require_redis()


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path, fan_out: str) -> dict[str, str]:
    extra = {"CRONCHAT_REDIS_URL": fan_out} if fan_out else {}
    return cronchat_env(database_url, tmp_path / "cli-data", **extra)


@pytest.mark.gen_test(timeout=90)
async def test_cli_lists_and_resolves_reports_live_and_recorded(
    api: ApiClient, runtime: Runtime, connect: Any, cli_env: dict[str, str]
) -> None:
    arranged = await Room(api).arrange()
    report = await arranged.file({"reason": "spam", "comment": "seller"})
    code, out, err = await cronchat(cli_env, "report", "list", "--room", arranged.id, "--json")
    assert code == 0, err
    (listed,) = json.loads(out)
    assert listed == {**report, "reporter_id": arranged.reporter["user"]["id"]}
    code, out, err = await cronchat(cli_env, "report", "list", "--room", arranged.id)
    assert code == 0 and report["id"] in out and "spam" in out, (out, err)

    owner_ws = await connect(arranged.owner["token"])
    code, out, err = await cronchat(
        cli_env, "report", "resolve", report["id"], "--note", "banned", "--json"
    )
    assert code == 0, err
    resolved = json.loads(out)
    assert (resolved["status"], resolved["note"], resolved["handled_by"]) == (
        "resolved",
        "banned",
        None,
    )
    frame = await owner_ws.wait_for(report_frame_of(report["id"]), "the handled frame", 10)
    assert frame["report"]["status"] == "resolved" and frame["report"]["reporter_id"] is None
    (entry,) = await audit_of(runtime, arranged.id)
    assert (entry.action, entry.actor_id, entry.data["via"]) == ("report.resolved", None, "cli")

    code, _, err = await cronchat(cli_env, "report", "dismiss", report["id"])
    assert code == 1 and len(err.strip().splitlines()) == 1 and "resolved" in err, err
    code, out, _ = await cronchat(
        cli_env, "report", "list", "--room", arranged.id, "--status", "open", "--json"
    )
    assert code == 0 and json.loads(out) == []
    assert len(await audit_of(runtime, arranged.id)) == 1


@pytest.mark.parametrize("fan_out", ["in-process"], indirect=True)
async def test_cli_report_commands_fail_in_one_line(
    api: ApiClient, cli_env: dict[str, str]
) -> None:
    arranged = await Room(api).arrange()
    report = await arranged.file()
    for args in (
        ("report", "dismiss", "nosuchreport"),
        ("report", "resolve", report["id"], "--note", "n" * 1001),
    ):
        code, out, err = await cronchat(cli_env, *args)
        assert code != 0 and out == "" and len(err.strip().splitlines()) == 1, (args, err)
    assert (await arranged.queue())[0] == report
