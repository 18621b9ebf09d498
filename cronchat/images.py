"""Uploaded images, judged and re-encoded with Pillow.

The bytes decide what an upload is, never its name or its Content-Type: only what Pillow
decodes as PNG, JPEG, GIF or WebP is accepted. The pixel count is checked from the header,
before anything is decoded, so that a small file declaring huge dimensions (a decompression
bomb) costs nothing. What is stored is re-encoded from the pixels alone, in the format it
came in: no EXIF, no GPS, no ICC profile, no comments or text chunks survive, and the EXIF
orientation is applied to the pixels first.

Everything here is CPU-bound and blocking: callers run it in the blocking pool.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
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


# The signature of prepare_upload and prepare_avatar: (bytes, max_pixels) -> EncodedImage.
Prepare = Callable[[bytes, int], EncodedImage]


def prepare_upload(data: bytes, max_pixels: int) -> EncodedImage:
    """An upload for messages, re-encoded whole (animations stay animated), with a
    thumbnail that fits 320x320."""
    with _open(data, max_pixels) as image:
        out_format = FORMATS[image.format or ""][0]
        if getattr(image, "is_animated", False) and out_format in ("GIF", "WEBP"):
            frames, durations = _frames(image)
            first = frames[0]
            encoded = _encode_animation(frames, durations, image.info.get("loop"), out_format)
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


def prepare_avatar(data: bytes, max_pixels: int) -> EncodedImage:
    """An avatar: the first frame, upright, center-cropped square and at most 256 px, with a
    64 px thumbnail."""
    with _open(data, max_pixels) as image:
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


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """The image, its header read and its size checked, nothing decoded yet."""
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
    # Pillow's own bomb limit also caps ours, whatever the configuration says.
    limit = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
    if width < 1 or height < 1 or width * height * frames > limit:
        image.close()
        raise _bomb(limit)
    return image


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


def _frames(image: Image.Image) -> tuple[list[Image.Image], list[int]]:
    """Every frame of an animation, decoded as RGBA, with its duration in ms."""
    frames, durations = [], []
    try:
        for frame in ImageSequence.Iterator(image):
            durations.append(int(frame.info.get("duration", 100)))
            frames.append(_clean(frame.convert("RGBA")))
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
    frames: list[Image.Image], durations: list[int], loop: int | None, out_format: str
) -> bytes:
    """All frames; ``loop`` None plays once (as a GIF without a loop count does)."""
    options = dict(_SAVE_OPTIONS[out_format])
    if loop is not None:
        options["loop"] = loop
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        format=out_format,
        save_all=True,
        append_images=frames[1:],
        duration=durations,
        **options,
    )
    return buffer.getvalue()
