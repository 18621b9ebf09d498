"""The `cronchat` command, run as a real process against the test databases."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pymysql
import pytest
from test_scale import Server, free_port, require_redis
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from clients import ApiClient, WsClient, event_of, eventually, unique_name
from conftest import cronchat_env, ensure_migrated
from cronchat.config import DatabaseUrl, Secret, Settings
from cronchat.db import Database
from cronchat.runtime import Runtime
from cronchat.web.app import make_app


async def cronchat(env: dict[str, str], *args: str, stdin: str = "") -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        *args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return cronchat_env(database_url, tmp_path / "cli-data")


@pytest.mark.gen_test(timeout=60)
async def test_user_create_then_login(api: ApiClient, env: dict[str, str]) -> None:
    name = unique_name("alice")
    code, out, err = await cronchat(
        env, "user", "create", name, "--password-stdin", stdin="alice's password\n"
    )
    assert code == 0, err
    assert name in out
    reply = await api.post("/api/v1/auth/login", {"username": name, "password": "alice's password"})
    assert reply.status == 200


@pytest.mark.gen_test(timeout=60)
async def test_user_create_json_and_taken_name(env: dict[str, str]) -> None:
    name = unique_name("bob")
    code, out, _ = await cronchat(
        env,
        "user",
        "create",
        name,
        "--display-name",
        "Bob B",
        "--password-stdin",
        "--json",
        stdin="bobs password\n",
    )
    assert code == 0
    record = json.loads(out)
    assert record["username"] == name and record["display_name"] == "Bob B"
    assert record["is_admin"] is False and record["disabled"] is False
    code, out, err = await cronchat(
        env, "user", "create", name, "--password-stdin", stdin="bobs password\n"
    )
    assert code == 1
    assert out == ""
    assert err.strip() == "error: that username is taken"


@pytest.mark.gen_test(timeout=60)
async def test_user_create_rejects_bad_input_in_one_line(env: dict[str, str]) -> None:
    for args, stdin in (
        (("user", "create", "x"), "long enough password\n"),
        (("user", "create", unique_name()), "short\n"),
        (("user", "create", unique_name()), ""),
    ):
        code, _, err = await cronchat(env, *args, "--password-stdin", stdin=stdin)
        assert code == 1
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err


@pytest.mark.gen_test(timeout=90)
async def test_disable_enable_promote_set_password_and_list(
    api: ApiClient, env: dict[str, str]
) -> None:
    user = await api.register()
    name = user["user"]["username"]

    code, out, _ = await cronchat(env, "user", "disable", name, "--json")
    assert code == 0 and json.loads(out)["disabled"] is True
    assert (await api.get("/api/v1/users/me", user["token"])).status == 401
    login = await api.post("/api/v1/auth/login", {"username": name, "password": user["password"]})
    assert login.status == 401

    code, out, _ = await cronchat(env, "user", "enable", name, "--json")
    assert code == 0 and json.loads(out)["disabled"] is False
    assert (
        await api.post("/api/v1/auth/login", {"username": name, "password": user["password"]})
    ).status == 200

    code, out, _ = await cronchat(env, "user", "promote", name, "--json")
    assert code == 0 and json.loads(out)["is_admin"] is True

    session = await api.post("/api/v1/auth/login", {"username": name, "password": user["password"]})
    code, _, _ = await cronchat(
        env, "user", "set-password", name, "--password-stdin", stdin="the new password\n"
    )
    assert code == 0
    assert (await api.get("/api/v1/users/me", session.body["access_token"])).status == 401
    assert (
        await api.post("/api/v1/auth/login", {"username": name, "password": "the new password"})
    ).status == 200

    code, out, _ = await cronchat(env, "user", "list", "--json")
    assert code == 0
    listed = {record["username"]: record for record in json.loads(out)}
    assert listed[name]["is_admin"] is True
    code, out, _ = await cronchat(env, "user", "list")
    assert name in out


@pytest.mark.gen_test(timeout=60)
async def test_user_commands_on_unknown_user_fail_in_one_line(env: dict[str, str]) -> None:
    for command in ("disable", "enable", "promote"):
        code, _, err = await cronchat(env, "user", command, "nobody_here_at_all")
        assert code == 1
        assert err.strip() == "error: no user named 'nobody_here_at_all'"


@pytest.mark.gen_test(timeout=60)
async def test_migrate_is_idempotent(env: dict[str, str]) -> None:
    code, out, _ = await cronchat(env, "migrate", "--json")
    assert code == 0
    assert json.loads(out) == {"applied": []}


# -- start-up failures: one line, non-zero exit, no traceback ---------------------------


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line_failure(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


@pytest.fixture
def plain_env(tmp_path: Path) -> dict[str, str]:
    return cronchat_env(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path / "data")


def test_serve_refuses_unknown_database_scheme(plain_env: dict[str, str]) -> None:
    plain_env["CRONCHAT_DATABASE_URL"] = "postgres://localhost/db"
    assert_one_line_failure(run_cli(plain_env, "serve"), "unknown scheme 'postgres'")


def test_serve_refuses_unreachable_mysql(plain_env: dict[str, str]) -> None:
    plain_env["CRONCHAT_DATABASE_URL"] = "mysql://root@127.0.0.1:9/cronchat"
    assert_one_line_failure(run_cli(plain_env, "serve"), "unreachable")


def test_serve_refuses_schema_behind(plain_env: dict[str, str]) -> None:
    assert_one_line_failure(run_cli(plain_env, "serve"), "run `cronchat migrate`")


def test_serve_refuses_port_taken(plain_env: dict[str, str]) -> None:
    assert run_cli(plain_env, "migrate").returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(plain_env, "serve", "--host", "127.0.0.1", "--port", str(port))
    assert_one_line_failure(result, f"cannot listen on 127.0.0.1:{port}")


def test_serve_refuses_unwritable_data_dir(plain_env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    plain_env["CRONCHAT_DATA_DIR"] = str(blocker / "data")
    assert_one_line_failure(run_cli(plain_env, "serve"), "not writable")


def test_serve_refuses_workers_without_redis(plain_env: dict[str, str]) -> None:
    assert_one_line_failure(run_cli(plain_env, "serve", "--workers", "2"), "CRONCHAT_REDIS_URL")


def test_bad_variable_is_named(plain_env: dict[str, str]) -> None:
    plain_env["CRONCHAT_PORT"] = "eighty"
    assert_one_line_failure(run_cli(plain_env, "serve"), "CRONCHAT_PORT")


def test_generated_jwt_secret_is_private_and_stable(
    plain_env: dict[str, str], tmp_path: Path
) -> None:
    del plain_env["CRONCHAT_JWT_SECRET"]
    assert run_cli(plain_env, "migrate").returncode == 0
    secret_file = Path(plain_env["CRONCHAT_DATA_DIR"]) / "jwt_secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    first = secret_file.read_text()
    assert len(first) >= 64
    assert run_cli(plain_env, "migrate").returncode == 0
    assert secret_file.read_text() == first


@pytest.mark.gen_test(timeout=60)
async def test_serve_answers_and_stops_on_sigterm(plain_env: dict[str, str]) -> None:
    import signal
    import urllib.request

    assert run_cli(plain_env, "migrate").returncode == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=plain_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        answers: list[Any] = []

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/healthz", timeout=1
                ) as response:
                    answers.append(json.loads(response.read()))
                return True
            except OSError:
                return False

        await eventually(healthy, 10, "/healthz to answer")
        assert answers == [{"status": "ok"}]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        process.kill()
        process.wait()


# -- rooms ---------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=90)
async def test_room_commands_manage_a_room_seen_over_the_api(
    api: ApiClient, env: dict[str, str]
) -> None:
    owner, member, other = await api.register(), await api.register(), await api.register()
    owner_name, member_name, other_name = (u["user"]["username"] for u in (owner, member, other))

    code, out, err = await cronchat(
        env,
        "room",
        "create",
        "Ops room",
        "--owner",
        owner_name,
        "--member",
        member_name,
        "--topic",
        "on call",
        "--json",
    )
    assert code == 0, err
    created = json.loads(out)
    room_id = created["id"]
    assert (created["name"], created["topic"], created["member_count"]) == (
        "Ops room",
        "on call",
        2,
    )
    seen = await api.get(f"/api/v1/rooms/{room_id}", member["token"])
    assert seen.status == 200 and seen.body["my_role"] == "member"

    code, out, _ = await cronchat(
        env, "room", "add-member", room_id, other_name, "--role", "admin", "--json"
    )
    assert code == 0 and json.loads(out)["role"] == "admin"
    code, out, _ = await cronchat(env, "room", "show", room_id, "--json")
    shown = json.loads(out)
    assert {m["user"]["username"]: m["role"] for m in shown["members"]} == {
        owner_name: "owner",
        member_name: "member",
        other_name: "admin",
    }
    code, out, _ = await cronchat(env, "room", "show", room_id)
    assert code == 0 and "Ops room" in out and other_name in out

    code, _, _ = await cronchat(env, "room", "remove-member", room_id, member_name)
    assert code == 0
    assert (await api.get(f"/api/v1/rooms/{room_id}", member["token"])).status == 404
    events = (await api.get(f"/api/v1/rooms/{room_id}/events?after_seq=2", owner["token"])).body[
        "events"
    ]
    assert [(e["type"], e["actor_id"]) for e in events] == [
        ("member.joined", "system"),
        ("member.left", "system"),
    ]

    code, out, _ = await cronchat(env, "room", "list", "--json")
    assert room_id in [r["id"] for r in json.loads(out)]
    code, _, _ = await cronchat(env, "room", "delete", room_id)
    assert code == 0
    assert (await api.get(f"/api/v1/rooms/{room_id}", owner["token"])).status == 404
    code, out, _ = await cronchat(env, "room", "list", "--json")
    assert room_id not in [r["id"] for r in json.loads(out)]


@pytest.mark.gen_test(timeout=90)
async def test_room_commands_fail_in_one_line(api: ApiClient, env: dict[str, str]) -> None:
    alice, bob = await api.register(), await api.register()
    direct = await api.direct(alice, bob)
    failures = [
        (("room", "show", "no-such-room"), "no such room"),
        (("room", "delete", "no-such-room"), "no such room"),
        (("room", "add-member", "no-such-room", alice["user"]["username"]), "no such room"),
        (("room", "create", "x", "--owner", "nobody_at_all"), "no user named"),
        (("room", "add-member", direct["id"], alice["user"]["username"]), "direct rooms"),
        (("room", "delete", direct["id"]), "direct rooms"),
    ]
    for args, phrase in failures:
        code, out, err = await cronchat(env, *args)
        assert code == 1, args
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and phrase in err, (
            args,
            err,
        )


# -- what the CLI changes reaches open sockets at once -------------------------------------
# The CLI is a process of its own: its notices reach running servers through the database,
# whether the servers fan out through Redis or not.


@pytest.fixture(params=["in-process", "redis"])
def fan_out(request: pytest.FixtureRequest) -> str:
    """The served app's broker: in-process (the default setup) or Redis. Answers the Redis
    URL, or "" for none."""
    return "" if request.param == "in-process" else require_redis()


@pytest.fixture
def settings_overrides(
    request: pytest.FixtureRequest, settings_overrides: dict[str, Any]
) -> dict[str, Any]:
    """Tests that ask for ``fan_out`` are served on that broker."""
    if "fan_out" in request.fixturenames and request.getfixturevalue("fan_out"):
        return {**settings_overrides, "redis_url": Secret(request.getfixturevalue("fan_out"))}
    return settings_overrides


@pytest.fixture
def live_env(env: dict[str, str], fan_out: str) -> dict[str, str]:
    """The CLI's environment, configured like the server (Redis included, when it has it)."""
    return {**env, "CRONCHAT_REDIS_URL": fan_out} if fan_out else env


async def ok(env: dict[str, str], *args: str, stdin: str = "") -> None:
    code, _, err = await cronchat(env, *args, stdin=stdin)
    assert code == 0, f"cronchat {' '.join(args)}: exit {code}, {err}"


@pytest.mark.gen_test(timeout=60)
async def test_cli_disable_closes_open_sockets_with_4003(
    api: ApiClient, connect: Any, live_env: dict[str, str]
) -> None:
    erin = await api.register(unique_name("erin"))
    socket_of_erin = await connect(erin["token"])
    await ok(live_env, "user", "disable", erin["user"]["username"])
    assert await socket_of_erin.closed(timeout=5) == 4003


@pytest.mark.gen_test(timeout=60)
async def test_cli_set_password_closes_open_sockets_with_4003(
    api: ApiClient, connect: Any, live_env: dict[str, str]
) -> None:
    erin = await api.register(unique_name("erin"))
    socket_of_erin = await connect(erin["token"])
    await ok(
        live_env,
        "user",
        "set-password",
        erin["user"]["username"],
        "--password-stdin",
        stdin="a whole new password\n",
    )
    assert await socket_of_erin.closed(timeout=5) == 4003


@pytest.mark.gen_test(timeout=60)
async def test_cli_remove_member_stops_the_rooms_events_at_once(
    api: ApiClient, connect: Any, live_env: dict[str, str]
) -> None:
    owner, erin = await api.register(), await api.register(unique_name("erin"))
    room, other_room = await api.group(owner, erin), await api.group(owner, erin, name="Other")
    socket_of_erin = await connect(erin["token"])
    await ok(live_env, "room", "remove-member", room["id"], erin["user"]["username"])

    [left] = await socket_of_erin.events(room["id"], 1, timeout=5)
    assert (left["type"], left["data"]["user"]["id"]) == ("member.left", erin["user"]["id"])
    await api.send(owner, room["id"], "not for erin any more")
    marker = await api.send(owner, other_room["id"], "marker")
    before = await socket_of_erin.frames_before(
        event_of(other_room["id"], marker["seq"]), "the marker"
    )
    missed = [f for f in before if f.get("event", {}).get("room_id") == room["id"]]
    assert missed == [], f"expected nothing of the room erin left, got {missed}"


@pytest.mark.gen_test(timeout=60)
async def test_cli_add_member_delivers_the_rooms_events_at_once(
    api: ApiClient, connect: Any, live_env: dict[str, str]
) -> None:
    owner, erin = await api.register(), await api.register(unique_name("erin"))
    room = await api.group(owner)
    socket_of_erin = await connect(erin["token"])
    await ok(live_env, "room", "add-member", room["id"], erin["user"]["username"])

    [joined] = await socket_of_erin.events(room["id"], 1, timeout=5)
    assert (joined["type"], joined["data"]["user"]["id"]) == ("member.joined", erin["user"]["id"])
    sent = await api.send(owner, room["id"], "welcome")
    [created] = await socket_of_erin.events(room["id"], 1)
    assert (created["type"], created["data"]["id"]) == ("message.created", sent["id"])


@pytest.mark.gen_test(timeout=60)
async def test_cli_room_create_and_delete_reach_open_sockets_at_once(
    api: ApiClient, connect: Any, live_env: dict[str, str]
) -> None:
    owner, erin = await api.register(), await api.register(unique_name("erin"))
    socket_of_erin = await connect(erin["token"])
    code, out, err = await cronchat(
        live_env,
        "room",
        "create",
        "Ops",
        "--owner",
        owner["user"]["username"],
        "--member",
        erin["user"]["username"],
        "--json",
    )
    assert code == 0, err
    room_id = json.loads(out)["id"]
    [joined] = await socket_of_erin.events(room_id, 1, timeout=5)
    assert (joined["type"], joined["data"]["user"]["id"]) == ("member.joined", erin["user"]["id"])

    await ok(live_env, "room", "delete", room_id)
    [deleted] = await socket_of_erin.events(room_id, 1, timeout=5)
    assert deleted["type"] == "room.deleted"


@pytest.mark.gen_test(timeout=120)
async def test_cli_disable_reaches_every_server_process(mysql_url: str, tmp_path: Path) -> None:
    """With Redis and several processes, each process reads the CLI's notices itself."""
    ensure_migrated(mysql_url, tmp_path)
    env = cronchat_env(mysql_url, tmp_path / "data", CRONCHAT_REDIS_URL=require_redis())
    servers = [await Server.start(env, free_port())]
    client = AsyncHTTPClient(force_instance=True)
    try:
        servers.append(await Server.start(env, free_port()))
        erin = await ApiClient(client, servers[0].url).register(unique_name("erin"))
        sockets = [await WsClient.connect(server.url, erin["token"]) for server in servers]
        await ok(env, "user", "disable", erin["user"]["username"])
        assert [await socket_of_erin.closed(timeout=5) for socket_of_erin in sockets] == [
            4003,
            4003,
        ]
    finally:
        client.close()
        for server in servers:
            server.stop()


@pytest.mark.gen_test(timeout=60)
async def test_cli_notices_committed_out_of_order_all_arrive(
    api: ApiClient, connect: Any, env: dict[str, str], database_url: str
) -> None:
    """On MySQL a notice can commit after one with a higher id (two CLI acts at once): the
    servers still hand on both."""
    if not database_url.startswith("mysql"):
        pytest.skip("SQLite has one writer: ids become visible in order")
    erin, fay = await api.register(unique_name("erin")), await api.register(unique_name("fay"))
    socket_of_erin, socket_of_fay = await connect(erin["token"]), await connect(fay["token"])
    where = DatabaseUrl.parse(database_url)
    slow_act = pymysql.connect(
        host=where.host, port=where.port, user=where.user, database=where.database
    )
    try:
        with slow_act.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(
                "INSERT INTO notices (created_at, notice) VALUES (%s, %s)",
                (
                    int(time.time() * 1000),
                    json.dumps(
                        {
                            "kind": "sessions.revoked",
                            "session_ids": [socket_of_fay.ready["session_id"]],
                        }
                    ),
                ),
            )
        await ok(env, "user", "disable", erin["user"]["username"])
        assert await socket_of_erin.closed(timeout=5) == 4003
        slow_act.commit()
        assert await socket_of_fay.closed(timeout=5) == 4003
    finally:
        slow_act.close()


@pytest.mark.gen_test(timeout=60)
async def test_cli_prunes_notices_older_than_ten_minutes(
    api: ApiClient, env: dict[str, str], database_url: str
) -> None:
    owner = await api.register()
    db = Database(DatabaseUrl.parse(database_url), 1)
    try:
        stale = int(time.time() * 1000) - 11 * 60 * 1000
        db.run_sync(
            lambda tx: tx.execute(
                "INSERT INTO notices (created_at, notice) VALUES (%s, %s)",
                (stale, json.dumps({"kind": "test.stale"})),
            )
        )
        await ok(env, "room", "create", "Pruned", "--owner", owner["user"]["username"])
        left = db.run_sync(
            lambda tx: tx.scalar("SELECT COUNT(*) FROM notices WHERE created_at <= %s", (stale,))
        )
        assert left == 0, f"expected the stale notice pruned, {left} left"
        assert db.run_sync(lambda tx: tx.scalar("SELECT COUNT(*) FROM notices")) >= 1
    finally:
        db.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_server_does_not_replay_notices_older_than_its_start(
    api: ApiClient, connect: Any, env: dict[str, str], settings: Settings
) -> None:
    erin, fay = await api.register(unique_name("erin")), await api.register(unique_name("fay"))
    session_of_fay = (await connect(fay["token"])).ready["session_id"]
    db = Database(settings.database, 1)
    try:
        db.run_sync(
            lambda tx: tx.execute(
                "INSERT INTO notices (created_at, notice) VALUES (%s, %s)",
                (
                    int(time.time() * 1000),
                    json.dumps({"kind": "sessions.revoked", "session_ids": [session_of_fay]}),
                ),
            )
        )
    finally:
        db.close()

    later = Runtime(settings)
    await later.start()
    server = HTTPServer(make_app(later))
    [listening] = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    server.add_sockets([listening])
    url = f"http://127.0.0.1:{listening.getsockname()[1]}"
    sockets = [await WsClient.connect(url, user["token"]) for user in (fay, erin)]
    try:
        await ok(env, "user", "disable", erin["user"]["username"])
        assert await sockets[1].closed(timeout=5) == 4003
        assert (await sockets[0].request({"type": "ping"}))["type"] == "pong"
    finally:
        for each in sockets:
            each.close()
        server.stop()
        await later.close()
