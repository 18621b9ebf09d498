"""The browser client's Web Push, in a real browser: the profile's "Notifications on this
device" toggle, and the service worker (static/sw.js) turning the real server's pushes into
notifications, a newer one replacing the older, a click opening the room, a read closing it.

Headless chromium has no push service (``pushManager.subscribe`` fails), so Alice's device
is a subscription of the tests' own push service (``push_receivers.WebPushReceiver``),
registered with her session: the server pushes to it as to any push service, the receiver
checks VAPID and decrypts (RFC 8291), and the scenario (tests/browser/push.mjs) hands each
payload to Alice's service worker with CDP's ``ServiceWorker.deliverPushMessage``. The
scenario reaches the receiver through a small door served here (``PushServiceDoor``).
Without node, chromium or the node packages it skips, except under CI=true, where it fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from push_receivers import WebPushReceiver
from test_browser import BROWSER_DIR, CHROMIUM, node, serving  # noqa: F401 (node: fixture)
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, HTTPError, RequestHandler

from cronchat.push.payloads import MessagePush, ReadPush, webpush_payload

SCENARIO_TIMEOUT = 90
PUSH_WAIT = 20  # seconds the door waits for the server's pushes


class PushServiceDoor:
    """The scenario's way in to the push service, on loopback: ``POST /subscriptions``
    makes a subscription (``{token, subscription: {endpoint, keys}}``), ``GET
    /subscriptions/<token>/pushes?count=N`` answers the decrypted payloads once N came, and
    ``POST /payloads`` answers the payload the server's own ``webpush_payload`` builds from
    the fields given (for ``include_content=false``, a setting of another server)."""

    def __init__(self, receiver: WebPushReceiver) -> None:
        handlers = [
            (r"/subscriptions", _SubscriptionsHandler),
            (r"/subscriptions/([A-Za-z0-9_-]+)/pushes", _PushesHandler),
            (r"/payloads", _PayloadsHandler),
        ]
        self._server = HTTPServer(Application(handlers, receiver=receiver))
        sockets = bind_sockets(0, "127.0.0.1")
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        self._server.add_sockets(sockets)

    async def close(self) -> None:
        self._server.stop()
        await self._server.close_all_connections()


class _DoorHandler(RequestHandler):
    @property
    def receiver(self) -> WebPushReceiver:
        receiver: WebPushReceiver = self.application.settings["receiver"]
        return receiver

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.request.body or b"{}")
        return body


class _SubscriptionsHandler(_DoorHandler):
    def post(self) -> None:
        subscription = self.receiver.subscribe(self.body().get("application_server_key"))
        self.finish({"token": subscription.token, "subscription": subscription.as_json()})


class _PushesHandler(_DoorHandler):
    async def get(self, token: str) -> None:
        subscription = self.receiver.subscriptions.get(token)
        if subscription is None:
            raise HTTPError(404)
        count = int(self.get_argument("count"))
        try:
            pushes = await self.receiver.wait_for(count, subscription, timeout=PUSH_WAIT)
        except AssertionError as error:
            self.set_status(504)
            self.finish(str(error))
            return
        self.finish({"pushes": [push.payload for push in pushes]})


class _PayloadsHandler(_DoorHandler):
    def post(self) -> None:
        fields = self.body()
        include_content = fields.pop("include_content", True)
        kind = fields.pop("type")
        push = ReadPush(**fields) if kind == "read" else MessagePush(**fields)
        payload = webpush_payload(push, include_content=include_content)
        self.finish({"payload": json.loads(payload)})


async def run_scenario(
    node_path: str, base_url: str, screenshots: Path
) -> tuple[dict[str, Any], str]:
    """Run push.mjs against ``base_url`` with a push service of this process; its report and
    what it wrote on stderr, and the push service's problems under ``push_problems``."""
    receiver = WebPushReceiver()
    receiver.start()
    door = PushServiceDoor(receiver)
    try:
        process = await asyncio.create_subprocess_exec(
            node_path,
            str(BROWSER_DIR / "push.mjs"),
            base_url,
            door.url,
            str(screenshots),
            cwd=BROWSER_DIR,
            env={**os.environ, "CHROMIUM_PATH": CHROMIUM},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), SCENARIO_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise AssertionError(f"the push scenario ran over {SCENARIO_TIMEOUT} s") from None
    finally:
        await door.close()
        await receiver.stop()
    lines = stdout.decode().strip().splitlines()
    assert lines, f"the scenario printed nothing (exit {process.returncode}):\n{stderr.decode()}"
    report: dict[str, Any] = json.loads(lines[-1])
    report["push_problems"] = receiver.problems
    report["exit"] = process.returncode
    return report, stderr.decode()


def test_pushes_become_notifications_that_a_click_opens_and_a_read_closes(
    node: str,  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    screenshots = tmp_path / "screenshots"
    started = time.monotonic()
    with serving(tmp_path, CRONCHAT_PUSH_ALLOW_PRIVATE="true") as base_url:
        report, stderr = asyncio.run(run_scenario(node, base_url, screenshots))
    elapsed = time.monotonic() - started
    (tmp_path / "report.json").write_text(json.dumps(report, indent=2))
    steps = [step["name"] for step in report["steps"]]
    failure = f"failed after {steps[-1:]}: {report.get('error')}\nscreenshots: {screenshots}"
    assert report["ok"], failure
    assert report["exit"] == 0, f"exit {report['exit']}:\n{stderr}"
    problems = report["push_problems"]
    assert problems == [], f"pushes that a push service would refuse: {problems}"
    # The toggle: no push service in headless chromium, and permission refused.
    error = report["subscribe_error"]
    assert error.startswith("The browser's push service is not available here"), error
    assert report["worker"]["script"].endswith("/sw.js"), report["worker"]
    assert report["denied_permission"] == "denied", report["denied_permission"]
    assert report["denied_error"].startswith("Notifications are blocked"), report["denied_error"]
    # The server's pushes as the service worker showed them.
    message = report["notifications"]["message"]
    assert message["title"] == "Bob Brown in Team" and message["body"] == "Lunch at noon?"
    assert message["tag"].startswith("room:"), message
    assert [shown["body"] for shown in report["notifications"]["replaced"]] == ["Or at one?"]
    direct = report["notifications"]["direct"]
    assert (direct["title"], direct["body"]) == ("Bob Brown", "Just us"), direct
    assert "the notification's click handler opened the room in the open window" in steps
    assert "reading the room sent a read push that closed its notification" in steps
    generic = report["notifications"]["generic"]
    assert (generic["title"], generic["body"]) == ("New message", "3 unread messages"), generic
    assert "the address /#room=<id> opened the room" in steps
    assert report["remembered_after_logout"] is None
    assert report["page_errors"] == [], f"errors in the page: {report['page_errors']}"
    assert any(path.endswith("01-profile-notifications.png") for path in report["screenshots"])
    assert all(Path(path).stat().st_size > 0 for path in report["screenshots"])
    assert elapsed < 60, f"the push scenario took {elapsed:.0f} s, more than 60 s"
