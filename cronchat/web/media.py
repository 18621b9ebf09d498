"""REST handlers of /media, /users/me/avatar and /rooms/{id}/avatar: image bodies in, image
bytes out."""

from __future__ import annotations

import time

import tornado.web
from tornado.httputil import HTTPInputError, parse_body_arguments

from cronchat.errors import Invalid, Unavailable
from cronchat.media_links import ORIGINAL, THUMBNAIL
from cronchat.models import MediaRecord
from cronchat.rate_limits import UPLOADS
from cronchat.views import media_json, room_view_json
from cronchat.web.base import BaseHandler

# Room for a multipart body's boundaries and part headers around the image itself.
MULTIPART_OVERHEAD = 64 * 1024
# What a client is told to wait when every upload slot is taken.
UPLOAD_RETRY_AFTER_MS = 1000


class UploadSlots:
    """How many uploads this process takes at once (``CRONCHAT_MEDIA_MAX_CONCURRENT_UPLOADS``):
    each holds up to the media limit in memory, then decoding time in the blocking pool."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.taken = 0

    def take(self) -> None:
        if self.taken >= self.capacity:
            raise Unavailable(
                "too many uploads at once; try again shortly",
                retry_after_ms=UPLOAD_RETRY_AFTER_MS,
            )
        self.taken += 1

    def give_back(self) -> None:
        self.taken -= 1


class ImageBodyHandler(BaseHandler):
    """Takes an image as its body streams in: the raw bytes, or the multipart field ``file``.

    The body limit is the media limit (BaseHandler judges and counts it); an upload holds
    one of the process's upload slots from its headers to its answer."""

    _holds_slot = False

    rate_rules = {"POST": UPLOADS, "PUT": UPLOADS}

    def body_limit(self) -> int:
        if self.request.method in ("POST", "PUT"):
            return self.runtime.settings.media_max_bytes + MULTIPART_OVERHEAD
        return super().body_limit()

    async def prepare(self) -> None:
        await super().prepare()
        if self.request.method in ("POST", "PUT"):
            self.application.settings["upload_slots"].take()
            self._holds_slot = True

    def on_finish(self) -> None:
        self._give_back_slot()

    def on_connection_close(self) -> None:
        self._give_back_slot()
        super().on_connection_close()

    def _give_back_slot(self) -> None:
        if self._holds_slot:
            self._holds_slot = False
            self.application.settings["upload_slots"].give_back()

    def image_body(self) -> bytes:
        """The image bytes of the body, whichever way they came."""
        body = self.body_bytes()
        content_type = self.request.headers.get("Content-Type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            return body
        arguments: dict[str, list[bytes]] = {}
        files: dict[str, list[tornado.httputil.HTTPFile]] = {}
        try:
            parse_body_arguments(content_type, body, arguments, files, self.request.headers)
        except HTTPInputError:
            raise Invalid("the multipart body is malformed") from None
        if files.get("file"):
            return files["file"][0].body
        if arguments.get("file"):
            return arguments["file"][0]
        raise Invalid("the multipart body has no field named file", field="file")


class UploadHandler(ImageBodyHandler):
    async def post(self) -> None:
        record = await self.services.media.upload(self.principal.user, self.image_body())
        self.write_json(media_json(record.info(), self.links), status=201)


class AvatarHandler(ImageBodyHandler):
    async def put(self) -> None:
        user = await self.services.media.set_avatar(self.principal.user, self.image_body())
        self.write_json(await self.profile_json(user))

    async def delete(self) -> None:
        await self.services.media.remove_avatar(self.principal.user)
        self.no_content()


class RoomAvatarHandler(ImageBodyHandler):
    async def put(self, room_id: str) -> None:
        view = await self.services.rooms.set_avatar(self.principal.user, room_id, self.image_body())
        self.write_json(room_view_json(view, links=self.links))

    async def delete(self, room_id: str) -> None:
        view = await self.services.rooms.remove_avatar(self.principal.user, room_id)
        self.write_json(room_view_json(view, links=self.links))


class MediaFileHandler(BaseHandler):
    """The bytes of an image, to a signed link or to a Bearer token of someone who may see it.

    ``public`` since a signed link needs no token; without a signature, the token is
    required here instead of in ``prepare``. The bytes of an id never change, so the
    client's own cache may keep them (``private``, ``immutable``): for a link, until it
    expires; for a token, as long as a link would live. The grant is checked before the
    ETag, so that a 304 tells nobody more than a 200 would."""

    public = True
    signed_links = True
    variant = ORIGINAL

    async def get(self, media_id: str) -> None:
        expires = self.get_query_argument("expires", None)
        signature = self.get_query_argument("signature", None)
        if expires is None and signature is None:
            principal = await self.services.accounts.authenticate_request(self.bearer_token())
            record = await self.services.media.viewable(principal.user, media_id)
            max_age = self.links.ttl
        else:
            expires_at = self.links.verify(media_id, self.variant, expires, signature)
            record = await self.services.media.get_media(media_id)
            max_age = max(0, expires_at - int(time.time()))
        self.set_header("Content-Type", record.content_type)
        self.set_header("Cache-Control", f"private, max-age={max_age}, immutable")
        self.set_header("Etag", self.etag_of(record))
        if self.check_etag_header():
            self.set_status(304)
            self.finish()
            return
        self.finish(await self.services.media.read(record, self.variant))

    def etag_of(self, record: MediaRecord) -> str:
        suffix = "" if self.variant == ORIGINAL else f"-{self.variant}"
        return f'"{record.checksum}{suffix}"'


class ThumbnailHandler(MediaFileHandler):
    variant = THUMBNAIL
