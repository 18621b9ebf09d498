"""Where presence is kept: in this process (one process), or in Redis (several).

In Redis, each user has a sorted set of the processes where they have a socket, scored by
an expiry that every process renews by heartbeat: a process that crashes stops renewing,
and its users read as offline within ``TTL_SECONDS``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Protocol

import redis.asyncio as redis
from redis.exceptions import RedisError

log = logging.getLogger("cronchat.presence")

TTL_SECONDS = 60
HEARTBEAT_SECONDS = 20


class PresenceStore(Protocol):
    async def arrived(self, user_id: str) -> None: ...

    async def left(self, user_id: str) -> bool: ...

    async def online(self, user_ids: Iterable[str]) -> set[str]: ...

    async def heartbeat(self, user_ids: Iterable[str]) -> None: ...

    async def close(self) -> None: ...


class LocalPresence:
    """One process: a user is online while the hub holds a socket of theirs."""

    def __init__(self, is_local: Callable[[str], bool]) -> None:
        self._is_local = is_local

    async def arrived(self, user_id: str) -> None:
        return None

    async def left(self, user_id: str) -> bool:
        """Forget this process's sockets of the user; answers whether they are still online."""
        return False

    async def online(self, user_ids: Iterable[str]) -> set[str]:
        return {user_id for user_id in user_ids if self._is_local(user_id)}

    async def heartbeat(self, user_ids: Iterable[str]) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisPresence:
    """Several processes: a user is online while any process renews them."""

    def __init__(self, url: str, prefix: str, is_local: Callable[[str], bool]) -> None:
        self._client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self._prefix = prefix
        self._process = uuid.uuid4().hex
        self._is_local = is_local

    def _key(self, user_id: str) -> str:
        return f"{self._prefix}:presence:{user_id}"

    async def arrived(self, user_id: str) -> None:
        await self.heartbeat([user_id])

    async def left(self, user_id: str) -> bool:
        key = self._key(user_id)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.zrem(key, self._process)
                pipe.zcount(key, time.time(), "+inf")
                _, elsewhere = await pipe.execute()
        except (RedisError, OSError) as error:
            log.warning("presence not updated user_id=%s error=%s", user_id, type(error).__name__)
            return False
        return int(elsewhere) > 0

    async def online(self, user_ids: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(user_ids))
        local = {user_id for user_id in wanted if self._is_local(user_id)}
        others = [user_id for user_id in wanted if user_id not in local]
        if not others:
            return local
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                now = time.time()
                for user_id in others:
                    pipe.zcount(self._key(user_id), now, "+inf")
                counts = await pipe.execute()
        except (RedisError, OSError):
            return local  # without Redis, only what this process knows
        return local | {user_id for user_id, count in zip(others, counts, strict=True) if count}

    async def heartbeat(self, user_ids: Iterable[str]) -> None:
        """Renew this process's entry for each user (and let stale entries of dead processes
        fall out)."""
        expires = time.time() + TTL_SECONDS
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for user_id in user_ids:
                    key = self._key(user_id)
                    pipe.zadd(key, {self._process: expires})
                    pipe.zremrangebyscore(key, "-inf", time.time())
                    pipe.expire(key, TTL_SECONDS * 2)
                await pipe.execute()
        except (RedisError, OSError) as error:
            log.warning("presence heartbeat failed error=%s", type(error).__name__)

    async def close(self) -> None:
        try:
            await self._client.aclose()
        except (RedisError, OSError):
            pass
