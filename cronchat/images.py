"""Uploaded images, judged and re-encoded with Pillow.

The bytes decide what an upload is, never its name or its Content-Type: only what Pillow
decodes as PNG, JPEG, GIF or WebP is accepted. The pixel count and the frame count are
checked from the headers, before anything is decoded, so that a small file declaring huge
dimensions (a decompression bomb) or thousands of tiny frames costs nothing; an animation
must also decode within a deadline, checked between frames. What is stored is re-encoded
from the pixels alone, in the format it came in: no EXIF, no GPS, no ICC profile, no comments
or text chunks survive, and the EXIF orientation is applied to the pixels first.

Everything here is CPU-bound and blocking: callers run it in the blocking pool.
"""

from __future__ import annotations

import io
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from PIL import Image, ImageOps, ImageSequence

from cronchat.errors import UnsupportedMediaType

# Pillow format -> (format written, content type). Phones' multi-picture JPEGs open as MPO.
FORMATS = {
    "PNG": ("PNG", "image/png"),
    "JPEG": ("JPEG", "image/jpeg"),
    "MPO": ("JPEG", "image/jpeg"),
    "GIF": ("GIF", "image/gif"),
    "WEBP": ("WEBP", "image/webp"),
}
# The decoders tried; JPEG's also opens MPO.
_OPENED_AS = ["PNG", "JPEG", "GIF", "WEBP"]
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "WEBP": "webp"}
THUMBNAIL_BOX = (320, 320)
AVATAR_SIZE, AVATAR_THUMBNAIL_SIZE = 256, 64

_SAVE_OPTIONS: dict[str, dict] = {
    "PNG": {},
    "JPEG": {"quality": 88},
    "GIF": {},
    "WEBP": {"quality": 85},
}
# What Pillow raises for bytes it cannot decode: unknown, truncated or corrupt images.
_UNDECODABLE = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)
_NOT_AN_IMAGE = "the body is not a PNG, JPEG, GIF or WebP image"


@dataclass(frozen=True, slots=True)
class EncodedImage:
    """What is stored of an image: the re-encoded bytes, their thumbnail, and what they are."""

    content_type: str
    extension: str
    width: int
    height: int
    data: bytes
    thumbnail: bytes


@dataclass(frozen=True, slots=True)
class Limits:
    """What an upload may cost: pixels of all frames together, frames, and the seconds an
    animation may take to decode and re-encode."""

    max_pixels: int
    max_frames: int
    max_decode_seconds: float


# The signature of prepare_upload and prepare_avatar: (bytes, limits) -> EncodedImage.
Prepare = Callable[[bytes, Limits], EncodedImage]


def prepare_upload(data: bytes, limits: Limits) -> EncodedImage:
    """An upload for messages, re-encoded whole (animations stay animated), with a
    thumbnail that fits 320x320."""
    with _open(data, limits) as image:
        out_format = FORMATS[image.format or ""][0]
        if getattr(image, "is_animated", False) and out_format in ("GIF", "WEBP"):
            deadline = _Deadline(limits.max_decode_seconds)
            frames, durations = _frames(image, deadline)
            first = frames[0]
            encoded = _encode_animation(
                frames, durations, image.info.get("loop"), out_format, deadline
            )
        else:
            first = _upright(_decoded(image))
            encoded = _encode(first, out_format)
        thumbnail = _flat(first)
        thumbnail.thumbnail(THUMBNAIL_BOX, Image.Resampling.LANCZOS)
        return EncodedImage(
            content_type=FORMATS[image.format or ""][1],
            extension=EXTENSIONS[out_format],
            width=first.width,
            height=first.height,
            data=encoded,
            thumbnail=_encode(thumbnail, out_format),
        )


def prepare_avatar(data: bytes, limits: Limits) -> EncodedImage:
    """An avatar: the first frame, upright, center-cropped square and at most 256 px, with a
    64 px thumbnail."""
    with _open(data, limits) as image:
        out_format = FORMATS[image.format or ""][0]
        upright = _flat(_upright(_decoded(image)))
        side = min(AVATAR_SIZE, upright.width, upright.height)
        square = ImageOps.fit(upright, (side, side), Image.Resampling.LANCZOS)
        small = min(AVATAR_THUMBNAIL_SIZE, side)
        thumbnail = square.resize((small, small), Image.Resampling.LANCZOS)
        return EncodedImage(
            content_type=FORMATS[image.format or ""][1],
            extension=EXTENSIONS[out_format],
            width=side,
            height=side,
            data=_encode(square, out_format),
            thumbnail=_encode(thumbnail, out_format),
        )


def _open(data: bytes, limits: Limits) -> Image.Image:
    """The image, its header read and its size and frame count checked, nothing decoded yet
    (counting GIF frames skips over their data without decoding it)."""
    try:
        image = Image.open(io.BytesIO(data), formats=_OPENED_AS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _bomb() from None
    except _UNDECODABLE:
        raise UnsupportedMediaType(_NOT_AN_IMAGE) from None
    try:
        width, height = image.size
        frames = getattr(image, "n_frames", 1)
    except _UNDECODABLE:
        image.close()
        raise UnsupportedMediaType(_NOT_AN_IMAGE) from None
    if frames > limits.max_frames:
        image.close()
        raise UnsupportedMediaType(
            f"the animation has {frames} frames; an image may have at most "
            f"{limits.max_frames} frames"
        )
    # Pillow's own bomb limit also caps ours, whatever the configuration says.
    limit = min(limits.max_pixels, Image.MAX_IMAGE_PIXELS or limits.max_pixels)
    if width < 1 or height < 1 or width * height * frames > limit:
        image.close()
        raise _bomb(limit)
    return image


class _Deadline:
    """The moment by which an animation must be decoded and re-encoded; checked between
    frames, so that a slow animation costs at most one frame past it."""

    __slots__ = ("_at", "_seconds")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._at = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self._at:
            raise UnsupportedMediaType(
                f"the animation takes too long to decode (more than {self._seconds:g} seconds)"
            )


def _bomb(limit: int | None = None) -> UnsupportedMediaType:
    within = f" (at most {limit} pixels, all frames together)" if limit else ""
    return UnsupportedMediaType(f"the image is too large to decode{within}")


def _decoded(image: Image.Image) -> Image.Image:
    """The first frame, fully decoded: a truncated or corrupt image fails here."""
    try:
        image.seek(0)
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _bomb() from None
    except _UNDECODABLE:
        raise UnsupportedMediaType(_NOT_AN_IMAGE) from None
    return image


def _frames(image: Image.Image, deadline: _Deadline) -> tuple[list[Image.Image], list[int]]:
    """Every frame of an animation, decoded as RGBA, with its duration in ms."""
    frames, durations = [], []
    try:
        for frame in ImageSequence.Iterator(image):
            durations.append(int(frame.info.get("duration", 100)))
            frames.append(_clean(frame.convert("RGBA")))
            deadline.check()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _bomb() from None
    except _UNDECODABLE:
        raise UnsupportedMediaType(_NOT_AN_IMAGE) from None
    return frames, durations


def _upright(image: Image.Image) -> Image.Image:
    """The pixels turned as the EXIF orientation says, as a new image without metadata."""
    return _clean(ImageOps.exif_transpose(image))


def _clean(image: Image.Image) -> Image.Image:
    """A copy that carries pixels only: of the metadata, just the palette transparency."""
    copy = image.copy()
    copy.info = {"transparency": image.info["transparency"]} if "transparency" in image.info else {}
    return copy


def _flat(image: Image.Image) -> Image.Image:
    """The image in a mode that resizes well: L, RGB or RGBA."""
    if image.mode in ("L", "RGB", "RGBA"):
        return _clean(image)
    return _clean(image.convert("RGBA" if image.has_transparency_data else "RGB"))


def _encode(image: Image.Image, out_format: str) -> bytes:
    if out_format == "JPEG" and image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    elif out_format == "WEBP" and image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if image.has_transparency_data else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=out_format, **_SAVE_OPTIONS[out_format])
    return buffer.getvalue()


def _encode_animation(
    frames: list[Image.Image],
    durations: list[int],
    loop: int | None,
    out_format: str,
    deadline: _Deadline,
) -> bytes:
    """All frames; ``loop`` None plays once (as a GIF without a loop count does). The GIF
    encoder takes its frames one at a time, so the deadline is checked between them; the
    WebP encoder needs them all at once."""
    options = dict(_SAVE_OPTIONS[out_format])
    if loop is not None:
        options["loop"] = loop
    rest: Iterable[Image.Image] = frames[1:]
    if out_format == "GIF":
        rest = _checked(rest, deadline)
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        format=out_format,
        save_all=True,
        append_images=rest,
        duration=durations,
        **options,
    )
    deadline.check()
    return buffer.getvalue()


def _checked(frames: Iterable[Image.Image], deadline: _Deadline) -> Iterator[Image.Image]:
    for frame in frames:
        deadline.check()
        yield frame
