"""The browser client (static/) in a real browser: two people register, chat live in a direct
room and a group (text, reply, reaction, image), one drops off the network and comes back
to exactly what was missed, and markup in a message stays text. In the group one picks the
other from the composer's @ list; the mentioned one's room list shows the mention badge
until the room is read, and the notification level set from the room menu survives a reload.
Moderation: a member reports a third member's message and the owner's open moderation panel
shows the report live, then resolves it; the reporter blocks that member, whose next message
shows collapsed as from a blocked user; the owner mutes a member (their composer says until
when) and bans another from the member list. Then one downloads their data export and the
other deletes their account from the profile and is logged out.

The scenario is tests/browser/chat.mjs (playwright-core driving Debian's chromium); this test
serves the real app as a subprocess on a fresh SQLite data dir, runs the script and reads its
JSON report. Without node, chromium or the node packages (``make test`` installs them) it
skips, except under CI=true, where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BROWSER_DIR = ROOT / "tests" / "browser"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() == "true"
SCENARIO_TIMEOUT = 120
ACCESS_TOKEN_TTL = 10  # seconds, the least the config allows


def require(available: bool, reason: str) -> None:
    if available:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the browser tests must run; `make test` installs it)")
    pytest.skip(f"{reason}; `make test` installs it")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_healthy(base_url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the server exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(base_url + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"the server did not answer /healthz within 20 s:\n{log.read_text()}")


@contextmanager
def serving(tmp_path: Path, **extra_env: str) -> Iterator[str]:
    """The real server (``python -m cli.main serve``) on a free port and a fresh data dir,
    with ``extra_env`` on top of the scenario's settings; yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "CRONCHAT_DATA_DIR": str(tmp_path / "data"),
        "CRONCHAT_HOST": "127.0.0.1",
        "CRONCHAT_PORT": str(port),
        "CRONCHAT_ARGON2_TIME_COST": "1",
        "CRONCHAT_ARGON2_MEMORY_KIB": "1024",
        # Shorter than the scenario: the client must refresh and re-auth its open socket.
        "CRONCHAT_ACCESS_TOKEN_TTL": str(ACCESS_TOKEN_TTL),
        # The default limits, but for the scenario's bulk of REST sends (a test device, not
        # the client): the per-user sends limit would refuse them.
        "CRONCHAT_RATE_SENDS": "100000/m",
    }
    for name in ("CRONCHAT_DATABASE_URL", "CRONCHAT_REDIS_URL", "CRONCHAT_MEDIA_BACKEND"):
        env.pop(name, None)
    env.update(extra_env)
    cli = [sys.executable, "-m", "cli.main"]
    subprocess.run([*cli, "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen([*cli, "serve"], cwd=ROOT, env=env, stdout=output, stderr=output)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base_url, server, log)
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    with serving(tmp_path) as base_url:
        yield base_url


@pytest.fixture
def node() -> str:
    node = shutil.which("node")
    require(node is not None, "node is not installed")
    require(Path(CHROMIUM).exists(), f"chromium is not installed at {CHROMIUM}")
    has_playwright = (BROWSER_DIR / "node_modules" / "playwright-core").is_dir()
    require(has_playwright, "playwright-core is not installed in tests/browser/node_modules")
    return node


def test_two_people_chat_in_the_browser_and_catch_up_after_going_offline(
    node: str, server_url: str, tmp_path: Path
) -> None:
    screenshots = tmp_path / "screenshots"
    started = time.monotonic()
    run = subprocess.run(
        [node, str(BROWSER_DIR / "chat.mjs"), server_url, str(screenshots)],
        cwd=BROWSER_DIR,
        env={**os.environ, "CHROMIUM_PATH": CHROMIUM},
        capture_output=True,
        text=True,
        timeout=SCENARIO_TIMEOUT,
    )
    elapsed = time.monotonic() - started
    output = run.stdout.strip().splitlines()
    assert output, f"the scenario printed nothing (exit {run.returncode}):\n{run.stderr}"
    report = json.loads(output[-1])
    (tmp_path / "report.json").write_text(json.dumps(report, indent=2))
    steps = [step["name"] for step in report["steps"]]
    failure = f"failed after {steps[-1:]}: {report.get('error')}\nscreenshots: {screenshots}"
    assert report["ok"], failure
    assert run.returncode == 0, f"exit {run.returncode}:\n{run.stderr}"
    assert "bob caught up: everything missed, nothing twice" in steps
    assert "markup shown as text" in steps
    assert "bob picked alice from the @ list and sent the mention" in steps
    assert report["mention_badge"] == "@1", f"the mention badge: {report.get('mention_badge')}"
    title = report["hidden_title"]
    assert title.startswith("(@) "), f"a hidden tab's title after a mention: {title}"
    assert "reading the room cleared the mention badge" in steps
    assert "notification level and mute set from the room menu, shown in the other tab" in steps
    assert "mentions only survives a reload; unmuted" in steps
    # Moderation and the account lifecycle.
    assert "the report shown live in the owner's moderation queue" in steps
    queued = report["report_in_queue"]
    assert queued["snapshot"].startswith("Cheap watches"), f"the report's snapshot: {queued}"
    assert queued["reason"] == "Spam" and queued["button"] == "Reports (1)", queued
    assert "the owner resolved the report and it left the open queue" in steps
    assert report["blocked_message"] == "Message from a blocked user"
    assert any(step.startswith("bob blocked sam") for step in steps)
    assert report["muted_note"].startswith("You are muted until "), report["muted_note"]
    assert "alice banned sam from the member list" in steps
    assert report["export"]["magic"] == "PK", f"the export's download: {report['export']}"
    assert "bob deleted his account and was logged out; alice sees a deleted user" in steps
    assert any(path.endswith("14-moderation-queue.png") for path in report["screenshots"])
    assert report["login_error"], "a failed login shows the error envelope's message"
    assert report["dialogs"] == [], "a dialog fired: markup ran as HTML"
    assert report["page_errors"] == [], f"errors in the page: {report['page_errors']}"
    # Alice never lost her network: one socket until she reloads the page, kept open across
    # token refreshes by `auth` frames sent on it (the first authenticates, each later one
    # re-authenticates).
    before_reload = report["alice_sockets_before_reload"]
    assert before_reload == 1, f"sockets opened before the reload: {before_reload}"
    assert report["auth_frames"]["alice"] >= 2, f"auth frames sent: {report['auth_frames']}"
    assert len(report["screenshots"]) >= 11
    assert any(path.endswith("12-mention-badge.png") for path in report["screenshots"])
    assert all(Path(path).stat().st_size > 0 for path in report["screenshots"])
    assert elapsed < 60, f"the browser scenario took {elapsed:.0f} s, more than 60 s"
