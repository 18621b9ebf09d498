"""The egress guard: the one way CronChat sends HTTP to URLs that clients chose.

Push endpoints now, webhooks and link previews later: a URL a client gave us must not turn
the server into a scanner of its own network (its loopback, its private ranges, a cloud's
metadata service). The same rule is applied twice:

- :func:`check_url` when a URL is registered: its shape (https, or http too when private
  destinations are allowed; a host; no userinfo; a sane port), as a 400 naming the field;
  :meth:`Egress.check_destination` adds its host's addresses as they resolve now.
- :class:`Egress` when a request is sent: the host is resolved here, every address of the
  answer judged by :func:`is_blocked_address`, and the connection made to a judged address
  itself, so that a DNS answer which changes between the check and the connection (DNS
  rebinding) cannot reach a private address. TLS still verifies the certificate for the
  URL's host name (SNI and the hostname check). No redirect is followed (a 3xx is an
  answer); the connection and the whole exchange have short timeouts; at most
  ``max_response_bytes`` of a body are read, a longer one is cut and marked ``truncated``
  (its status still counts: a push service's 201 with a huge body was delivered). Every
  failure is one :class:`EgressError` with a ``reason``.

Built on httpcore, the transport under httpx, because its network backend is a public hook
that receives the host name and returns the connection: ours resolves, judges and
connects to the judged address, and httpcore then starts TLS with ``server_hostname`` set
from the URL. httpcore reads a response as a stream (the cut is exact, and nothing past it
is buffered), keeps connections alive per origin (each one judged when it was made), reads
no proxy settings from the environment (a proxy would connect for us, unjudged) and
follows no redirect. Tornado's client fits the resolver part as well, but opens a
connection per request and bounds a body only by failing the whole request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import ssl
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any, cast
from urllib.parse import SplitResult, urlsplit

import anyio
import httpcore

from cronchat.errors import Invalid

log = logging.getLogger("cronchat.egress")

IpAddress = IPv4Address | IPv6Address
# ``await resolve(host, port)``: the host's addresses as strings. The system's resolver in
# a thread by default; tests give their own to play a DNS that changes its answers.
Resolve = Callable[[str, int], Awaitable[list[str]]]

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"https": 443, "http": 80}

_METADATA_ADDRESSES = frozenset({ip_address("169.254.169.254"), ip_address("fd00:ec2::254")})
_IPV4_COMPATIBLE = ip_network("::/96")  # deprecated ::a.b.c.d, with :: and ::1
_NAT64 = ip_network("64:ff9b::/96")  # RFC 6052: an IPv4 address in the last 32 bits
_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def is_blocked_address(address: IpAddress) -> bool:
    """Whether ``address`` is outside the public internet: loopback, private (RFC 1918, ULA
    fc00::/7), link-local, multicast, unspecified, reserved, CGNAT 100.64/10, documentation,
    the cloud metadata addresses, and IPv6 forms carrying such an IPv4 address (mapped
    ::ffff:a.b.c.d, NAT64, 6to4)."""
    if address in _METADATA_ADDRESSES:
        return True
    if isinstance(address, IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_blocked_address(embedded)
        if address in _IPV4_COMPATIBLE:
            return True
    # ``is_global`` is false for every range above (and CGNAT, which is not "private").
    return address.is_multicast or not address.is_global


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def check_url(url: str, allow_private: bool, field: str = "url") -> str:
    """``url`` itself when it may be a destination of egress, else :class:`Invalid` naming
    ``field``: https (http too when ``allow_private``), printable ASCII without spaces, a
    host (a DNS name, or an IP address judged here), no userinfo, no fragment, a port from
    1 to 65535. A name's addresses are judged when it is resolved, not here."""
    parts = _split_url(url, allow_private, field)
    host = parts.hostname or ""
    if not allow_private:
        literal = _literal_address(host)
        if literal is not None and is_blocked_address(literal):
            raise Invalid(f"{field} must not point at a private or reserved address", field)
        if host == "localhost" or host.endswith(".localhost"):
            raise Invalid(f"{field} must not point at this machine", field)
    return url


def _split_url(url: str, allow_private: bool, field: str) -> SplitResult:
    """The parts of a URL of a well-formed shape (see :func:`check_url`)."""
    if not isinstance(url, str) or not url:
        raise Invalid(f"{field} must be a URL", field)
    if len(url) > MAX_URL_LENGTH:
        raise Invalid(f"{field} must be at most {MAX_URL_LENGTH} characters", field)
    if not all("!" <= character <= "~" for character in url):
        raise Invalid(f"{field} must be printable ASCII without spaces", field)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Invalid(f"{field} has a malformed host or port", field) from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme.lower() not in schemes:
        raise Invalid(f"{field} must be an {' or '.join(schemes)} URL", field)
    if "@" in parts.netloc:
        raise Invalid(f"{field} must not carry a user name or password", field)
    if "#" in url:
        raise Invalid(f"{field} must not have a fragment", field)
    if port == 0:
        raise Invalid(f"{field} has a malformed host or port", field)
    host = parts.hostname
    if not host:
        raise Invalid(f"{field} must name a host", field)
    if parts.netloc.startswith("["):
        if "%" in host or _literal_address(host) is None:
            raise Invalid(f"{field} has a malformed IPv6 address", field)
    elif _literal_address(host) is None and not _is_dns_name(host):
        raise Invalid(f"{field} must name a host by a DNS name or an IP address", field)
    return parts


def _literal_address(host: str) -> IpAddress | None:
    try:
        return ip_address(host)
    except ValueError:
        return None


def _is_dns_name(host: str) -> bool:
    """A name of letters, digits and hyphens whose last label starts with a letter (as every
    top-level domain does), so that numeric forms the system resolver would read as IPv4
    (``127.1``, ``2130706433``, ``0x7f000001``) are not names."""
    labels = host.removesuffix(".").split(".")
    return (
        len(host) <= 253
        and all(_DNS_LABEL.fullmatch(label) for label in labels)
        and labels[-1][0].isalpha()
    )


class EgressError(Exception):
    """A request that got no answer. ``reason`` says why, for logs, metrics and retries:
    ``invalid_url`` and ``blocked_address`` (lasting: retrying will not help),
    ``resolve_failed``, ``connect_failed`` (TLS failures included), ``timeout``,
    ``bad_response`` (the peer broke the exchange or spoke bad HTTP)."""

    LASTING = frozenset({"invalid_url", "blocked_address"})

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message

    @property
    def is_lasting(self) -> bool:
        return self.reason in self.LASTING


@dataclass(frozen=True, slots=True)
class EgressResponse:
    """An answer, whatever its status (a 3xx is not followed). ``body`` holds at most the
    egress's ``max_response_bytes``; ``truncated`` says that the answer had more."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    truncated: bool = False

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)


async def resolve_host(host: str, port: int) -> list[str]:
    """The addresses of ``host`` from the system's resolver, looked up in the event loop's
    thread pool (``getaddrinfo`` blocks)."""
    answers = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(sockaddr[0]) for _, _, _, _, sockaddr in answers]


async def checked_addresses(
    host: str, port: int, resolve: Resolve, allow_private: bool
) -> list[IpAddress]:
    """The addresses to connect to for ``host``: resolved once, here, and each one judged.
    One blocked address refuses the whole answer (a public name has no private address);
    the caller connects to these addresses only, never to the name again."""
    try:
        answers = await resolve(host, port)
    except OSError as error:
        raise EgressError("resolve_failed", f"{host} did not resolve ({error})") from None
    addresses: list[IpAddress] = []
    for answer in answers:
        address = _literal_address(answer)
        if address is None:
            raise EgressError("resolve_failed", f"{host} resolved to a non-address {answer!r}")
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise EgressError("resolve_failed", f"{host} resolved to no address")
    if not allow_private:
        blocked = [address for address in addresses if is_blocked_address(address)]
        if blocked:
            log.warning("egress refused host=%s address=%s", host, blocked[0])
            raise EgressError(
                "blocked_address", f"{host} resolves to {blocked[0]}, not a public address"
            )
    return addresses


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses :func:`checked_addresses`
    judged. httpcore starts TLS on the stream returned with the URL's host name."""

    def __init__(self, resolve: Resolve, allow_private: bool) -> None:
        self._resolve = resolve
        self._allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                addresses = await checked_addresses(host, port, self._resolve, self._allow_private)
        except TimeoutError:
            raise EgressError("timeout", f"{host} did not resolve in time") from None
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        assert failure is not None  # checked_addresses returns at least one address
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class Egress:
    """Sends HTTP to client-given URLs through the guard; one per process, closed at
    shutdown. ``allow_private`` (``CRONCHAT_PUSH_ALLOW_PRIVATE``) lifts the https and the
    address rules, for tests and closed networks."""

    def __init__(
        self,
        allow_private: bool,
        *,
        connect_timeout: float = 5.0,
        total_timeout: float = 15.0,
        max_response_bytes: int = 64 * 1024,
        max_connections: int = 100,
        resolve: Resolve = resolve_host,
        ssl_context: ssl.SSLContext | None = None,
        user_agent: str = "CronChat",
    ) -> None:
        self.allow_private = allow_private
        self.connect_timeout = connect_timeout
        self.total_timeout = total_timeout
        self.max_response_bytes = max_response_bytes
        self._resolve = resolve
        self._user_agent = user_agent
        self._ssl_context = ssl_context
        self._max_connections = max_connections
        self._pool: httpcore.AsyncConnectionPool | None = None

    def _connections(self) -> httpcore.AsyncConnectionPool:
        """The connection pool, made at the first request: loading the CA certificates
        takes tens of milliseconds, which a process that never sends need not spend."""
        if self._pool is None:
            self._pool = httpcore.AsyncConnectionPool(
                ssl_context=self._ssl_context or httpcore.default_ssl_context(),
                max_connections=self._max_connections,
                keepalive_expiry=30.0,
                retries=0,
                network_backend=_GuardedBackend(self._resolve, self.allow_private),
            )
        return self._pool

    async def check_destination(self, url: str, field: str = "url") -> None:
        """A URL a client registers, judged now as a 400 naming ``field``: its shape
        (:func:`check_url`) and its host's addresses as they resolve today. Every request
        judges them again, so a later change of the DNS answer gains nothing."""
        check_url(url, self.allow_private, field)
        if self.allow_private:
            return
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS[parts.scheme.lower()]
        try:
            with anyio.fail_after(self.connect_timeout):
                await checked_addresses(parts.hostname or "", port, self._resolve, False)
        except EgressError as error:
            raise Invalid(f"{field}: {error.message}", field) from None
        except TimeoutError:
            raise Invalid(f"{field}: its host did not resolve in time", field) from None

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        timeout: float | None = None,
    ) -> EgressResponse:
        """POST ``body`` to ``url``; the answer, whatever its status, or :class:`EgressError`.
        ``timeout`` bounds the whole exchange (default: the egress's ``total_timeout``)."""
        try:
            _split_url(url, self.allow_private, "url")
        except Invalid as error:
            raise EgressError("invalid_url", error.message) from None
        total = self.total_timeout if timeout is None else timeout
        request_headers = [
            (name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
        ]
        if not any(name.lower() == "user-agent" for name in headers):
            request_headers.append((b"User-Agent", self._user_agent.encode("latin-1")))
        extensions = {
            "timeout": {
                "connect": min(self.connect_timeout, total),
                "read": total,
                "write": total,
                "pool": total,
            }
        }
        try:
            with anyio.fail_after(total):
                async with self._connections().stream(
                    "POST", url, headers=request_headers, content=body, extensions=extensions
                ) as response:
                    content, truncated = await self._read_bounded(response)
        except (TimeoutError, httpcore.TimeoutException):
            raise EgressError("timeout", f"no answer within {total:g} s") from None
        except (httpcore.ConnectError, httpcore.UnsupportedProtocol) as error:
            raise EgressError("connect_failed", str(error) or type(error).__name__) from None
        except (httpcore.NetworkError, httpcore.ProtocolError) as error:
            raise EgressError("bad_response", str(error) or type(error).__name__) from None
        return EgressResponse(
            status=response.status,
            headers=tuple(
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in response.headers
            ),
            body=content,
            truncated=truncated,
        )

    async def _read_bounded(self, response: httpcore.Response) -> tuple[bytes, bool]:
        """At most ``max_response_bytes`` of the body, and whether there was more. Leaving
        the stream before its end closes the connection rather than keeping it."""
        chunks: list[bytes] = []
        size = 0
        body = cast(AsyncGenerator[bytes, None], response.aiter_stream())
        async with contextlib.aclosing(body):  # closed now, not when collected
            async for chunk in body:
                room = self.max_response_bytes - size
                if len(chunk) > room:
                    chunks.append(chunk[:room])
                    return b"".join(chunks), True
                chunks.append(chunk)
                size += len(chunk)
        return b"".join(chunks), False

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
