"""Media: uploads for image messages, user and room avatars, who may load which image, and
pruning.

The image work (decoding, re-encoding, thumbnails) and every storage call run in the
blocking pool, never on the IOLoop. Bytes go to the store before the record is committed and
leave it after the record is gone, so that a record never names bytes that are missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field

from cronchat import images
from cronchat.blocking import BlockingPool
from cronchat.db import Database, Tx
from cronchat.errors import Invalid, NotFound, PayloadTooLarge, Unavailable
from cronchat.ids import new_id
from cronchat.media_links import THUMBNAIL
from cronchat.models import MediaRecord, User
from cronchat.realtime.notifier import Notifier
from cronchat.repos import media, reports, rooms, users
from cronchat.times import now_ms
from storage import MissingObject, Storage, StorageError

log = logging.getLogger("cronchat.media")

MESSAGE, AVATAR, ROOM_AVATAR = "message", "avatar", "room_avatar"
PRUNE_BATCH = 500
READY_TIMEOUT_SECONDS = 10


@dataclass(slots=True)
class Pruned:
    """What a prune removed, and the stored objects it could not delete (now orphans)."""

    media_ids: list[str] = field(default_factory=list)
    orphaned_keys: list[str] = field(default_factory=list)


class Media:
    def __init__(
        self,
        db: Database,
        blocking: BlockingPool,
        storage: Storage,
        max_bytes: int,
        limits: images.Limits,
        notify: Notifier,
    ) -> None:
        self.db = db
        self.blocking = blocking
        self.storage = storage
        self.max_bytes = max_bytes
        self.limits = limits
        self.notify = notify

    # -- uploading -----------------------------------------------------------------------

    async def upload(self, user: User, data: bytes) -> MediaRecord:
        """An image for a message, stored re-encoded; unused until a message carries it."""
        encoded = await self._prepare(images.prepare_upload, data)
        record = await self._store(user.id, MESSAGE, encoded, used_at=None)
        try:
            await self.db.run(_insert_media_tx, record)
        except BaseException:
            await self._delete_objects(record)
            raise
        log.info("media uploaded media_id=%s user_id=%s size=%d", record.id, user.id, record.size)
        return record

    async def set_avatar(self, user: User, data: bytes) -> User:
        """Replace the user's avatar; the old one is deleted. The user's rooms hear of it."""
        record = await self.store_avatar(user.id, AVATAR, data)
        try:
            updated, old, room_ids = await self.db.run(self._set_avatar_tx, user.id, record)
        except BaseException:
            await self._delete_objects(record)
            raise
        await self.notify.user_updated(updated, room_ids)
        if old is not None:
            await self._delete_objects(old)
        return updated

    async def remove_avatar(self, user: User) -> None:
        updated, old, room_ids = await self.db.run(self._set_avatar_tx, user.id, None)
        if old is not None:
            await self.notify.user_updated(updated, room_ids)
            await self._delete_objects(old)

    async def store_avatar(self, owner_id: str, purpose: str, data: bytes) -> MediaRecord:
        """An avatar image checked, re-encoded and put in the store. Its record is not
        written: the transaction that puts the avatar in place writes it, and whoever called
        this calls :meth:`discard` if that transaction fails."""
        encoded = await self._prepare(images.prepare_avatar, data)
        return await self._store(owner_id, purpose, encoded, used_at=now_ms())

    async def discard(self, record: MediaRecord) -> None:
        """Remove an image's bytes from the store once its record is gone (or was never
        written); a failure is logged and leaves an orphan, not an error."""
        await self._delete_objects(record)

    @staticmethod
    def _set_avatar_tx(
        tx: Tx, user_id: str, record: MediaRecord | None
    ) -> tuple[User, MediaRecord | None, list[str]]:
        # The user's row stays locked, so that two avatar changes at once cannot both
        # replace the same old avatar and leave one new avatar behind.
        current = users.find_user(tx, user_id, lock=True)
        if current is None:
            raise NotFound("no such user")
        old = (
            media.find_media(tx, current.avatar_media_id, lock=True)
            if current.avatar_media_id
            else None
        )
        if record is not None:
            media.insert_media(tx, record)
        users.update_profile(
            tx, user_id, {"avatar_media_id": record.id if record else None}, now_ms()
        )
        if old is not None:
            media.delete_media(tx, [old.id])
        updated = users.find_user(tx, user_id)
        assert updated is not None
        return updated, old, rooms.room_ids_of(tx, user_id)

    async def _prepare(self, prepare: images.Prepare, data: bytes) -> images.EncodedImage:
        if not data:
            raise Invalid("the body holds no image", field="file")
        if len(data) > self.max_bytes:
            raise PayloadTooLarge(f"an image may be at most {self.max_bytes} bytes")
        return await self.blocking.run(prepare, data, self.limits)

    async def _store(
        self, owner_id: str, purpose: str, encoded: images.EncodedImage, used_at: int | None
    ) -> MediaRecord:
        media_id = new_id()
        # The random end of the id spreads the files over 1024 directories.
        prefix = f"{purpose}/{media_id[-2:]}/{media_id}"
        record = MediaRecord(
            id=media_id,
            owner_id=owner_id,
            purpose=purpose,
            storage_key=f"{prefix}.{encoded.extension}",
            thumbnail_key=f"{prefix}-thumbnail.{encoded.extension}",
            content_type=encoded.content_type,
            width=encoded.width,
            height=encoded.height,
            size=len(encoded.data),
            checksum=hashlib.sha256(encoded.data).hexdigest(),
            created_at=now_ms(),
            used_at=used_at,
        )
        try:
            await self.blocking.run(
                self.storage.put, record.storage_key, encoded.data, record.content_type
            )
            await self.blocking.run(
                self.storage.put, record.thumbnail_key, encoded.thumbnail, record.content_type
            )
        except StorageError as error:
            log.error("media store failed media_id=%s reason=%s", media_id, error)
            await self._delete_objects(record)
            raise Unavailable("media storage is unavailable, try again shortly") from None
        return record

    # -- loading -------------------------------------------------------------------------

    async def viewable(self, user: User, media_id: str) -> MediaRecord:
        """The record, if the user may see it: their own upload, a user's avatar, the avatar
        of one of their rooms, an image sent in one of their rooms, or the image of an open
        report they moderate (also of a deleted message, until the report is handled).
        Anything else does not exist for them."""
        return await self.db.read(self._viewable_tx, user.id, user.is_admin, media_id)

    @staticmethod
    def _viewable_tx(tx: Tx, user_id: str, is_admin: bool, media_id: str) -> MediaRecord:
        record = media.find_media(tx, media_id)
        if record is None or not (
            record.purpose == AVATAR
            or (
                record.purpose == ROOM_AVATAR
                and rooms.is_avatar_of_members_room(tx, media_id, user_id)
            )
            or media.is_shared_with(tx, media_id, user_id)
            or (record.owner_id == user_id and _is_live(tx, record))
            or (
                record.purpose == MESSAGE
                and reports.is_reported_to(tx, media_id, user_id, is_admin)
            )
        ):
            raise NotFound("no such media")
        return record

    async def get_media(self, media_id: str) -> MediaRecord:
        """The record, with no access check: for a signed link, which is the grant itself
        while the media lives (an upload of a deleted message loads no more)."""
        return await self.db.read(self._linked_tx, media_id)

    @staticmethod
    def _linked_tx(tx: Tx, media_id: str) -> MediaRecord:
        record = media.find_media(tx, media_id)
        if record is None or not _is_live(tx, record):
            raise NotFound("no such media")
        return record

    async def read(self, record: MediaRecord, variant: str) -> bytes:
        """The stored bytes of the image or its thumbnail."""
        key = record.thumbnail_key if variant == THUMBNAIL else record.storage_key
        try:
            return await self.blocking.run(self.storage.get, key)
        except MissingObject:
            log.warning("media bytes missing media_id=%s variant=%s", record.id, variant)
            raise NotFound("no such media") from None
        except StorageError as error:
            log.error("media read failed media_id=%s reason=%s", record.id, error)
            raise Unavailable("media storage is unavailable, try again shortly") from None

    # -- housekeeping --------------------------------------------------------------------

    async def prune(self, older_than_hours: float = 24) -> Pruned:
        """Remove uploads never used in a message and older than the given hours, from the
        database first, then from the store."""
        if older_than_hours < 0:
            raise Invalid("older_than must not be negative", field="older_than")
        cutoff = now_ms() - int(older_than_hours * 3_600_000)
        pruned = Pruned()
        while True:
            removed = await self.db.run(self._prune_tx, cutoff)
            for record in removed:
                pruned.media_ids.append(record.id)
                pruned.orphaned_keys.extend(await self._delete_objects(record))
            if len(removed) < PRUNE_BATCH:
                break
        log.info(
            "media pruned count=%d orphaned=%d", len(pruned.media_ids), len(pruned.orphaned_keys)
        )
        return pruned

    @staticmethod
    def _prune_tx(tx: Tx, cutoff: int) -> list[MediaRecord]:
        # Locked rows: a message claiming one of them waits, then finds it gone.
        removed = media.unused_before(tx, cutoff, PRUNE_BATCH)
        media.delete_media(tx, [record.id for record in removed])
        return removed

    async def remove_files(self, record: MediaRecord) -> None:
        """Remove the image and its thumbnail of a record already deleted (a redacted
        message's media); a failure leaves orphans, logged."""
        failed = await self._delete_objects(record)
        log.info("media removed media_id=%s orphaned=%d", record.id, len(failed))

    async def _delete_objects(self, record: MediaRecord) -> list[str]:
        """Delete the image and its thumbnail from the store; answers the keys that failed
        (logged, not raised: the record is gone, and the bytes are only orphans now)."""
        failed = []
        for key in (record.storage_key, record.thumbnail_key):
            try:
                await self.blocking.run(self.storage.delete, key)
            except StorageError as error:
                log.warning("media delete failed key=%s reason=%s", key, error)
                failed.append(key)
        return failed

    async def storage_ready(self) -> bool:
        """Whether the store answers, for /readyz."""
        try:
            await asyncio.wait_for(self.blocking.run(self.storage.check), READY_TIMEOUT_SECONDS)
        except (StorageError, TimeoutError) as error:
            log.warning("media storage not ready reason=%s", error or "timeout")
            return False
        return True


def _is_live(tx: Tx, record: MediaRecord) -> bool:
    """Whether media may still load: anything but a message upload, an upload not yet sent,
    or one that a live message carries. A redacted message's media record is deleted with
    it; this also holds for one deleted before redaction existed."""
    return record.purpose != MESSAGE or record.used_at is None or media.is_carried(tx, record.id)


def _insert_media_tx(tx: Tx, record: MediaRecord) -> None:
    media.insert_media(tx, record)
