"""The Redis broker: notices cross processes and machines through one pub/sub channel.

Each process holds one subscription (not one per socket) and delivers what it hears to its
own hub, its own publications included, so every process takes the same path. While Redis
is unreachable, publications are delivered locally only (sends keep working and are stored;
other processes' clients catch up by seq); when the subscription comes back, local sockets
are told to ``resume`` so that nothing stays missing.

Notices published while a publication is on its way go together in the next one (a JSON
list): under load, one round trip to Redis and one message per subscriber carry many.
"""

from __future__ import annotations

import asyncio
import json
import logging

import redis.asyncio as redis
from redis.exceptions import RedisError

from cronchat.realtime.broker import Notice, Subscriber, hand_to

log = logging.getLogger("cronchat.broker")

RECONNECT_MAX_SECONDS = 2.0


class RedisBroker:
    def __init__(self, url: str, channel: str) -> None:
        self._client = redis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=None, health_check_interval=10
        )
        self._channel = channel
        self._subscribers: list[Subscriber] = []
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._outbox: list[tuple[Notice, asyncio.Future[None]]] = []
        self._sender: asyncio.Future[None] | None = None  # the loop publishing, while it runs
        self.connected = False
        self.reconnects = 0
        self._ever_connected = False

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen())
        try:
            await asyncio.wait_for(self._subscribed.wait(), 5)
        except TimeoutError:
            log.warning("redis not reachable at start; delivering locally until it is")

    async def publish(self, notice: Notice) -> None:
        """Returns once the notice is on its way to every process (or, with Redis away,
        delivered to this one)."""
        if not self.connected:
            hand_to(self._subscribers, notice)
            return
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outbox.append((notice, sent))
        if self._sender is None:
            self._sender = asyncio.ensure_future(self._send_outbox())
        await sent

    async def _send_outbox(self) -> None:
        try:
            while self._outbox:
                batch, self._outbox = self._outbox, []
                notices = [notice for notice, _ in batch]
                try:
                    if not self.connected:
                        raise ConnectionError("subscription lost")
                    payload = json.dumps(notices, ensure_ascii=False)
                    await self._client.publish(self._channel, payload)
                except (RedisError, OSError) as error:
                    if self.connected:
                        log.warning("redis publish failed error=%s", type(error).__name__)
                    self.connected = False
                    for notice in notices:
                        hand_to(self._subscribers, notice)
                for _, sent in batch:
                    if not sent.done():
                        sent.set_result(None)
        finally:
            self._sender = None

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                self.connected = True
                self._subscribed.set()
                delay = 0.1
                if self._ever_connected:
                    self.reconnects += 1
                    log.info("redis subscription restored; asking sockets to resume")
                    hand_to(self._subscribers, {"kind": "resync"})
                self._ever_connected = True
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        for notice in json.loads(message["data"]):
                            hand_to(self._subscribers, notice)
            except asyncio.CancelledError:
                await _quietly(pubsub.aclose())
                raise
            except (RedisError, OSError) as error:
                if self.connected:
                    log.warning("redis subscription lost error=%s", type(error).__name__)
                self.connected = False
            await _quietly(pubsub.aclose())
            await asyncio.sleep(delay)
            delay = min(RECONNECT_MAX_SECONDS, delay * 2)

    async def check(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self._client.ping(), 2)) and self.connected
        except (RedisError, OSError, TimeoutError):
            return False

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        await _quietly(self._client.aclose())
        self._subscribers.clear()


async def _quietly(awaitable: object) -> None:
    try:
        await awaitable  # type: ignore[misc]
    except (RedisError, OSError):
        pass
