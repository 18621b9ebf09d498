"""Push delivery: who is pushed for each new message, and the worker that sends what is owed.

A send writes one job per new message in its own transaction (:func:`add_jobs`). The
planner turns jobs into outbox rows off the send's path: for each message, every member
with a pusher who should be alerted (not the sender, not blocking the sender, allowed by
:func:`cronchat.alerts.should_alert`) and who has no socket open on any process is owed a
push on each pusher, replacing a pending push of that pusher and room (at most one each).
The sender claims due rows in the database, so that several processes send each push once
and a process killed mid-delivery leaves claims that expire; it posts through the egress
guard with bounded concurrency, the encryption done in a thread. 2xx: done; 404/410 (or a
gateway's rejection): the pusher is removed; 429, 5xx and network errors: retried with
exponential backoff and jitter, never sooner than the answer's ``Retry-After``, for up to 24
hours; other 4xx: dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime

from cronchat.alerts import should_alert
from cronchat.blocking import BlockingPool
from cronchat.db import Database, Tx
from cronchat.egress import Egress, EgressError
from cronchat.metrics import Metrics
from cronchat.push.payloads import (
    GatewayDevice,
    MessagePush,
    Push,
    ReadPush,
    gateway_body,
    gateway_request,
    rejected_pushkeys,
    webpush_payload,
)
from cronchat.push.request import PushRequest
from cronchat.push.vapid import VapidKeys
from cronchat.push.webpush import SubscriptionKeys, topic_for, webpush_request
from cronchat.repos import push_outbox
from cronchat.repos.push_outbox import Claimed, Owed
from cronchat.times import now_ms

CLOSE_SECONDS = 5.0

log = logging.getLogger("cronchat.push")

# Pushes are retried for this long after they were first owed, then dropped.
GIVE_UP_MS = 24 * 3600 * 1000
# The longest wait between two tries.
MAX_BACKOFF_SECONDS = 3600.0
# A claim outlives the exchange it covers (at most the push timeout, the batch's exchanges
# running side by side) with room to spare: twice the timeout and this. A process killed
# mid-delivery leaves claims that expire and are sent again.
CLAIM_MARGIN_SECONDS = 1.0
JOBS_PER_BATCH = 200
# The shortest time between two plans (see PushDelivery._pace_planning).
PLAN_INTERVAL_SECONDS = 0.25

add_jobs = push_outbox.add_jobs


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a push's answer means: ``sent``, ``gone`` (remove the pusher), ``retry`` or
    ``drop``; a retry asked to wait (``Retry-After``) carries the seconds."""

    claimed: Claimed
    verdict: str
    wait: float | None = None


def backoff_seconds(attempts: int, base: float, rand: Callable[[], float] = random.random) -> float:
    """The wait before try ``attempts + 1``: ``base * 2**attempts``, at most
    :data:`MAX_BACKOFF_SECONDS`, with full jitter in its upper half (so the first retry
    comes within ``base`` seconds)."""
    ceiling = min(MAX_BACKOFF_SECONDS, base * 2 ** min(attempts, 30))
    return ceiling * (0.5 + 0.5 * rand())


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """The wait a ``Retry-After`` header asks for (RFC 9110 10.2.3: delta-seconds or an
    HTTP-date, ``now`` being epoch seconds); None when there is none or it cannot be read."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; an obsolete form may say nothing
        return None
    return max(0.0, when.timestamp() - now)


def verdict_of(status: int) -> str:
    if 200 <= status < 300:
        return "sent"
    if status in (404, 410):
        return "gone"
    if status == 429 or status >= 500:
        return "retry"
    return "drop"


def encode_push(push: Push) -> str:
    return json.dumps(asdict(push), ensure_ascii=False, separators=(",", ":"))


def decode_push(kind: str, stored: str) -> Push:
    fields = json.loads(stored)
    return MessagePush(**fields) if kind == "message" else ReadPush(**fields)


def read_owed_tx(tx: Tx, user_id: str, room_id: str, unread_count: int) -> None:
    """Inside a read's transaction: the room's pending message pushes of this member are
    dropped and the pushers sent one since the last read are owed a ``read`` push."""
    push = encode_push(ReadPush(room_id, unread_count))
    push_outbox.owe_read(tx, user_id, room_id, push, now_ms())


class PushDelivery:
    """The planner and the sender of one process (started by serving processes only)."""

    def __init__(
        self,
        db: Database,
        egress: Egress,
        blocking: BlockingPool,
        vapid: VapidKeys,
        metrics: Metrics,
        online: Callable[[Iterable[str]], Awaitable[set[str]]],
        *,
        include_content: bool = True,
        retry_base_seconds: float = 5.0,
        concurrency: int = 16,
        timeout_seconds: float = 15.0,
        poll_seconds: float = 1.0,
    ) -> None:
        self.db = db
        self.egress = egress
        self.blocking = blocking
        self.vapid = vapid
        self.metrics = metrics
        self.online = online
        self.include_content = include_content
        self.retry_base_seconds = retry_base_seconds
        self.concurrency = concurrency
        self.timeout_seconds = timeout_seconds
        self.claim_ms = int((2 * timeout_seconds + CLAIM_MARGIN_SECONDS) * 1000)
        self.poll_seconds = min(poll_seconds, retry_base_seconds)
        self._planned_at = float("-inf")
        self._backlog = False
        self._jobs_waiting = asyncio.Event()
        self._pushes_waiting = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._loop(self._jobs_waiting, self.plan_once)),
            asyncio.create_task(self._loop(self._pushes_waiting, self.send_once)),
        ]

    async def close(self) -> None:
        """Stop planning and sending, within CLOSE_SECONDS: what is claimed and not sent is
        sent again once its claim expires (by this process after a restart, or another)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=CLOSE_SECONDS)
            if pending:
                log.warning("push delivery did not stop within %s s; left behind", CLOSE_SECONDS)

    def wake(self) -> None:
        """A send committed jobs: plan them now rather than at the next poll."""
        self._jobs_waiting.set()

    async def _loop(self, event: asyncio.Event, once: Callable[[], Awaitable[bool]]) -> None:
        while True:
            try:
                more = await once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("push delivery step failed")
                more = False
            if more:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), self.poll_seconds)
            event.clear()

    # Planning

    async def plan_once(self) -> bool:
        """Plan one batch of jobs; True when there may be more. Who is online is asked
        before anything else is read: while every member with a device has a socket open
        (the usual case), a batch costs two reads (the jobs, then who in their rooms has a
        device) and the jobs' deletion; the messages, pushers, settings, unread counts and
        blocks are read only for members who are offline."""
        await self._pace_planning()
        jobs, members = await self.db.read(_planning_tx)
        self._backlog = len(jobs) >= JOBS_PER_BATCH
        if not jobs:
            self._planned_at = float("-inf")  # a quiet moment: the next job is planned at once
            return False
        owed: list[Owed] = []
        if members:
            users = {user_id for _, user_id in members}
            offline = users - await self.online(users)
            if offline:
                rooms = {room_id for room_id, user_id in members if user_id in offline}
                messages, candidates, blocked = await self.db.read(
                    _offline_reads_tx, jobs, rooms, offline
                )
                owed = _plan(messages, candidates, blocked, now_ms())
        await self.db.run(_record_plan_tx, jobs, owed)
        if owed:
            self._pushes_waiting.set()
        return self._backlog

    async def _pace_planning(self) -> None:
        """At most one plan per PLAN_INTERVAL_SECONDS while the planner keeps up: a burst
        of sends wakes it once per commit, and their messages are planned together (their
        rooms' candidates read once) rather than one by one. A message after a quiet
        moment is planned at once, and a backlog (the last batch was full) without a
        pause."""
        loop = asyncio.get_running_loop()
        wait = self._planned_at + PLAN_INTERVAL_SECONDS - loop.time()
        if wait > 0 and not self._backlog:
            await asyncio.sleep(wait)
        self._planned_at = loop.time()

    # Sending

    async def send_once(self) -> bool:
        """Claim and send one batch of due pushes; True when there may be more."""
        if not await self._observe_waiting():
            return False
        now = now_ms()
        claimed = await self.db.run(push_outbox.claim, now, now + self.claim_ms, self.concurrency)
        if not claimed:
            return False
        outcomes = await asyncio.gather(*(self._send(item) for item in claimed))
        now = now_ms()
        retries: dict[tuple[str, str], int] = {}
        final: list[Outcome] = []
        for outcome in outcomes:
            item = outcome.claimed
            verdict = outcome.verdict
            if verdict == "retry":
                delay = backoff_seconds(item.attempts, self.retry_base_seconds)
                due = now + int(max(delay, outcome.wait or 0.0) * 1000)
                if due - item.created_at >= GIVE_UP_MS:
                    verdict = "drop"
                retries[(item.pusher.id, item.room_id)] = due
            final.append(Outcome(item, verdict))
        await self.db.run(_record_outcomes_tx, final, retries)
        for outcome in final:
            if outcome.verdict == "sent":
                self.metrics.pushes_sent.inc()
            elif outcome.verdict == "retry":
                self.metrics.pushes_retried.inc()
            else:
                self.metrics.pushes_failed.inc()
        return len(claimed) >= self.concurrency

    async def _send(self, claimed: Claimed) -> Outcome:
        pusher = claimed.pusher
        try:
            push = decode_push(claimed.kind, claimed.push)
            request = await self.blocking.run(self._request, claimed, push)
        except (ValueError, TypeError, KeyError) as error:
            log.warning("push dropped pusher=%s reason=%r", pusher.id, error)
            return Outcome(claimed, "drop")
        try:
            response = await self.egress.post(
                request.url, request.body, request.headers, timeout=self.timeout_seconds
            )
        except EgressError as error:
            log.info("push failed pusher=%s reason=%s", pusher.id, error.reason)
            return Outcome(claimed, "drop" if error.is_lasting else "retry")
        verdict = verdict_of(response.status)
        if (
            verdict == "sent"
            and pusher.kind == "gateway"
            and pusher.pushkey in rejected_pushkeys(response.body)
        ):
            verdict = "gone"
        if verdict != "sent":
            log.info("push answered pusher=%s status=%d", pusher.id, response.status)
        if verdict == "retry":
            wait = retry_after_seconds(response.header("Retry-After"), time.time())
            return Outcome(claimed, verdict, wait)
        return Outcome(claimed, verdict)

    def _request(self, claimed: Claimed, push: Push) -> PushRequest:
        """The request of one push (blocking: Web Push encrypts)."""
        pusher = claimed.pusher
        if pusher.kind == "gateway":
            device = GatewayDevice(pusher.app_id or "", pusher.pushkey or "")
            body = gateway_body(push, device, include_content=self.include_content)
            return gateway_request(pusher.url, body)
        keys = SubscriptionKeys(pusher.p256dh or "", pusher.auth or "")
        payload = webpush_payload(push, include_content=self.include_content)
        return webpush_request(
            pusher.url,
            keys,
            payload,
            self.vapid,
            time.time(),
            topic=topic_for(claimed.room_id),
        )

    async def _observe_waiting(self) -> int:
        """Update the gauges of pushes owed; answers how many are due now."""
        now = now_ms()
        count, oldest, due = await self.db.read(push_outbox.waiting, now)
        self.metrics.pushes_waiting.set(count)
        self.metrics.push_oldest_seconds.set(0 if oldest is None else (now - oldest) / 1000)
        return due


def _record_outcomes_tx(
    tx: Tx, outcomes: list[Outcome], retries: dict[tuple[str, str], int]
) -> None:
    for outcome in outcomes:
        claimed = outcome.claimed
        if outcome.verdict == "sent":
            push_outbox.done(tx, claimed)
            if claimed.kind == "message":
                push_outbox.remember_sent(tx, claimed)
        elif outcome.verdict == "gone":
            push_outbox.remove_pusher(tx, claimed.pusher.id)
        elif outcome.verdict == "retry":
            push_outbox.retry(tx, claimed, retries[(claimed.pusher.id, claimed.room_id)])
        else:
            push_outbox.done(tx, claimed)


def _planning_tx(tx: Tx) -> tuple[list[tuple[str, int]], set[tuple[str, str]]]:
    """The jobs waiting, and who in their rooms has a push device."""
    jobs = push_outbox.pending_jobs(tx, JOBS_PER_BATCH)
    if not jobs:
        return [], set()
    (members,) = tx.fetch(push_outbox.members_with_pushers({room for room, _ in jobs}))
    return jobs, members


def _offline_reads_tx(
    tx: Tx, jobs: list[tuple[str, int]], room_ids: set[str], offline: set[str]
) -> tuple[list[push_outbox.JobMessage], list[push_outbox.Candidate], set[tuple[str, str]]]:
    """What planning the pushes of offline members needs: the jobs' live messages, the
    offline members' pushers in these rooms (with settings and unread counts), and which
    of them block a sender of those messages."""
    messages, candidates = tx.fetch(
        push_outbox.job_messages(jobs), push_outbox.candidates(room_ids, offline)
    )
    if not messages or not candidates:
        return [], [], set()
    (blocked,) = tx.fetch(
        push_outbox.blocks_among({c.user_id for c in candidates}, {m.sender_id for m in messages})
    )
    return messages, candidates, blocked


def _plan(
    messages: list[push_outbox.JobMessage],
    candidates: list[push_outbox.Candidate],
    blocked: set[tuple[str, str]],
    now: int,
) -> list[Owed]:
    """The pushes owed to these candidates (members who are offline) for these messages:
    the latest message per pusher and room."""
    by_room: dict[str, list[push_outbox.Candidate]] = {}
    for candidate in candidates:
        by_room.setdefault(candidate.room_id, []).append(candidate)
    owed: dict[tuple[str, str], Owed] = {}
    for message in sorted(messages, key=lambda m: (m.room_id, m.seq)):
        for candidate in by_room.get(message.room_id, ()):
            user_id = candidate.user_id
            if user_id == message.sender_id or (user_id, message.sender_id) in blocked:
                continue
            if user_id in message.user_ids:
                mention: str | None = "user"
            else:
                mention = "room" if message.room_mention else None
            if not should_alert(candidate.settings, mention, now):
                continue
            push = MessagePush(
                message.room_id,
                message.room_name,
                message.seq,
                message.message_id,
                message.sender_id,
                message.sender_display_name,
                message.text,
                mention,
                candidate.unread_count,
            )
            key = (candidate.pusher_id, message.room_id)
            owed[key] = Owed(key[0], key[1], user_id, "message", encode_push(push), message.seq)
    return list(owed.values())


def _record_plan_tx(tx: Tx, jobs: list[tuple[str, int]], owed: list[Owed]) -> None:
    """Delete the jobs this process takes and write the pushes they owe; jobs another
    process took meanwhile are left to it. Jobs that owe nothing are deleted at once,
    whoever else may be planning them: one statement, sent with the commit."""
    if not owed:
        push_outbox.drop_jobs(tx, jobs)
        return
    taken = push_outbox.take_jobs(tx, jobs)
    rooms_seqs: dict[str, set[int]] = {}
    for room_id, seq in taken:
        rooms_seqs.setdefault(room_id, set()).add(seq)
    mine = [o for o in owed if o.seq in rooms_seqs.get(o.room_id, set())]
    push_outbox.owe(tx, mine, now_ms())
