"""The egress guard: client-given URLs reach only public addresses, checked for the
connection actually made, with no redirects, bounded time and bounded answers.

The servers are the tests' own, on loopback; each counts the connections it accepted, so
that "refused" means that nothing reached it. DNS is played by stubs where a test needs a
name to answer what it chooses (a public address, then a private one).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any

import pytest
import trustme

from cronchat.config import load_settings
from cronchat.egress import (
    Egress,
    EgressError,
    check_url,
    checked_addresses,
    is_blocked_address,
)
from cronchat.errors import Invalid

pytestmark = pytest.mark.gen_test(timeout=30)

PUBLIC_ADDRESS = "93.184.215.14"  # only ever a stub's answer: no test connects to it


# --- servers and DNS of the tests' own ---------------------------------------------------


@dataclass
class Request:
    head: list[str]
    body: bytes

    def header(self, name: str) -> str | None:
        for line in self.head[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


@dataclass
class Receiver:
    port: int = 0
    connections: int = 0
    requests: list[Request] = field(default_factory=list)


Respond = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serving(
    respond: Respond, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
) -> AsyncIterator[Receiver]:
    """A loopback HTTP server that reads each request and answers with ``respond``."""
    receiver = Receiver()
    handlers: set[asyncio.Task[Any]] = set()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        receiver.connections += 1
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")[:-2]
            request = Request(head, b"")
            length = int(request.header("content-length") or 0)
            request.body = await reader.readexactly(length)
            receiver.requests.append(request)
            await respond(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or the server is closing
        finally:
            writer.close()

    try:
        server = await asyncio.start_server(on_connection, host, 0, ssl=tls)
    except OSError as error:
        pytest.skip(f"cannot listen on {host}: {error}")
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()
        for handler in handlers:
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


def answer(status: int, body: bytes = b"", headers: tuple[str, ...] = ()) -> Respond:
    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lines = [f"HTTP/1.1 {status} Answer", f"Content-Length: {len(body)}", *headers]
        writer.write(("\r\n".join([*lines, "Connection: close"]) + "\r\n\r\n").encode() + body)
        await writer.drain()

    return respond


async def endless_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """200 with a body delimited by the connection's close, written until the client goes."""
    writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
    for _ in range(2000):  # 128 MiB at most, should the client never stop reading
        writer.write(b"x" * 65536)
        await writer.drain()


async def silence(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """No answer at all: wait for the client to give up."""
    await reader.read()


async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An answer that keeps coming, a byte at a time: no read ever waits long."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    while not writer.is_closing():
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(0.05)


class StubDns:
    """A resolver whose n-th lookup answers the n-th answer (the last one after that)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return self.answers[min(len(self.lookups), len(self.answers)) - 1]


class FailingDns:
    async def __call__(self, host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.fixture
def make_egress(io_loop: Any) -> Any:
    made: list[Egress] = []

    def make(allow_private: bool = False, **options: Any) -> Egress:
        egress = Egress(allow_private, **options)
        made.append(egress)
        return egress

    yield make
    for egress in made:
        io_loop.run_sync(egress.close)


async def refusal(request: Awaitable[Any]) -> EgressError:
    with pytest.raises(EgressError) as caught:
        await request
    return caught.value


# --- check_url: the shape of a URL, at registration -----------------------------------------


def test_check_url_accepts_a_public_https_url() -> None:
    url = "https://fcm.googleapis.com:443/fcm/send/abc-DEF_123?x=1"
    assert check_url(url, allow_private=False, field="endpoint") == url


@pytest.mark.parametrize(
    "url",
    [
        "ftp://push.example/send",
        "file:///etc/passwd",
        "http://push.example/send",
        "push.example/send",
        "https:///send",
        "https://",
        "https://:443/send",
        "https://user:secret@push.example/send",
        "https://user@push.example/send",
        "https://push.example@127.0.0.1/send",
        "https://push.example/a b",
        " https://push.example/send",
        "https://push.example/send\n",
        "https://push.exam\tple/send",
        "https://pushé.example/send",
        "https://push.example:0/send",
        "https://push.example:65536/send",
        "https://push.example:https/send",
        "https://push.example/send#fragment",
        "https://push_service.example/send",
        "https://-push.example/send",
        "https://127.0.0.1/send",
        "https://10.0.0.7/send",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost/send",
        "https://push.localhost/send",
        "https://127.1/send",
        "https://2130706433/send",
        "https://0x7f000001/send",
        "https://0177.0.0.1/send",
        "https://[::1]/send",
        "https://[::ffff:127.0.0.1]/send",
        "https://[fd00:ec2::254]/send",
        "https://[fe80::1%25lo]/send",
        "https://[v1.zz]/send",
        "https://[::1/send",
        "https://push.example/" + "a" * 2100,
    ],
)
def test_check_url_refuses_a_url_that_is_not_a_public_https_destination(url: str) -> None:
    with pytest.raises(Invalid) as caught:
        check_url(url, allow_private=False, field="endpoint")
    assert caught.value.details == {"field": "endpoint"}, caught.value.message


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/push", "https://[::1]/push", "http://localhost/push"]
)
def test_check_url_with_allow_private_admits_http_and_loopback(url: str) -> None:
    assert check_url(url, allow_private=True) == url


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/push", "http://user@127.0.0.1/push", "http:///push"]
)
def test_check_url_with_allow_private_still_refuses_bad_shapes(url: str) -> None:
    with pytest.raises(Invalid):
        check_url(url, allow_private=True)


# --- which addresses are blocked --------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.0.9",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "169.254.1.1",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "fd00:ec2::254",
        "ff02::1",
        "2001:db8::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:100.64.0.1",
        "::127.0.0.1",
        "64:ff9b::a00:1",
        "2002:7f00:1::",
    ],
)
def test_addresses_outside_the_public_internet_are_blocked(address: str) -> None:
    assert is_blocked_address(ip_address(address))


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", PUBLIC_ADDRESS, "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"],
)
def test_public_addresses_are_not_blocked(address: str) -> None:
    assert not is_blocked_address(ip_address(address))


# --- the pinned lookup ---------------------------------------------------------------------


async def test_an_answer_with_one_private_address_is_refused_whole() -> None:
    dns = StubDns([PUBLIC_ADDRESS, "10.0.0.5"])
    error = await refusal(checked_addresses("push.example", 443, dns, allow_private=False))
    assert error.reason == "blocked_address", error


@pytest.mark.parametrize(
    "answer", [["::1"], ["::ffff:127.0.0.1"], ["fd00:ec2::254"], ["fe80::1%lo"]]
)
async def test_ipv6_and_ipv4_mapped_answers_are_judged(answer: list[str]) -> None:
    error = await refusal(checked_addresses("push.example", 443, StubDns(answer), False))
    assert error.reason == "blocked_address", error


async def test_public_answers_are_the_addresses_to_connect_to() -> None:
    dns = StubDns([PUBLIC_ADDRESS, "2606:4700:4700::1111", PUBLIC_ADDRESS])
    addresses = await checked_addresses("push.example", 443, dns, allow_private=False)
    assert addresses == [ip_address(PUBLIC_ADDRESS), ip_address("2606:4700:4700::1111")]


async def test_a_name_that_does_not_resolve_fails_as_resolve_failed(make_egress: Any) -> None:
    egress = make_egress(resolve=FailingDns())
    error = await refusal(egress.post("https://nowhere.example/push", b"{}", {}))
    assert error.reason == "resolve_failed", error


async def test_a_name_turning_private_after_the_check_reaches_nothing(make_egress: Any) -> None:
    """DNS rebinding: public when the URL is registered, loopback when the push is sent."""
    async with serving(answer(201)) as receiver:
        dns = StubDns([PUBLIC_ADDRESS], ["127.0.0.1"])
        egress = make_egress(resolve=dns)
        url = f"https://push.example:{receiver.port}/push"
        await egress.check_destination(url, field="endpoint")
        error = await refusal(egress.post(url, b"{}", {}))
    assert error.reason == "blocked_address", error
    assert dns.lookups == ["push.example", "push.example"]
    assert receiver.connections == 0


async def test_the_connection_goes_to_the_address_the_guard_resolved(make_egress: Any) -> None:
    """One lookup per connection, by the guard, and the connection made to its answer: a
    name no real DNS knows reaches the loopback server the stub named."""
    async with serving(answer(201)) as receiver:
        dns = StubDns(["127.0.0.1"], ["10.255.255.1"])
        egress = make_egress(allow_private=True, resolve=dns)
        response = await egress.post(f"http://push.test:{receiver.port}/push", b"{}", {})
    assert response.status == 201
    assert dns.lookups == ["push.test"]
    assert receiver.requests[0].header("host") == f"push.test:{receiver.port}"


async def test_check_destination_refuses_a_name_resolving_to_a_private_address(
    make_egress: Any,
) -> None:
    egress = make_egress(resolve=StubDns(["10.0.0.5"]))
    with pytest.raises(Invalid) as caught:
        await egress.check_destination("https://push.example/push", field="endpoint")
    assert caught.value.details == {"field": "endpoint"}, caught.value.message


async def test_check_destination_admits_a_name_resolving_to_a_public_address(
    make_egress: Any,
) -> None:
    egress = make_egress(resolve=StubDns([PUBLIC_ADDRESS]))
    await egress.check_destination("https://push.example/push", field="endpoint")


# --- sending: private destinations -----------------------------------------------------------


async def test_a_loopback_destination_is_refused_before_any_connection(make_egress: Any) -> None:
    async with serving(answer(201)) as receiver:
        egress = make_egress()
        error = await refusal(egress.post(f"https://127.0.0.1:{receiver.port}/push", b"{}", {}))
    assert error.reason == "blocked_address", error
    assert receiver.connections == 0


async def test_localhost_by_its_name_is_refused_before_any_connection(make_egress: Any) -> None:
    """The system's resolver, for real: localhost answers loopback, which is judged."""
    async with serving(answer(201)) as receiver:
        egress = make_egress()
        error = await refusal(egress.post(f"https://localhost:{receiver.port}/push", b"{}", {}))
    assert error.reason == "blocked_address", error
    assert receiver.connections == 0


async def test_an_ipv6_loopback_destination_is_refused_before_any_connection(
    make_egress: Any,
) -> None:
    async with serving(answer(201), host="::1") as receiver:
        egress = make_egress()
        error = await refusal(egress.post(f"https://[::1]:{receiver.port}/push", b"{}", {}))
    assert error.reason == "blocked_address", error
    assert receiver.connections == 0


async def test_an_ipv4_mapped_loopback_answer_is_refused_before_any_connection(
    make_egress: Any,
) -> None:
    async with serving(answer(201)) as receiver:
        egress = make_egress(resolve=StubDns(["::ffff:127.0.0.1"]))
        error = await refusal(egress.post(f"https://push.example:{receiver.port}/", b"{}", {}))
    assert error.reason == "blocked_address", error
    assert receiver.connections == 0


async def test_http_is_refused_when_private_destinations_are_not_allowed(
    make_egress: Any,
) -> None:
    dns = StubDns([PUBLIC_ADDRESS])
    egress = make_egress(resolve=dns)
    error = await refusal(egress.post("http://push.example/push", b"{}", {}))
    assert error.reason == "invalid_url", error
    assert dns.lookups == []


async def test_a_loopback_destination_is_reached_when_private_is_allowed(
    make_egress: Any,
) -> None:
    async with serving(answer(201, b'{"ok":true}', ("Location: /msg/1",))) as receiver:
        egress = make_egress(allow_private=True)
        response = await egress.post(
            f"http://127.0.0.1:{receiver.port}/push/abc",
            b"encrypted bytes",
            {"TTL": "60", "Content-Encoding": "aes128gcm"},
        )
    assert (response.status, response.body, response.truncated) == (201, b'{"ok":true}', False)
    assert response.header("location") == "/msg/1"
    request = receiver.requests[0]
    assert request.head[0] == "POST /push/abc HTTP/1.1"
    assert (request.body, request.header("ttl")) == (b"encrypted bytes", "60")
    assert request.header("user-agent") == "CronChat"


async def test_an_ipv6_loopback_destination_is_reached_when_private_is_allowed(
    make_egress: Any,
) -> None:
    async with serving(answer(201), host="::1") as receiver:
        egress = make_egress(allow_private=True)
        response = await egress.post(f"http://[::1]:{receiver.port}/push", b"{}", {})
    assert response.status == 201
    assert receiver.connections == 1


async def test_the_setting_defaults_to_refusing_private_destinations(tmp_path: Any) -> None:
    settings = load_settings({}, data_dir=str(tmp_path), jwt_secret="s" * 40)
    assert settings.push_allow_private is False
    environ = {"CRONCHAT_PUSH_ALLOW_PRIVATE": "true"}
    settings = load_settings(environ, data_dir=str(tmp_path), jwt_secret="s" * 40)
    assert settings.push_allow_private is True


# --- sending: redirects, time, size, failures ----------------------------------------------


async def test_a_redirect_is_an_answer_and_is_not_followed(make_egress: Any) -> None:
    async with serving(answer(201)) as target:
        location = f"http://127.0.0.1:{target.port}/elsewhere"
        async with serving(answer(307, headers=(f"Location: {location}",))) as receiver:
            egress = make_egress(allow_private=True)
            response = await egress.post(f"http://127.0.0.1:{receiver.port}/push", b"{}", {})
    assert response.status == 307
    assert response.header("location") == location
    assert target.connections == 0


@pytest.mark.parametrize("answer", [silence, trickle], ids=["silent", "trickling"])
async def test_a_slow_server_times_out_within_the_total_bound(
    make_egress: Any, answer: Any
) -> None:
    """A server that says nothing, or one whose every read gets a byte in time: the bound
    on the whole exchange holds for both."""
    async with serving(answer) as receiver:
        egress = make_egress(allow_private=True, total_timeout=0.5)
        started = time.monotonic()
        error = await refusal(egress.post(f"http://127.0.0.1:{receiver.port}/push", b"{}", {}))
        elapsed = time.monotonic() - started
    assert error.reason == "timeout", error
    assert 0.4 < elapsed < 1.5, f"expected about 0.5 s, took {elapsed:.2f} s"


async def test_a_per_request_timeout_bounds_that_request(make_egress: Any) -> None:
    async with serving(silence) as receiver:
        egress = make_egress(allow_private=True, total_timeout=10)
        started = time.monotonic()
        request = egress.post(f"http://127.0.0.1:{receiver.port}/push", b"{}", {}, timeout=0.3)
        error = await refusal(request)
        elapsed = time.monotonic() - started
    assert error.reason == "timeout", error
    assert elapsed < 1.3, f"expected about 0.3 s, took {elapsed:.2f} s"


async def test_a_huge_answer_is_cut_at_the_bound_and_marked(make_egress: Any) -> None:
    async with serving(endless_body) as receiver:
        egress = make_egress(allow_private=True, max_response_bytes=1000)
        response = await egress.post(f"http://127.0.0.1:{receiver.port}/push", b"{}", {})
    assert response.status == 200
    assert (len(response.body), response.truncated) == (1000, True)


async def test_an_answer_of_exactly_the_bound_is_whole(make_egress: Any) -> None:
    async with serving(answer(200, b"y" * 1000)) as receiver:
        egress = make_egress(allow_private=True, max_response_bytes=1000)
        response = await egress.post(f"http://127.0.0.1:{receiver.port}/push", b"{}", {})
    assert (response.body, response.truncated) == (b"y" * 1000, False)


async def test_a_closed_port_fails_as_connect_failed(make_egress: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    egress = make_egress(allow_private=True, connect_timeout=2)
    error = await refusal(egress.post(f"http://127.0.0.1:{port}/push", b"{}", {}))
    assert error.reason == "connect_failed", error


# --- TLS on the pinned address ----------------------------------------------------------------


def tls_pair(certificate_name: str) -> tuple[ssl.SSLContext, ssl.SSLContext, list[str]]:
    """A server context with a certificate for ``certificate_name`` (recording the SNI names
    it is asked for) and a client context trusting only the test authority."""
    authority = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(certificate_name).configure_cert(server)
    names: list[str] = []
    server.sni_callback = lambda _socket, name, _context: names.append(name) or None
    client = ssl.create_default_context()
    authority.configure_trust(client)
    return server, client, names


async def test_tls_verifies_the_url_host_name_on_the_pinned_address(make_egress: Any) -> None:
    server_tls, client_tls, sni_names = tls_pair("push.test")
    async with serving(answer(201), tls=server_tls) as receiver:
        egress = make_egress(
            allow_private=True, resolve=StubDns(["127.0.0.1"]), ssl_context=client_tls
        )
        response = await egress.post(f"https://push.test:{receiver.port}/push", b"{}", {})
    assert response.status == 201
    assert sni_names == ["push.test"]


async def test_tls_refuses_a_certificate_for_another_name(make_egress: Any) -> None:
    server_tls, client_tls, _ = tls_pair("other.test")
    async with serving(answer(201), tls=server_tls) as receiver:
        egress = make_egress(
            allow_private=True, resolve=StubDns(["127.0.0.1"]), ssl_context=client_tls
        )
        error = await refusal(egress.post(f"https://push.test:{receiver.port}/push", b"{}", {}))
    assert error.reason == "connect_failed", error
    assert receiver.requests == []
