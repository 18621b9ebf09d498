"""Media over HTTP and WebSocket with real servers: uploads judged by their bytes, metadata
stripped, signed expiring links, who may load what, image messages, avatars, pruning and
the store's health. Every test runs on local disk and on S3 (moto's standalone server)."""

from __future__ import annotations

import asyncio
import functools
import io
import json
import os
import secrets
import struct
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from moto.server import ThreadedMotoServer
from PIL import Image, ImageDraw

from clients import ApiClient, unique_name
from conftest import JWT_SECRET, cronchat_env
from cronchat.config import Secret, Settings
from cronchat.media_links import THUMBNAIL, MediaLinks

pytestmark = pytest.mark.gen_test(timeout=60)

MEDIA_FIELDS = {"id", "url", "thumbnail_url", "content_type", "width", "height", "size"}
S3_KEY, S3_SECRET, S3_REGION = "testing", "testing", "us-east-1"


# -- the S3 server and the backend of each test --------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Any:
    """moto's standalone S3 server, on a free port, for the whole run."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@functools.cache
def s3_client(endpoint: str) -> Any:
    """The tests' own client of the S3 server (made once: making one takes a while)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=S3_REGION,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
    )


@pytest.fixture(params=["local", "s3"])
def media_backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The server settings of a media backend; on S3, a fresh bucket of the test's own."""
    if request.param == "local":
        return {"media_backend": "local"}
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = f"cronchat-test-{secrets.token_hex(6)}"
    s3_client(endpoint).create_bucket(Bucket=bucket)
    return {
        "media_backend": "s3",
        "s3_endpoint_url": endpoint,
        "s3_bucket": bucket,
        "s3_region": S3_REGION,
        "s3_access_key_id": Secret(S3_KEY),
        "s3_secret_access_key": Secret(S3_SECRET),
    }


@pytest.fixture
def settings_overrides(
    request: pytest.FixtureRequest, media_backend: dict[str, Any]
) -> dict[str, Any]:
    """conftest's fixture, with the media backend of the test under its server_settings."""
    marker = request.node.get_closest_marker("server_settings")
    return {**media_backend, **(marker.kwargs if marker else {})}


def stored_keys(settings: Settings) -> list[str]:
    """Every key the test's media store holds, whichever backend it is."""
    if settings.media_backend == "s3":
        listed = s3_client(settings.s3_endpoint_url).list_objects_v2(Bucket=settings.s3_bucket)
        return [item["Key"] for item in listed.get("Contents", [])]
    root = settings.media_dir
    return [str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()]


# -- images, made here with Pillow ---------------------------------------------------------


def image_bytes(fmt: str, size: tuple[int, int] = (400, 300), **save: Any) -> bytes:
    image = Image.new("RGB", size, (200, 40, 40))
    ImageDraw.Draw(image).rectangle((0, 0, size[0] // 4, size[1] // 4), fill=(20, 20, 220))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def noise_png(size: tuple[int, int] = (300, 300)) -> bytes:
    buffer = io.BytesIO()
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


def opened(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def multipart(field: str, filename: str, data: bytes, content_type: str) -> tuple[bytes, str]:
    boundary = secrets.token_hex(12)
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


async def upload(api: ApiClient, user: dict, data: bytes, content_type: str = "image/png") -> Any:
    return await api.post(
        "/api/v1/media", token=user["token"], body=data, headers={"Content-Type": content_type}
    )


async def uploaded(api: ApiClient, user: dict, data: bytes | None = None) -> dict[str, Any]:
    reply = await upload(api, user, data or image_bytes("PNG"))
    assert reply.status == 201, f"upload: expected 201, got {reply.status} {reply.body}"
    return reply.body


async def send_image(api: ApiClient, user: dict, room_id: str, media_id: str, **extra: Any) -> Any:
    return await api.post(
        f"/api/v1/rooms/{room_id}/messages",
        {"client_msg_id": secrets.token_hex(8), "kind": "image", "media_id": media_id, **extra},
        user["token"],
    )


def media_id_of(url: str) -> str:
    return urlsplit(url).path.split("/")[4]


# -- uploads -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")],
)
async def test_each_accepted_format_is_stored_re_encoded_with_a_thumbnail(
    api: ApiClient, fmt: str, content_type: str
) -> None:
    alice = await api.register()
    # Sent as application/octet-stream: the bytes decide, not the header.
    reply = await upload(api, alice, image_bytes(fmt), "application/octet-stream")
    assert reply.status == 201, reply.body
    media = reply.body
    assert set(media) == MEDIA_FIELDS
    assert (media["content_type"], media["width"], media["height"]) == (content_type, 400, 300)
    original = await api.get(media["url"])
    assert original.status == 200
    assert original.headers["Content-Type"] == content_type
    assert original.headers["X-Content-Type-Options"] == "nosniff"
    assert int(original.headers["Content-Length"]) == len(original.body) == media["size"]
    assert opened(original.body).format == fmt and opened(original.body).size == (400, 300)
    thumbnail = await api.get(media["thumbnail_url"])
    assert thumbnail.status == 200 and thumbnail.headers["Content-Type"] == content_type
    assert opened(thumbnail.body).size == (320, 240)


async def test_an_animated_gif_stays_animated(api: ApiClient) -> None:
    alice = await api.register()
    frames = [Image.new("RGB", (64, 48), color) for color in ("red", "green", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=80)
    media = await uploaded(api, alice, buffer.getvalue())
    stored = opened((await api.get(media["url"])).body)
    assert stored.format == "GIF" and stored.n_frames == 3


def animation(fmt: str, count: int, size: tuple[int, int] = (2, 2)) -> bytes:
    """An animation of ``count`` frames, each unlike the one before (so none is merged)."""
    mode = "L" if fmt == "GIF" else "RGB"
    frames = []
    for index in range(count):
        frame = Image.new(mode, size)
        shades = [255 * ((index >> bit) & 1) for bit in range(size[0] * size[1])]
        frame.putdata(shades if mode == "L" else [(shade, 0, 0) for shade in shades])
        frames.append(frame)
    buffer = io.BytesIO()
    frames[0].save(buffer, format=fmt, save_all=True, append_images=frames[1:], duration=20)
    return buffer.getvalue()


@functools.cache
def tiny_frames_gif() -> bytes:
    """The GIF of the report: 16,000 distinct 2x2 frames in well under a megabyte."""
    return animation("GIF", 16_000)


async def test_a_gif_of_sixteen_thousand_tiny_frames_is_415_and_stores_nothing(
    api: ApiClient, settings: Settings
) -> None:
    alice = await api.register()
    data = tiny_frames_gif()
    assert len(data) < 1024 * 1024 and opened(data).n_frames == 16_000
    reply = await upload(api, alice, data, "image/gif")
    assert (reply.status, reply.error_code) == (415, "unsupported_media_type"), reply.body
    assert "500 frames" in reply.body["error"]["message"], reply.body
    assert stored_keys(settings) == []


@pytest.mark.server_settings(media_max_frames=20)
@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
async def test_an_animation_past_the_frame_limit_is_415(api: ApiClient, fmt: str) -> None:
    alice = await api.register()
    at_limit = await upload(api, alice, animation(fmt, 20, (8, 8)))
    assert at_limit.status == 201, at_limit.body
    assert opened((await api.get(at_limit.body["url"])).body).n_frames == 20
    past = await upload(api, alice, animation(fmt, 21, (8, 8)))
    assert (past.status, past.error_code) == (415, "unsupported_media_type"), past.body
    assert "at most 20 frames" in past.body["error"]["message"]
    # An avatar takes the first frame only, but the same animation is refused there too.
    avatar = await api.put(
        "/api/v1/users/me/avatar", token=alice["token"], body=animation(fmt, 21, (8, 8))
    )
    assert (avatar.status, avatar.error_code) == (415, "unsupported_media_type"), avatar.body


@pytest.mark.server_settings(media_max_decode_seconds=1e-9)
@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
async def test_an_animation_that_outlasts_the_decoding_deadline_is_415(
    api: ApiClient, settings: Settings, fmt: str
) -> None:
    # No frame decodes within a nanosecond: the deadline is past at the first check.
    alice = await api.register()
    reply = await upload(api, alice, animation(fmt, 10, (16, 16)))
    assert (reply.status, reply.error_code) == (415, "unsupported_media_type"), reply.body
    assert "too long to decode" in reply.body["error"]["message"]
    assert stored_keys(settings) == []
    # A still image is one frame, bounded by its pixel count: the deadline is not for it.
    assert (await upload(api, alice, image_bytes("PNG"))).status == 201


async def test_multipart_upload_takes_the_file_field(api: ApiClient) -> None:
    alice = await api.register()
    body, content_type = multipart("file", "cat.jpg", image_bytes("JPEG"), "image/jpeg")
    reply = await upload(api, alice, body, content_type)
    assert reply.status == 201, reply.body
    assert reply.body["content_type"] == "image/jpeg"
    body, content_type = multipart("picture", "cat.jpg", image_bytes("JPEG"), "image/jpeg")
    missing = await upload(api, alice, body, content_type)
    assert (missing.status, missing.body["error"]["details"]) == (400, {"field": "file"})


@pytest.mark.parametrize(("width", "height"), [(8000, 8000), (100_000, 100_000)])
async def test_a_decompression_bomb_is_415(api: ApiClient, width: int, height: int) -> None:
    alice = await api.register()
    reply = await upload(api, alice, png_declaring(width, height))
    assert reply.status == 415, reply.body
    assert reply.error_code == "unsupported_media_type"


@pytest.mark.server_settings(media_max_pixels=10**12)
@pytest.mark.parametrize(("width", "height"), [(10_000, 10_000), (100_000, 100_000)])
async def test_pillows_own_bomb_limit_holds_whatever_the_configuration(
    api: ApiClient, width: int, height: int
) -> None:
    # Past Pillow's limit (about 89 million pixels) it warns, past twice that it raises:
    # both answer 415, however high CRONCHAT_MEDIA_MAX_PIXELS is set.
    alice = await api.register()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        reply = await upload(api, alice, png_declaring(width, height))
    assert (reply.status, reply.error_code) == (415, "unsupported_media_type")


@pytest.mark.parametrize(
    ("name", "data", "content_type"),
    [
        ("truncated PNG", noise_png()[:20_000], "image/png"),
        ("truncated JPEG", image_bytes("JPEG", (600, 400))[:1500], "image/jpeg"),
        ("text", b"just some text, honestly an image\n" * 20, "image/png"),
        (
            "SVG",
            b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
            b'<script>alert(1)</script><rect width="10" height="10"/></svg>',
            "image/svg+xml",
        ),
        ("BMP", image_bytes("BMP"), "image/bmp"),
    ],
)
async def test_what_does_not_decode_as_an_accepted_image_is_415(
    api: ApiClient, name: str, data: bytes, content_type: str
) -> None:
    alice = await api.register()
    raw = await upload(api, alice, data, content_type)
    assert (raw.status, raw.error_code) == (415, "unsupported_media_type"), name
    body, multipart_type = multipart("file", "picture.png", data, "image/png")
    named = await upload(api, alice, body, multipart_type)
    assert (named.status, named.error_code) == (415, "unsupported_media_type"), name


async def test_jpeg_loses_gps_and_all_metadata_and_is_turned_upright(api: ApiClient) -> None:
    alice = await api.register()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}
    photo = image_bytes("JPEG", (400, 200), exif=exif, icc_profile=b"icc" * 50, comment=b"a note")
    assert opened(photo).getexif().get_ifd(0x8825)
    media = await uploaded(api, alice, photo)
    assert (media["width"], media["height"]) == (200, 400)
    for url in (media["url"], media["thumbnail_url"]):
        stored = (await api.get(url)).body
        image = opened(stored)
        assert dict(image.getexif()) == {}
        assert "icc_profile" not in image.info and "comment" not in image.info
        for trace in (b"Exif", b"PhoneMaker", b"a note", b"icc" * 5):
            assert trace not in stored, trace
    assert opened((await api.get(media["url"])).body).size == (200, 400)


async def test_png_text_chunks_are_dropped(api: ApiClient) -> None:
    from PIL.PngImagePlugin import PngInfo

    alice = await api.register()
    info = PngInfo()
    info.add_text("Comment", "taken at home")
    media = await uploaded(api, alice, image_bytes("PNG", pnginfo=info))
    stored = (await api.get(media["url"])).body
    assert b"taken at home" not in stored and opened(stored).info.get("Comment") is None


@pytest.mark.server_settings(media_max_bytes=50_000)
async def test_an_oversize_body_is_413_without_being_read(api: ApiClient, base_url: str) -> None:
    alice = await api.register()
    # Announced by Content-Length: refused before the body is read.
    announced = await upload(api, alice, os.urandom(400_000))
    assert (announced.status, announced.error_code) == (413, "payload_too_large")
    # Within the body limit of the request, but more than an image may be.
    image = await upload(api, alice, noise_png((200, 200)))
    assert (image.status, image.error_code) == (413, "payload_too_large")
    # Streamed in chunks with no length: refused as soon as the count passes the limit.
    host, port = urlsplit(base_url).hostname, urlsplit(base_url).port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"POST /api/v1/media HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        + f"Authorization: Bearer {alice['token']}\r\n\r\n".encode()
    )
    for _ in range(8):  # 8 x 16 KiB: past 50,000 bytes and the multipart allowance
        writer.write(b"4000\r\n" + os.urandom(0x4000) + b"\r\n")
        await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert json.loads(body)["error"]["code"] == "payload_too_large"


async def test_an_empty_body_is_400(api: ApiClient) -> None:
    alice = await api.register()
    reply = await upload(api, alice, b"")
    assert (reply.status, reply.body["error"]["details"]) == (400, {"field": "file"})


# -- access --------------------------------------------------------------------------------


async def test_media_is_for_its_uploader_and_the_members_of_rooms_it_was_sent_to(
    api: ApiClient,
) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    room = await api.group(alice, bob)
    media = await uploaded(api, alice)
    path = f"/api/v1/media/{media['id']}"
    assert (await api.get(path, alice["token"])).status == 200
    assert (await api.get(path, bob["token"])).status == 404  # not sent anywhere yet
    assert (await send_image(api, alice, room["id"], media["id"])).status == 201
    for user in (alice, bob):
        for variant in (path, path + "/thumbnail"):
            reply = await api.get(variant, user["token"])
            assert reply.status == 200 and reply.headers["Content-Type"] == "image/png"
    for token in (carol["token"], None):
        reply = await api.get(path, token)
        assert reply.status == (404 if token else 401)
    assert (await api.get("/api/v1/media/nosuchmedia", alice["token"])).status == 404


async def test_a_forged_or_expired_signature_is_403(api: ApiClient) -> None:
    alice = await api.register()
    media, other = await uploaded(api, alice), await uploaded(api, alice)
    path, query = media["url"].split("?")
    signature = dict(part.split("=", 1) for part in query.split("&"))["signature"]
    forged = [
        media["url"].replace(
            signature, signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
        ),
        media["url"].replace(media["id"], other["id"]),  # another image, same signature
        media["thumbnail_url"].replace("/thumbnail?", "?"),  # the thumbnail's, for the original
        media["url"].replace("expires=", "expires=1"),
        path + "?expires=9999999999",
    ]
    links = MediaLinks(JWT_SECRET, 3600)
    expired = links.url(media["id"], now=time.time() - 7200)
    for url in [*forged, expired]:
        reply = await api.get(url)
        assert (reply.status, reply.error_code) == (403, "forbidden"), url
    assert "expired" in (await api.get(expired)).body["error"]["message"]
    fresh = links.url(media["id"], THUMBNAIL)
    assert (await api.get(fresh)).status == 200


async def test_etag_and_if_none_match_answer_304(api: ApiClient) -> None:
    alice = await api.register()
    media = await uploaded(api, alice)
    first = await api.get(media["url"])
    etag = first.headers["ETag"]
    cache_control = first.headers["Cache-Control"]
    assert cache_control.startswith("private, max-age=") and cache_control.endswith(", immutable")
    assert 0 < int(cache_control.split("=", 1)[1].split(",")[0]) <= 3600
    again = await api.get(media["url"], headers={"If-None-Match": etag})
    assert again.status == 304 and not again.body
    assert again.headers["ETag"] == etag
    by_token = await api.get(f"/api/v1/media/{media['id']}", alice["token"])
    assert by_token.headers["ETag"] == etag
    assert by_token.headers["Cache-Control"] == "private, max-age=3600, immutable"
    thumbnail = await api.get(media["thumbnail_url"], headers={"If-None-Match": etag})
    assert thumbnail.status == 200 and thumbnail.headers["ETag"] != etag


# -- image messages ------------------------------------------------------------------------


async def test_an_image_message_arrives_live_with_links_that_load_without_a_header(
    api: ApiClient, connect: Any, runtime: Any
) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.direct(alice, bob)
    bob_ws = await connect(bob["token"])
    media = await uploaded(api, alice, image_bytes("JPEG", (640, 480)))
    sent = await send_image(api, alice, room["id"], media["id"], text="  our view  ")
    assert sent.status == 201, sent.body
    assert sent.body["kind"] == "image" and sent.body["text"] == "our view"
    assert sent.body["media"]["id"] == media["id"] and sent.body["media"]["url"]
    delivered = await bob_ws.event_frame(room["id"])
    event = delivered["event"]
    live = event["data"]["media"]
    assert event["type"] == "message.created" and live["width"] == 640
    for url, size in ((live["url"], (640, 480)), (live["thumbnail_url"], (320, 240))):
        reply = await api.get(url)  # no Authorization header
        assert reply.status == 200 and reply.headers["Content-Type"] == "image/jpeg"
        assert opened(reply.body).size == size
    assert delivered["room"]["last_message"]["media"]["url"]
    # Every other way to the message signs its links too; the stored event holds none.
    history = await api.get(f"/api/v1/rooms/{room['id']}/messages", bob["token"])
    assert history.body["messages"][-1]["media"]["thumbnail_url"]
    caught_up = await api.get(f"/api/v1/rooms/{room['id']}/events", bob["token"])
    assert caught_up.body["events"][-1]["data"]["media"]["url"]
    rooms = await api.get("/api/v1/rooms", bob["token"])
    assert rooms.body["rooms"][0]["last_message"]["media"]["url"]
    stored = await runtime.db.read(
        lambda tx: tx.scalar(
            "SELECT data FROM room_events WHERE room_id = %s AND seq = %s",
            (room["id"], event["seq"]),
        )
    )
    assert json.loads(stored)["media"]["url"] is None
    assert json.loads(stored)["media"]["thumbnail_url"] is None


async def test_only_ones_own_message_upload_may_be_sent(api: ApiClient) -> None:
    alice, bob = await api.register(), await api.register()
    room = await api.group(alice, bob)
    alices = await uploaded(api, alice)
    theft = await send_image(api, bob, room["id"], alices["id"])
    assert (theft.status, theft.body["error"]["details"]) == (400, {"field": "media_id"})
    avatar = await api.put("/api/v1/users/me/avatar", token=alice["token"], body=image_bytes("PNG"))
    avatar_id = media_id_of(avatar.body["avatar_url"])
    as_message = await send_image(api, alice, room["id"], avatar_id)
    assert (as_message.status, as_message.body["error"]["details"]) == (400, {"field": "media_id"})


# -- avatars -------------------------------------------------------------------------------


async def test_avatar_is_a_signed_url_in_every_user_object(api: ApiClient, connect: Any) -> None:
    alice = await api.register(display_name=unique_name("Alice"))
    bob = await api.register()
    body, content_type = multipart("file", "me.png", image_bytes("PNG", (300, 200)), "image/png")
    reply = await api.put(
        "/api/v1/users/me/avatar",
        token=alice["token"],
        body=body,
        headers={"Content-Type": content_type},
    )
    assert reply.status == 200, reply.body
    avatar_url = reply.body["avatar_url"]
    assert reply.body["id"] == alice["user"]["id"] and "avatar_media_id" not in reply.body
    picture = await api.get(avatar_url)
    assert picture.status == 200 and opened(picture.body).size == (200, 200)
    # Avatars are for anyone with a token, too.
    by_token = await api.get(f"/api/v1/media/{media_id_of(avatar_url)}", bob["token"])
    assert by_token.status == 200

    name = alice["user"]["display_name"]
    bob_ws = await connect(bob["token"])
    direct = await api.direct(bob, alice)
    group = await api.group(bob, name="Later")
    await api.post(
        f"/api/v1/rooms/{group['id']}/members", {"user_id": alice["user"]["id"]}, bob["token"]
    )
    login = await api.post(
        "/api/v1/auth/login", {"username": alice["user"]["username"], "password": "correct horse"}
    )
    members = await api.get(f"/api/v1/rooms/{group['id']}/members", bob["token"])
    [joined] = [
        event
        for event in await bob_ws.events(group["id"], 2)
        if event["type"] == "member.joined" and event["data"]["user"]["id"] == alice["user"]["id"]
    ]
    caught_up = await api.get(f"/api/v1/rooms/{group['id']}/events", bob["token"])
    alice_ws = await connect(alice["token"])
    seen = {
        "me": (await api.get("/api/v1/users/me", alice["token"])).body,
        "profile": (await api.get(f"/api/v1/users/{alice['user']['id']}", bob["token"])).body,
        "search": (await api.get(f"/api/v1/users?q={name}", bob["token"])).body["users"][0],
        "login": login.body["user"],
        "members": next(m["user"] for m in members.body["members"] if m["role"] == "member"),
        "peer": direct["peer"],
        "live member event": joined["data"]["user"],
        "stored member event": caught_up.body["events"][-1]["data"]["user"],
        "ready frame": alice_ws.ready["user"],
    }
    for where, user in seen.items():
        assert user["id"] == alice["user"]["id"], where
        assert "avatar_media_id" not in user, where
        assert media_id_of(user["avatar_url"]) == media_id_of(avatar_url), where
        assert (await api.get(user["avatar_url"])).status == 200, where

    deleted = await api.delete("/api/v1/users/me/avatar", alice["token"])
    assert deleted.status == 204
    assert (await api.get("/api/v1/users/me", alice["token"])).body["avatar_url"] is None
    assert (await api.get(avatar_url)).status == 404


async def test_a_new_avatar_replaces_and_deletes_the_old_one(
    api: ApiClient, settings: Settings
) -> None:
    alice = await api.register()
    first = await api.put("/api/v1/users/me/avatar", token=alice["token"], body=image_bytes("GIF"))
    second = await api.put(
        "/api/v1/users/me/avatar", token=alice["token"], body=image_bytes("WEBP", (100, 400))
    )
    assert (first.status, second.status) == (200, 200)
    old_id, new_id = media_id_of(first.body["avatar_url"]), media_id_of(second.body["avatar_url"])
    assert (await api.get(first.body["avatar_url"])).status == 404
    webp = await api.get(second.body["avatar_url"])
    assert webp.headers["Content-Type"] == "image/webp" and opened(webp.body).size == (100, 100)
    keys = stored_keys(settings)
    assert not [key for key in keys if old_id in key]
    assert len([key for key in keys if new_id in key]) == 2  # the avatar and its thumbnail


async def test_an_avatar_change_reaches_room_mates_as_user_updated(
    api: ApiClient, connect: Any
) -> None:
    alice, bob = await api.register(), await api.register()
    await api.group(alice, bob)
    bob_ws = await connect(bob["token"])
    put = await api.put("/api/v1/users/me/avatar", token=alice["token"], body=image_bytes("PNG"))
    assert put.status == 200, put.body
    updated = (await bob_ws.expect("user.updated"))["user"]
    assert updated["id"] == alice["user"]["id"] and "avatar_media_id" not in updated
    assert media_id_of(updated["avatar_url"]) == media_id_of(put.body["avatar_url"])
    assert (await api.get(updated["avatar_url"])).status == 200
    assert (await api.delete("/api/v1/users/me/avatar", alice["token"])).status == 204
    removed = (await bob_ws.expect("user.updated"))["user"]
    assert removed["id"] == alice["user"]["id"] and removed["avatar_url"] is None


# -- room avatars --------------------------------------------------------------------------


async def put_room_avatar(api: ApiClient, user: dict, room_id: str, data: bytes, **kw: Any) -> Any:
    return await api.put(f"/api/v1/rooms/{room_id}/avatar", token=user["token"], body=data, **kw)


async def test_room_avatar_is_set_by_admins_and_owners_as_a_room_updated_event(
    api: ApiClient, connect: Any
) -> None:
    owner, admin, member = await api.register(), await api.register(), await api.register()
    room = await api.group(owner, admin, member)
    base = f"/api/v1/rooms/{room['id']}"
    await api.patch(f"{base}/members/{admin['user']['id']}", {"role": "admin"}, owner["token"])
    member_ws = await connect(member["token"])

    refused = await put_room_avatar(api, member, room["id"], image_bytes("PNG"))
    assert (refused.status, refused.error_code) == (403, "forbidden")
    body, content_type = multipart("file", "room.png", image_bytes("PNG", (300, 200)), "image/png")
    reply = await put_room_avatar(
        api, admin, room["id"], body, headers={"Content-Type": content_type}
    )
    assert reply.status == 200, reply.body
    assert reply.body["id"] == room["id"] and reply.body["my_role"] == "admin"
    assert "avatar_media_id" not in reply.body
    avatar_url = reply.body["avatar_url"]
    picture = await api.get(avatar_url)  # signed: loads without a header
    assert picture.status == 200 and opened(picture.body).size == (200, 200)

    (event,) = await member_ws.events(room["id"], 1)
    assert (event["type"], event["seq"], event["actor_id"]) == (
        "room.updated",
        room["last_seq"] + 2,  # after the role change
        admin["user"]["id"],
    )
    assert event["data"]["last_seq"] == event["seq"] and "avatar_media_id" not in event["data"]
    assert media_id_of(event["data"]["avatar_url"]) == media_id_of(avatar_url)
    stored = (await api.get(f"{base}/events?after_seq={event['seq'] - 1}", member["token"])).body
    assert media_id_of(stored["events"][0]["data"]["avatar_url"]) == media_id_of(avatar_url)
    # Every room answer carries it, signed.
    for seen in (
        (await api.get(base, member["token"])).body,
        (await api.get("/api/v1/rooms", owner["token"])).body["rooms"][0],
    ):
        assert media_id_of(seen["avatar_url"]) == media_id_of(avatar_url)
        assert (await api.get(seen["avatar_url"])).status == 200


async def test_room_avatar_bytes_are_for_members_and_signed_links(api: ApiClient) -> None:
    owner, member, stranger = await api.register(), await api.register(), await api.register()
    room = await api.group(owner, member)
    reply = await put_room_avatar(api, owner, room["id"], image_bytes("JPEG"))
    assert reply.status == 200, reply.body
    path = f"/api/v1/media/{media_id_of(reply.body['avatar_url'])}"
    for variant in (path, path + "/thumbnail"):
        assert (await api.get(variant, member["token"])).status == 200
        assert (await api.get(variant, stranger["token"])).status == 404
    assert (await api.get(reply.body["avatar_url"], stranger["token"])).status == 200


async def test_room_avatar_is_refused_to_non_members_direct_rooms_and_non_images(
    api: ApiClient, settings: Settings
) -> None:
    owner, stranger, peer = await api.register(), await api.register(), await api.register()
    room = await api.group(owner)
    hidden = await put_room_avatar(api, stranger, room["id"], image_bytes("PNG"))
    assert (hidden.status, hidden.error_code) == (404, "not_found")
    assert (await api.delete(f"/api/v1/rooms/{room['id']}/avatar", stranger["token"])).status == 404
    direct = await api.direct(owner, peer)
    in_direct = await put_room_avatar(api, owner, direct["id"], image_bytes("PNG"))
    assert (in_direct.status, in_direct.error_code) == (403, "forbidden")
    not_an_image = await put_room_avatar(api, owner, room["id"], b"GIF89a but not really")
    assert (not_an_image.status, not_an_image.error_code) == (415, "unsupported_media_type")
    empty = await put_room_avatar(api, owner, room["id"], b"")
    assert empty.status == 400
    # Nothing changed: no event, no avatar, nothing stored.
    after = (await api.get(f"/api/v1/rooms/{room['id']}", owner["token"])).body
    assert (after["last_seq"], after["avatar_url"]) == (room["last_seq"], None)
    assert stored_keys(settings) == []


async def test_a_new_room_avatar_replaces_the_old_and_delete_removes_it(
    api: ApiClient, settings: Settings
) -> None:
    owner, member = await api.register(), await api.register()
    room = await api.group(owner, member)
    base = f"/api/v1/rooms/{room['id']}"
    first = await put_room_avatar(api, owner, room["id"], image_bytes("GIF"))
    second = await put_room_avatar(api, owner, room["id"], image_bytes("WEBP", (100, 400)))
    assert (first.status, second.status) == (200, 200)
    old_id, new_id = media_id_of(first.body["avatar_url"]), media_id_of(second.body["avatar_url"])
    assert (await api.get(first.body["avatar_url"])).status == 404
    assert (await api.get(second.body["avatar_url"])).status == 200
    keys = stored_keys(settings)
    assert not [key for key in keys if old_id in key]
    assert len([key for key in keys if new_id in key]) == 2  # the avatar and its thumbnail

    refused = await api.delete(f"{base}/avatar", member["token"])
    assert (refused.status, refused.error_code) == (403, "forbidden")
    removed = await api.delete(f"{base}/avatar", owner["token"])
    assert removed.status == 200, removed.body
    assert removed.body["avatar_url"] is None and removed.body["id"] == room["id"]
    assert (await api.get(second.body["avatar_url"])).status == 404
    assert not [key for key in stored_keys(settings) if new_id in key]
    events = (await api.get(f"{base}/events?after_seq={room['last_seq']}", owner["token"])).body
    assert [e["type"] for e in events["events"]] == ["room.updated"] * 3
    assert events["events"][-1]["data"]["avatar_url"] is None
    # Removing an avatar that is not there changes nothing and records nothing.
    again = await api.delete(f"{base}/avatar", owner["token"])
    assert again.status == 200 and again.body["last_seq"] == events["events"][-1]["seq"]


# -- housekeeping and health ---------------------------------------------------------------


def cli_env(database_url: str, settings: Settings) -> dict[str, str]:
    env = cronchat_env(
        database_url, settings.data_dir, CRONCHAT_MEDIA_BACKEND=settings.media_backend
    )
    if settings.media_backend == "s3":
        env.update(
            CRONCHAT_S3_ENDPOINT_URL=settings.s3_endpoint_url,
            CRONCHAT_S3_BUCKET=settings.s3_bucket,
            CRONCHAT_S3_REGION=settings.s3_region,
            CRONCHAT_S3_ACCESS_KEY_ID=S3_KEY,
            CRONCHAT_S3_SECRET_ACCESS_KEY=S3_SECRET,
        )
    return env


async def cronchat(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_prune_removes_unused_uploads_from_database_and_store(
    api: ApiClient, settings: Settings, database_url: str
) -> None:
    alice = await api.register()
    room = await api.group(alice)
    unused, used = await uploaded(api, alice), await uploaded(api, alice)
    assert (await send_image(api, alice, room["id"], used["id"])).status == 201
    env = cli_env(database_url, settings)

    code, out, err = await cronchat(env, "media", "prune", "--json")
    assert code == 0, err
    assert unused["id"] not in json.loads(out)["media_ids"]  # younger than a day

    code, out, err = await cronchat(env, "media", "prune", "--older-than", "0", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert unused["id"] in result["media_ids"] and used["id"] not in result["media_ids"]
    assert result["orphaned_keys"] == []
    assert (await api.get(f"/api/v1/media/{unused['id']}", alice["token"])).status == 404
    assert (await api.get(used["url"])).status == 200
    keys = stored_keys(settings)
    assert not [key for key in keys if unused["id"] in key]
    assert len([key for key in keys if used["id"] in key]) == 2


async def test_readyz_is_503_when_the_store_fails(api: ApiClient, settings: Settings) -> None:
    assert (await api.get("/readyz")).body["checks"]["storage"] is True
    if settings.media_backend == "s3":
        s3_client(settings.s3_endpoint_url).delete_bucket(Bucket=settings.s3_bucket)
    else:
        settings.media_dir.rmdir()  # empty: nothing was uploaded
        settings.media_dir.write_text("a file where the media directory should be")
    ready = await api.get("/readyz")
    assert ready.status == 503
    assert ready.body["checks"]["storage"] is False and ready.body["checks"]["database"] is True


async def test_serve_refuses_to_start_without_its_s3_bucket(
    database_url: str, tmp_path: Path, s3_endpoint: str
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CRONCHAT_")}
    bucket = f"missing-{unique_name('bucket').replace('_', '-')}"
    env.update(
        CRONCHAT_DATABASE_URL=database_url,
        CRONCHAT_DATA_DIR=str(tmp_path / "data"),
        CRONCHAT_JWT_SECRET=JWT_SECRET,
        CRONCHAT_PORT="0",
        CRONCHAT_MEDIA_BACKEND="s3",
        CRONCHAT_S3_ENDPOINT_URL=s3_endpoint,
        CRONCHAT_S3_BUCKET=bucket,
        CRONCHAT_S3_ACCESS_KEY_ID=S3_KEY,
        CRONCHAT_S3_SECRET_ACCESS_KEY=S3_SECRET,
    )
    code, out, err = await cronchat(env, "serve")
    assert code == 1
    assert err.strip().count("\n") == 0, err
    assert err.startswith("error: media storage") and f"'{bucket}' does not exist" in err
