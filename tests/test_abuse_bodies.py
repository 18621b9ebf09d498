"""Hostile bodies and headers, from outside: bodies judged from their headers before they
are read, per route; stalled bodies and headers dropped; an oversize upload that a client
sent whole still reads its 413; JSON nested too deep is a 400 or an error frame; oversize
headers are a 431; concurrent uploads are capped."""

from __future__ import annotations

import asyncio
import io
import json
import os
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image

from clients import ApiClient, unique_name

pytestmark = pytest.mark.gen_test(timeout=60)

LOGIN = "/api/v1/auth/login"


async def open_raw(base_url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(base_url)
    return await asyncio.open_connection(parts.hostname, parts.port)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], Any]:
    """One HTTP response off a raw connection: status, headers, the JSON body if any."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), 10) if length else b""
    return int(status_line.split()[1]), headers, json.loads(body) if body else None


def request_head(method: str, path: str, **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def noise_png(size: tuple[int, int]) -> bytes:
    """A PNG of random pixels: it does not compress, so its size is about 3 bytes a pixel."""
    image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def post_with_urllib(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    """POST as Python's urllib does (the whole body written before the answer is read)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# -- bodies judged before they are read ------------------------------------------------------


async def test_a_declared_length_over_the_json_limit_is_413_before_any_body(
    api: ApiClient, base_url: str
) -> None:
    reader, writer = await open_raw(base_url)
    writer.write(
        request_head("POST", LOGIN, Content_Type="application/json", Content_Length="5000000")
    )
    await writer.drain()
    try:
        status, _, body = await read_response(reader)
    except TimeoutError:
        raise AssertionError("no answer to a declared 5 MB login body that never came") from None
    finally:
        writer.close()
    assert (status, body["error"]["code"]) == (413, "payload_too_large")


async def test_a_client_expecting_100_continue_reads_the_413_instead(
    api: ApiClient, base_url: str
) -> None:
    reader, writer = await open_raw(base_url)
    writer.write(request_head("POST", LOGIN, Content_Length="5000000", Expect="100-continue"))
    await writer.drain()
    try:
        status, _, body = await read_response(reader)
        rest = await asyncio.wait_for(reader.read(), 10)  # closed: the body is not wanted
    finally:
        writer.close()
    assert (status, body["error"]["code"], rest) == (413, "payload_too_large", b"")


async def test_a_chunked_json_body_is_413_once_its_count_passes_the_limit(
    api: ApiClient, base_url: str
) -> None:
    reader, writer = await open_raw(base_url)
    writer.write(request_head("POST", LOGIN, Transfer_Encoding="chunked"))
    for _ in range(20):  # 20 x 16 KiB: past the 256 KiB limit, and never terminated
        writer.write(b"4000\r\n" + b" " * 0x4000 + b"\r\n")
        await writer.drain()
    try:
        status, _, body = await read_response(reader)
    finally:
        writer.close()
    assert (status, body["error"]["code"]) == (413, "payload_too_large")


async def test_the_body_limit_is_per_route(api: ApiClient) -> None:
    alice = await api.register()
    padding = "x" * (300 * 1024)
    room = await api.post("/api/v1/rooms", {"name": "Big", "topic": padding}, alice["token"])
    assert (room.status, room.error_code) == (413, "payload_too_large")
    image = noise_png((330, 330))
    assert len(image) > 300 * 1024
    upload = await api.post(
        "/api/v1/media", body=image, token=alice["token"], headers={"Content-Type": "image/png"}
    )
    assert upload.status == 201, upload.body


async def test_a_body_on_a_route_that_takes_none_is_413(api: ApiClient) -> None:
    alice = await api.register()
    reply = await api.call("GET", "/api/v1/users/me", token=alice["token"], body=b"x" * 4096)
    assert (reply.status, reply.error_code) == (413, "payload_too_large")


@pytest.mark.server_settings(body_timeout=1)
async def test_a_stalled_body_is_dropped_after_the_body_timeout(
    api: ApiClient, base_url: str
) -> None:
    reader, writer = await open_raw(base_url)
    writer.write(request_head("POST", LOGIN, Content_Length="100") + b'{"username": ')
    await writer.drain()
    try:
        rest = await asyncio.wait_for(reader.read(), 10)
    except TimeoutError:
        raise AssertionError("a body stalled at 13 of 100 bytes was never dropped") from None
    finally:
        writer.close()
    assert rest == b""  # dropped, nothing answered to half a request


@pytest.mark.server_settings(idle_connection_timeout=1)
async def test_stalled_headers_are_dropped_after_the_idle_timeout(
    api: ApiClient, base_url: str
) -> None:
    reader, writer = await open_raw(base_url)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")
    await writer.drain()
    try:
        rest = await asyncio.wait_for(reader.read(), 10)
    except TimeoutError:
        raise AssertionError("a request whose headers never ended was never dropped") from None
    finally:
        writer.close()
    assert rest == b""


async def test_an_11_mib_upload_sent_whole_reads_its_413(api: ApiClient, base_url: str) -> None:
    alice = await api.register()
    headers = {"Authorization": f"Bearer {alice['token']}", "Content-Type": "image/png"}
    body = os.urandom(11 * 1024 * 1024)
    loop = asyncio.get_running_loop()
    try:
        status, answer = await loop.run_in_executor(
            None, post_with_urllib, base_url + "/api/v1/media", body, headers
        )
    except (urllib.error.URLError, OSError) as error:
        raise AssertionError(f"expected to read a 413, the upload failed with {error!r}") from None
    assert (status, answer["error"]["code"]) == (413, "payload_too_large")


async def test_an_unauthenticated_upload_sent_whole_reads_its_401(
    api: ApiClient, base_url: str
) -> None:
    body = os.urandom(4 * 1024 * 1024)
    loop = asyncio.get_running_loop()
    try:
        status, answer = await loop.run_in_executor(
            None, post_with_urllib, base_url + "/api/v1/media", body, {}
        )
    except (urllib.error.URLError, OSError) as error:
        raise AssertionError(f"expected to read a 401, the upload failed with {error!r}") from None
    assert (status, answer["error"]["code"]) == (401, "unauthorized")


async def test_the_connection_serves_again_after_a_refused_body_is_read(
    api: ApiClient, base_url: str
) -> None:
    reader, writer = await open_raw(base_url)
    try:
        writer.write(request_head("POST", LOGIN, Content_Length=str(300 * 1024)))
        status, _, _ = await read_response(reader)
        assert status == 413
        writer.write(b" " * (300 * 1024))  # the client sends its body anyway
        writer.write(request_head("GET", "/healthz"))
        await writer.drain()
        status, _, _ = await read_response(reader)
    finally:
        writer.close()
    assert status == 200


# -- concurrent uploads ----------------------------------------------------------------------


@pytest.mark.server_settings(media_max_concurrent_uploads=1)
async def test_uploads_past_the_concurrent_cap_are_503_with_retry_after(
    api: ApiClient, base_url: str
) -> None:
    alice = await api.register()
    image = noise_png((40, 40))
    reader, writer = await open_raw(base_url)
    try:
        writer.write(
            request_head(
                "POST",
                "/api/v1/media",
                Authorization=f"Bearer {alice['token']}",
                Content_Type="image/png",
                Content_Length=str(len(image)),
                Expect="100-continue",
            )
        )
        await writer.drain()
        # "100 Continue" comes once the upload has passed its checks and holds its slot.
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert interim.startswith(b"HTTP/1.1 100"), interim
        writer.write(image[:100])
        await writer.drain()
        second = await api.post(
            "/api/v1/media", body=image, token=alice["token"], headers={"Content-Type": "image/png"}
        )
        assert (second.status, second.error_code) == (503, "unavailable")
        assert int(second.headers["Retry-After"]) >= 1
        writer.write(image[100:])
        await writer.drain()
        first, _, _ = await read_response(reader)
        assert first == 201
    finally:
        writer.close()
    third = await api.post(
        "/api/v1/media", body=image, token=alice["token"], headers={"Content-Type": "image/png"}
    )
    assert third.status == 201, third.body


# -- deep JSON -------------------------------------------------------------------------------


async def test_deep_json_bodies_are_400(api: ApiClient) -> None:
    for depth in (5000, 100):
        reply = await api.post(LOGIN, body=b"[" * depth + b"]" * depth)
        assert (reply.status, reply.error_code) == (400, "invalid_request"), (depth, reply.body)
    open_only = await api.post(LOGIN, body=b"[" * 5000)
    assert (open_only.status, open_only.error_code) == (400, "invalid_request")


async def test_json_nested_within_the_limit_is_accepted(api: ApiClient) -> None:
    nested: Any = "deep"
    for _ in range(15):  # 30 levels, in the object of the body: 31
        nested = {"inner": [nested]}
    body = {"username": unique_name("nested"), "password": "long enough", "extra": nested}
    reply = await api.post("/api/v1/auth/register", body)
    assert reply.status == 201, reply.body


async def test_a_deep_json_frame_is_an_error_and_the_socket_stays_open(
    api: ApiClient, connect: Any
) -> None:
    alice = await api.register()
    ws = await connect(alice["token"])
    await ws.send("[" * 5000)
    error = await ws.expect("error")
    assert error["code"] == "invalid_request"
    await ws.send('{"type": "x", "a": ' + "[" * 100 + "]" * 100 + "}")
    error = await ws.expect("error")
    assert error["code"] == "invalid_request"
    pong = await ws.request({"type": "ping"})
    assert pong["type"] == "pong"


# -- oversize headers ------------------------------------------------------------------------


async def test_a_70_kb_authorization_header_is_431(api: ApiClient, base_url: str) -> None:
    reader, writer = await open_raw(base_url)
    writer.write(request_head("GET", "/api/v1/users/me", Authorization="Bearer " + "x" * 70_000))
    await writer.drain()
    try:
        status, _, body = await read_response(reader)
    except (asyncio.IncompleteReadError, TimeoutError) as error:
        raise AssertionError(f"expected a 431, the connection ended with {error!r}") from None
    finally:
        writer.close()
    assert (status, body["error"]["code"]) == (431, "headers_too_large")


async def test_a_big_header_on_the_websocket_upgrade_is_431(api: ApiClient, base_url: str) -> None:
    reader, writer = await open_raw(base_url)
    writer.write(
        request_head(
            "GET",
            "/api/v1/ws",
            Upgrade="websocket",
            Connection="Upgrade",
            Sec_WebSocket_Key="dGhlIHNhbXBsZSBub25jZQ==",
            Sec_WebSocket_Version="13",
            Authorization="Bearer " + "x" * 40_000,
        )
    )
    await writer.drain()
    try:
        status, _, body = await read_response(reader)
    finally:
        writer.close()
    assert (status, body["error"]["code"]) == (431, "headers_too_large")
