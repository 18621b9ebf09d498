"""Users and rooms of a run, made over CronChat's REST API (register, create room, add
member, and for a preset of room mentions make the senders admins), a bounded number of
requests at a time."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from bench.presets import Preset, room_of, sender_users

PASSWORD = "bench-password"
CONCURRENCY = 16
MAX_INITIAL_MEMBERS = 500  # POST /rooms takes at most this many member_ids
REQUEST_SECONDS = 60.0


class SetupError(Exception):
    pass


class Rest:
    def __init__(self, base_url: str) -> None:
        self.base = base_url + "/api/v1"
        self.client = AsyncHTTPClient(force_instance=True, max_clients=CONCURRENCY)
        self.requests = 0

    async def call(self, method: str, path: str, body: Any, token: str | None = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.requests += 1
        try:
            answer = await self.client.fetch(
                self.base + path,
                method=method,
                body=json.dumps(body),
                headers=headers,
                request_timeout=REQUEST_SECONDS,
            )
        except HTTPClientError as error:
            detail = error.response.body[:300] if error.response is not None else b""
            raise SetupError(f"{method} {path}: {error.code} {detail!r}") from None
        return json.loads(answer.body) if answer.body else None

    def close(self) -> None:
        self.client.close()


async def _bounded(calls: list, limit: int = CONCURRENCY) -> list:
    gate = asyncio.Semaphore(limit)

    async def one(call):
        async with gate:
            return await call

    return await asyncio.gather(*(one(call) for call in calls))


async def populate(base_url: str, preset: Preset) -> dict[str, Any]:
    """Register the preset's users, create its rooms with their members: answers
    ``{"tokens": [...], "room_ids": [...], "seconds": ..., "requests": ...}``."""
    started = time.monotonic()
    rest = Rest(base_url)
    prefix = "b" + secrets.token_hex(3)
    try:
        registered = await _bounded(
            [
                rest.call(
                    "POST",
                    "/auth/register",
                    {"username": f"{prefix}_{user}", "password": PASSWORD},
                )
                for user in range(preset.users)
            ]
        )
        tokens = [answer["access_token"] for answer in registered]
        user_ids = [answer["user"]["id"] for answer in registered]
        registered_at = time.monotonic()
        # In a group above 20 members only admins and owners may mention the room.
        promoted = set(sender_users(preset)) if preset.mention_room else set()

        async def make_room(room: int) -> str:
            members = user_ids[room * preset.room_size : (room + 1) * preset.room_size]
            owner_token = tokens[room * preset.room_size]
            first, rest_of = (
                members[1 : MAX_INITIAL_MEMBERS + 1],
                members[MAX_INITIAL_MEMBERS + 1 :],
            )
            created = await rest.call(
                "POST", "/rooms", {"name": f"bench room {room}", "member_ids": first}, owner_token
            )
            room_id = created["id"]
            await _bounded(
                [
                    rest.call("POST", f"/rooms/{room_id}/members", {"user_id": u}, owner_token)
                    for u in rest_of
                ],
                limit=4,
            )
            owner = room * preset.room_size
            await _bounded(
                [
                    rest.call(
                        "PATCH",
                        f"/rooms/{room_id}/members/{user_ids[user]}",
                        {"role": "admin"},
                        owner_token,
                    )
                    for user in sorted(promoted)
                    if user != owner and room_of(preset, user) == room
                ],
                limit=4,
            )
            return room_id

        room_ids = await _bounded([make_room(room) for room in range(preset.rooms)], limit=4)
        return {
            "tokens": tokens,
            "room_ids": room_ids,
            "register_seconds": round(registered_at - started, 2),
            "admins": sum(1 for user in promoted if user % preset.room_size != 0),
            "seconds": round(time.monotonic() - started, 2),
            "requests": rest.requests,
        }
    finally:
        rest.close()


def populate_blocking(base_url: str, preset: Preset) -> dict[str, Any]:
    return asyncio.run(populate(base_url, preset))
