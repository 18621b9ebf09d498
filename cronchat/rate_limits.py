"""Rate limits: one limiter per process, for REST and the WebSocket alike.

Each rule is a token bucket (``burst`` tokens, refilled at ``per_second``) per key: a user
id, a client address, a username, a socket. A key with no bucket has a full one, so only
keys in use are kept, least recently used first out: a flood of distinct keys evicts idle
buckets, never grows the table past its bound. Also here: the bound on password hashes at
once, which keeps a login flood from taking the blocking pool that image decoding shares.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from cronchat.config import IpNetwork, Rate, Settings
from cronchat.errors import RateLimited, Unavailable

# Rule names. Before login a request is limited per client address, after it per user.
LOGIN_ADDRESS = "login_address"
LOGIN_USERNAME = "login_username"
REGISTER = "register"
REFRESH = "refresh"
READS = "reads"
WRITES = "writes"
SENDS = "sends"
UPLOADS = "uploads"
SOCKET_FRAMES = "socket_frames"

MAX_KEYS = 200_000  # buckets kept at most, all rules together (about 200 bytes each)
BUSY_RETRY_MS = 1000  # what a login or registration refused by the bound on hashes waits


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    burst: float
    per_second: float
    message: str

    @classmethod
    def of(cls, name: str, rate: Rate, message: str) -> Rule:
        return cls(name, float(rate.count), rate.count / rate.seconds, message)


def rules_of(settings: Settings) -> dict[str, Rule]:
    """Every rule, from the settings (``CRONCHAT_RATE_*``, ``CRONCHAT_WS_RATE_*``)."""
    rules = [
        Rule.of(LOGIN_ADDRESS, settings.rate_login_address, "too many logins from this address"),
        Rule.of(
            LOGIN_USERNAME,
            settings.rate_login_username,
            "too many failed logins for this username; try again later",
        ),
        Rule.of(REGISTER, settings.rate_register, "too many registrations from this address"),
        Rule.of(REFRESH, settings.rate_refresh, "too many token refreshes from this address"),
        Rule.of(READS, settings.rate_reads, "too many requests; slow down"),
        Rule.of(WRITES, settings.rate_writes, "too many changes; slow down"),
        Rule.of(SENDS, settings.rate_sends, "too many messages; slow down"),
        Rule.of(UPLOADS, settings.rate_uploads, "too many uploads; slow down"),
        Rule(
            SOCKET_FRAMES,
            float(settings.ws_rate_burst),
            float(settings.ws_rate_per_second),
            "too many frames; slow down",
        ),
    ]
    return {rule.name: rule for rule in rules}


class _Bucket:
    __slots__ = ("tokens", "at", "rule")

    def __init__(self, tokens: float, at: float, rule: Rule) -> None:
        self.tokens = tokens
        self.at = at
        self.rule = rule

    def is_full(self, now: float) -> bool:
        return self.tokens + (now - self.at) * self.rule.per_second >= self.rule.burst


class RateLimits:
    """The rate limits of one process. Used on the IOLoop only (no lock needed)."""

    def __init__(
        self,
        settings: Settings,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = settings.rate_limits
        self.rules = rules_of(settings)
        self.trusted_proxies = settings.trusted_proxies
        self.password_hashes = PasswordHashSlots(
            settings.rate_password_hashes, settings.rate_password_queue, self.enabled
        )
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, Hashable], _Bucket] = OrderedDict()

    def take(self, rule_name: str, key: Hashable) -> int:
        """Spend one token of ``key``'s bucket: 0 when there was one, else the milliseconds
        until there is (nothing is spent then)."""
        if not self.enabled:
            return 0
        rule = self.rules[rule_name]
        now = self._clock()
        bucket_key = (rule_name, key)
        bucket = self._buckets.get(bucket_key)
        if bucket is None:
            self._make_room(now)
            bucket = _Bucket(rule.burst, now, rule)
            self._buckets[bucket_key] = bucket
        else:
            bucket.tokens = min(rule.burst, bucket.tokens + (now - bucket.at) * rule.per_second)
            bucket.at = now
            self._buckets.move_to_end(bucket_key)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0
        return int(1000 * (1 - bucket.tokens) / rule.per_second) + 1

    def require(self, rule_name: str, key: Hashable) -> None:
        """Spend one token, or raise :class:`RateLimited` with the time to wait."""
        retry_after_ms = self.take(rule_name, key)
        if retry_after_ms:
            raise self.refusal(rule_name, retry_after_ms)

    def refusal(self, rule_name: str, retry_after_ms: int) -> RateLimited:
        """The error of a request refused by ``rule_name``."""
        return RateLimited(self.rules[rule_name].message, retry_after_ms)

    def forget(self, rule_name: str, key: Hashable) -> None:
        """Refill ``key``'s bucket (a login that succeeded; a socket that closed)."""
        self._buckets.pop((rule_name, key), None)

    def key_count(self) -> int:
        return len(self._buckets)

    def _make_room(self, now: float) -> None:
        """Before each new key: drop the least recently used bucket when it has refilled
        (it says nothing any more), or when the bound is reached, refilled or not."""
        if self._buckets:
            oldest = next(iter(self._buckets.values()))
            if oldest.is_full(now):
                self._buckets.popitem(last=False)
        while len(self._buckets) >= self._max_keys:
            self._buckets.popitem(last=False)


class PasswordHashSlots:
    """At most ``running`` password hashes at once and ``waiting`` more in line; past that
    a login is refused at once (503) instead of queueing without bound. Each hash takes a
    thread of the blocking pool for ~160 ms: the pool's other threads stay free for image
    work whatever the flood, and a real user's login waits behind a short line only."""

    def __init__(self, running: int, waiting: int, enabled: bool) -> None:
        self._running = running
        self._admitted_max = running + waiting
        self._enabled = enabled
        self._admitted = 0
        self._semaphore: asyncio.Semaphore | None = None

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if not self._enabled:
            yield
            return
        if self._admitted >= self._admitted_max:
            raise Unavailable(
                "too many password checks at once; try again shortly", retry_after_ms=BUSY_RETRY_MS
            )
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self._running)
        self._admitted += 1
        try:
            async with self._semaphore:
                yield
        finally:
            self._admitted -= 1


def address_key(address: str) -> str:
    """The key of a client address: an IPv6 client is one /64 (a host usually holds a whole
    one), an IPv4-mapped IPv6 address is its IPv4 address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def client_address(peer: str, forwarded_for: Iterable[str], trusted: tuple[IpNetwork, ...]) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy; then the
    rightmost hop of ``X-Forwarded-For`` that is not a trusted proxy (what is left of it
    the client may have written itself)."""
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
    client = peer
    for hop in reversed(hops):
        if not _is_address(hop):
            break
        client = hop
        if not _is_trusted(hop, trusted):
            break
    return client


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_trusted(address: str, trusted: tuple[IpNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in trusted)
