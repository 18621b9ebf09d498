"""The Redis broker: notices cross processes and machines through one pub/sub channel.

Each process holds one subscription (not one per socket). A notice is handed to this
process's own subscribers at once, then queued for Redis: publishing never waits for Redis,
so a send's ack depends on its commit only and local sockets hear of it whatever Redis does.
Each publication names its process, which skips its own when Redis echoes them, so nothing
is delivered twice.

Redis that stops answering (a partition that drops packets closes nothing) is noticed
within ``timeout`` seconds: the subscription is pinged every third of it, and a
subscription that hears nothing for ``timeout`` is dropped and made again. Meanwhile
notices wait in a bounded queue and leave when Redis is back (other processes drop the
events they already have, by seq); local sockets are told to ``resume``, since notices of
other processes published meanwhile never reached this one. Readiness is that state, not
a probe of its own, so that a slow but working Redis does not flap a host out of service.

Notices queued while a publication is on its way go together in the next one: under load,
one round trip to Redis and one message per subscriber carry many.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Sequence
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from cronchat.realtime import notices as notices_json
from cronchat.realtime.broker import Subscriber, hand_to
from cronchat.realtime.notices import EPHEMERAL, Notice, ResyncNotice

log = logging.getLogger("cronchat.broker")

RECONNECT_MAX_SECONDS = 2.0
# Notices kept for Redis while it is away; past it the oldest go, and the other processes
# are told to ``resync`` once it is back.
QUEUE_MAX = 10_000
BATCH_MAX = 500


class RedisBroker:
    def __init__(self, url: str, channel: str, timeout: float = 5) -> None:
        self._timeout = timeout
        # Timeouts bound every Redis call; retries are ours (the subscription loop), so that
        # a silent Redis costs one timeout, not one per retry.
        self._client = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            lib_name=None,  # no CLIENT SETINFO: fewer round trips to (re)connect
            lib_version=None,
        )
        self._channel = channel
        self._origin = f"{os.getpid()}-{secrets.token_hex(8)}"
        self._subscribers: list[Subscriber] = []
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._queue: list[Notice] = []
        self._overflowed = False  # notices were dropped: others must resync
        self._sender: asyncio.Future[None] | None = None  # the loop publishing, while it runs
        self._delay = 0.1  # before the next attempt to subscribe
        self._heard = 0.0  # loop time of the last thing the subscription heard
        self._publish_failed = False
        self.connected = False
        self.reconnects = 0
        self._ever_connected = False

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen())
        try:
            await asyncio.wait_for(self._subscribed.wait(), self._timeout)
        except TimeoutError:
            log.warning("redis not subscribed at start; delivering locally until it is")

    async def publish(self, notices: Sequence[Notice]) -> None:
        """Deliver to this process at once, and queue for the others; never waits."""
        hand_to(self._subscribers, notices)
        if self.connected:
            self._queue.extend(notices)
        else:
            self._queue.extend(notice for notice in notices if not isinstance(notice, EPHEMERAL))
        self._trim()
        self._send_soon()

    def _trim(self) -> None:
        if len(self._queue) > QUEUE_MAX:
            del self._queue[: len(self._queue) - QUEUE_MAX]
            self._overflowed = True

    def _send_soon(self) -> None:
        if self._sender is None and self.connected and self._queue:
            self._sender = asyncio.ensure_future(self._send_queue())

    async def _send_queue(self) -> None:
        try:
            while self.connected and (self._queue or self._overflowed):
                if self._queue:
                    batch, self._queue = self._queue[:BATCH_MAX], self._queue[BATCH_MAX:]
                else:
                    batch, self._overflowed = [ResyncNotice()], False
                if not await self._publish(batch):
                    self._keep(batch)  # sent once the subscription is back
                    return
        finally:
            self._sender = None

    def _keep(self, batch: list[Notice]) -> None:
        """A batch that did not go: back at the front of the queue, ephemeral notices
        left out; a ``resync`` for the others stays owed."""
        if batch == [ResyncNotice()]:
            self._overflowed = True
            return
        self._queue[:0] = [notice for notice in batch if not isinstance(notice, EPHEMERAL)]
        self._trim()

    async def _publish(self, notices: list[Notice], rounds: int = 3) -> bool:
        """One publication, within ``rounds`` timeouts (a new connection costs a few)."""
        shaped = [notices_json.to_json(notice) for notice in notices]
        payload = json.dumps({"origin": self._origin, "notices": shaped}, ensure_ascii=False)
        try:
            publishing = self._client.publish(self._channel, payload)
            await asyncio.wait_for(publishing, rounds * self._timeout)
        except (RedisError, OSError) as error:  # TimeoutError is an OSError
            self._lost(error)
            self._publish_failed = True  # the subscription starts afresh too
            return False
        return True

    def _lost(self, error: BaseException) -> None:
        """Redis stopped answering: one warning per outage, local delivery goes on."""
        if self.connected:
            log.warning(
                "redis unreachable error=%s; delivering locally until it is back",
                type(error).__name__,
            )
        self.connected = False

    async def _listen(self) -> None:
        """Hold the subscription: ping it every third of ``timeout``, and make it again when
        it has heard nothing for ``timeout`` (three times that while it is being made: a new
        connection costs a few round trips)."""
        self._delay = 0.1
        loop = asyncio.get_running_loop()
        while True:
            pubsub = self._client.pubsub()
            reader: asyncio.Future[None] | None = None
            try:
                await asyncio.wait_for(pubsub.subscribe(self._channel), 3 * self._timeout)
                self._heard = loop.time()
                reader = asyncio.ensure_future(self._read(pubsub))
                while True:
                    await asyncio.wait({reader}, timeout=self._timeout / 3)
                    if reader.done():
                        reader.result()  # raises what ended it
                        raise ConnectionError("subscription ended")
                    allowed = self._timeout if self.connected else 3 * self._timeout
                    if loop.time() - self._heard > allowed:
                        raise TimeoutError("redis stopped answering")
                    if self._publish_failed:
                        raise ConnectionError("publish failed")
                    await asyncio.wait_for(pubsub.ping(), self._timeout)
            except asyncio.CancelledError:
                await _quietly(_closing(pubsub, reader))
                raise
            except (RedisError, OSError) as error:
                self._lost(error)
            await _quietly(_closing(pubsub, reader))
            await asyncio.sleep(self._delay)
            self._delay = min(RECONNECT_MAX_SECONDS, self._delay * 2)

    def _restored(self) -> None:
        """Redis confirmed the subscription: notices flow again."""
        self.connected = True
        self._publish_failed = False
        self._delay = 0.1
        self._subscribed.set()
        if self._ever_connected:
            self.reconnects += 1
            log.info("redis subscription restored; asking sockets to resume")
            hand_to(self._subscribers, [ResyncNotice()])
        self._ever_connected = True
        self._send_soon()

    async def _read(self, pubsub: Any) -> None:
        """Everything the subscription hears keeps it alive; others' notices go to the
        local subscribers (this process had its own at once)."""
        loop = asyncio.get_running_loop()
        async for message in pubsub.listen():
            self._heard = loop.time()
            kind = message.get("type")
            if kind == "subscribe":
                self._restored()
            if kind != "message":
                continue  # a pong, a subscription confirmation
            try:
                publication = json.loads(message["data"])
            except ValueError:
                publication = None
            if isinstance(publication, list):  # a process of the version before origins
                publication = {"notices": publication}
            if not isinstance(publication, dict):
                log.warning("redis publication not understood; skipped")
                continue
            if publication.get("origin") == self._origin:
                continue
            received = (notices_json.from_json(shaped) for shaped in publication.get("notices", ()))
            hand_to(self._subscribers, [notice for notice in received if notice is not None])

    async def check(self) -> bool:
        """Ready while the subscription is up and heard from within ``timeout``."""
        loop = asyncio.get_running_loop()
        return self.connected and loop.time() - self._heard <= self._timeout

    async def close(self) -> None:
        """Stop listening; what is still queued gets one bounded try (a CLI act publishes
        just before it exits)."""
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        if self._sender is not None:
            await asyncio.gather(self._sender, return_exceptions=True)
        if self._queue:
            batch, self._queue = self._queue, []
            self.connected = False
            await self._publish(batch, rounds=1)
        await _quietly(self._client.aclose())
        self._subscribers.clear()


async def _closing(pubsub: Any, reader: asyncio.Future[None] | None) -> None:
    if reader is not None:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    await asyncio.wait_for(pubsub.aclose(), 1)


async def _quietly(awaitable: Awaitable[object]) -> None:
    try:
        await awaitable
    except (RedisError, OSError):
        pass
