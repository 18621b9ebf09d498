"""Exports: a zip of everything a user owns, prepared in the background.

``POST /users/me/export`` records a pending export (at most one per 24 hours: a product
rule, not a rate limit, so ``CRONCHAT_RATE_LIMITS=false`` does not lift it) and prepares it
after the answer: the database is read a page at a time in its threads, and each page is
encoded and written into the zip in the blocking pool, never on the IOLoop; only a page of
rows (or one image) is held at once, whatever the account's size. The zip goes to the media
store (local or S3) and is downloaded through a signed, expiring link. ``cronchat user
export`` writes the same zip to a file.

The zip holds JSON Lines files: ``profile``, ``sessions`` (no tokens), ``memberships``,
``messages`` (each with its edits), ``reactions``, ``uploads`` (and the image files under
``media/``), ``blocks``, ``settings`` and ``reports`` (those the user filed).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from cronchat.blocking import BlockingPool
from cronchat.db import Database, Row, Tx
from cronchat.errors import Forbidden, NotFound, RateLimited
from cronchat.ids import new_id
from cronchat.models import Export, MediaRecord, User
from cronchat.repos import exports, users
from cronchat.times import now_ms, rfc3339
from storage import MissingObject, Storage

log = logging.getLogger("cronchat.exports")

EXPORT_EVERY_MS = 24 * 3600 * 1000  # at most one export per user in this window
EXPORT_KEPT_MS = 7 * 24 * 3600 * 1000  # how long a ready export stays downloadable
PAGE = 1000  # rows read and written at a time
DOWNLOAD_PATH = "/api/v1/exports"
_KEY_PURPOSE = b"cronchat export links v1"


@dataclass(frozen=True, slots=True)
class ExportStatus:
    """An export as its owner sees it: with a signed download ``url`` while it is ready and
    kept."""

    export: Export
    url: str | None


class ExportStopped(Exception):
    """The server is stopping: an export being prepared stops between two pages (it stays
    pending)."""


class ExportLinks:
    """Signed, expiring download links, as :mod:`cronchat.media_links` makes for images:
    HMAC-SHA256 over the export id and the expiry, under a key of its own."""

    def __init__(self, server_secret: str, ttl: int) -> None:
        self._key = hmac.new(server_secret.encode(), _KEY_PURPOSE, hashlib.sha256).digest()
        self.ttl = ttl

    def url(self, export_id: str, not_after: int) -> str:
        """A link valid for ``ttl`` seconds, and not past ``not_after`` (Unix seconds)."""
        expires = min(int(time.time()) + self.ttl, not_after)
        signature = self._sign(export_id, expires)
        return f"{DOWNLOAD_PATH}/{export_id}/download?expires={expires}&signature={signature}"

    def verify(self, export_id: str, expires: str | None, signature: str | None) -> None:
        """Forbidden for a forged or expired link."""
        if not expires or not signature or not (expires.isascii() and expires.isdigit()):
            raise Forbidden("the download link is not valid")
        if len(expires) > 12:
            raise Forbidden("the download link is not valid")
        expected = self._sign(export_id, int(expires))
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise Forbidden("the download link is not valid")
        if int(expires) <= time.time():
            raise Forbidden("the download link has expired; ask for the export again")

    def _sign(self, export_id: str, expires: int) -> str:
        digest = hmac.new(self._key, f"{export_id}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class ZipLines:
    """A zip written entry by entry, a JSON Lines entry a page of records at a time. Every
    method blocks: call each from the blocking pool, one at a time."""

    def __init__(self, out: IO[bytes]) -> None:
        self._zip = zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED)
        self._entry: IO[bytes] | None = None

    def begin(self, name: str) -> None:
        self._entry = self._zip.open(name, "w", force_zip64=True)

    def write_lines(self, records: list[dict[str, Any]]) -> None:
        assert self._entry is not None
        self._entry.write(
            b"".join(
                json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
                for record in records
            )
        )

    def end(self) -> None:
        assert self._entry is not None
        self._entry.close()
        self._entry = None

    def write_file(self, name: str, data: bytes) -> None:
        self._zip.writestr(name, data, zipfile.ZIP_STORED)  # images are compressed already

    def close(self) -> None:
        """Close the zip, and first an entry left open (by an export that stopped)."""
        if self._entry is not None:
            self.end()
        self._zip.close()


class Exports:
    def __init__(
        self, db: Database, blocking: BlockingPool, storage: Storage, links: ExportLinks
    ) -> None:
        self.db = db
        self.blocking = blocking
        self.storage = storage
        self.links = links
        self._preparing: set[asyncio.Task[None]] = set()
        self._stopping = False

    # -- asking and answering ------------------------------------------------------------

    async def request(self, user: User) -> ExportStatus:
        """Record a pending export and prepare it in the background; a second request
        within 24 hours of the last (that did not fail) is 429 with its ``Retry-After``."""
        export = await self.db.run(self._request_tx, user.id, new_id())
        task = asyncio.create_task(self._prepare(export))
        self._preparing.add(task)
        task.add_done_callback(self._preparing.discard)
        log.info("export requested export_id=%s user_id=%s", export.id, user.id)
        return ExportStatus(export, None)

    @staticmethod
    def _request_tx(tx: Tx, user_id: str, export_id: str) -> Export:
        users.find_user(tx, user_id, lock=True)  # one request of a user at a time
        now = now_ms()
        last = exports.last_requested_at(tx, user_id)
        if last is not None and now - last < EXPORT_EVERY_MS:
            raise RateLimited(
                "an export may be asked for once per 24 hours", last + EXPORT_EVERY_MS - now
            )
        return exports.insert_export(tx, export_id, user_id, now)

    async def status(self, user: User, export_id: str) -> ExportStatus:
        """One of the user's exports (another user's is 404), with a fresh link when ready."""
        export = await self.db.read(self._status_tx, user.id, export_id)
        return ExportStatus(export, self._link(export))

    @staticmethod
    def _status_tx(tx: Tx, user_id: str, export_id: str) -> Export:
        export = exports.find_export(tx, user_id, export_id)
        if export is None:
            raise NotFound("no such export")
        return export

    def _link(self, export: Export) -> str | None:
        if export.status != "ready" or export.expires_at is None:
            return None
        if export.expires_at <= now_ms():
            return None
        return self.links.url(export.id, export.expires_at // 1000)

    async def download(self, export_id: str, expires: str | None, signature: str | None) -> bytes:
        """The zip of a signed link (the link is the grant, while the export is kept)."""
        self.links.verify(export_id, expires, signature)
        export = await self.db.read(self._download_tx, export_id)
        assert export.storage_key is not None
        try:
            return await self.blocking.run(self.storage.get, export.storage_key)
        except MissingObject:
            raise NotFound("no such export") from None

    @staticmethod
    def _download_tx(tx: Tx, export_id: str) -> Export:
        export = exports.find_export_by_id(tx, export_id)
        if (
            export is None
            or export.status != "ready"
            or export.expires_at is None
            or export.expires_at <= now_ms()
        ):
            raise NotFound("no such export")
        return export

    # -- preparing -----------------------------------------------------------------------

    async def _prepare(self, export: Export) -> None:
        key = f"export/{export.id[-2:]}/{export.id}.zip"
        try:
            with tempfile.TemporaryFile() as out:
                await self.write_zip(export.user_id, out)
                size = await self.blocking.run(_put_file, self.storage, key, out)
            now = now_ms()
            await self.db.run(_ready_tx, export.id, key, size, now, now + EXPORT_KEPT_MS)
            log.info("export ready export_id=%s size=%d", export.id, size)
        except ExportStopped:
            log.info("export stopped export_id=%s: the server is stopping", export.id)
        except Exception:
            log.exception("export failed export_id=%s", export.id)
            await self.db.run(_failed_tx, export.id)

    async def write_zip(self, user_id: str, out: IO[bytes]) -> None:
        """Write the user's export into ``out``: rows read a page at a time, each page
        encoded and written in the blocking pool."""
        run = self.blocking.run
        zipper = ZipLines(out)
        try:
            for name, read in _WHOLE_FILES:
                records = await self.db.read(read, user_id)
                await run(_write_entry, zipper, name, records)
            await self._write_pages(zipper, "messages.jsonl", _messages_tx, user_id, "")
            await self._write_pages(zipper, "reactions.jsonl", _reactions_tx, user_id, ("", ""))
            await self._write_pages(zipper, "uploads.jsonl", _uploads_tx, user_id, "")
            await self._write_media(zipper, user_id)
        finally:
            # Each step is awaited to its end, never cancelled, so that no thread still
            # writes when the zip is closed.
            await run(zipper.close)

    async def _write_pages(
        self,
        zipper: ZipLines,
        name: str,
        read: Callable[[Tx, str, Any], tuple[list[dict[str, Any]], Any]],
        user_id: str,
        after: Any,
    ) -> None:
        await self.blocking.run(zipper.begin, name)
        while after is not None:
            self._check_running()
            records, after = await self.db.read(read, user_id, after)
            await self.blocking.run(zipper.write_lines, records)
        await self.blocking.run(zipper.end)

    async def _write_media(self, zipper: ZipLines, user_id: str) -> None:
        """The image files of the uploads, one at a time, under ``media/``."""
        after = ""
        while True:
            page = await self.db.read(_upload_records_tx, user_id, after)
            for record in page:
                self._check_running()
                await self.blocking.run(_copy_image, self.storage, zipper, record)
            if len(page) < PAGE:
                return
            after = page[-1].id

    def _check_running(self) -> None:
        if self._stopping:
            raise ExportStopped

    async def close(self) -> None:
        """Stop the exports still being prepared, each at its next page (they stay
        pending), and wait for them."""
        self._stopping = True
        await asyncio.gather(*self._preparing, return_exceptions=True)


def _put_file(storage: Storage, key: str, out: IO[bytes]) -> int:
    out.seek(0)
    data = out.read()
    storage.put(key, data, "application/zip")
    return len(data)


def _ready_tx(tx: Tx, export_id: str, key: str, size: int, now: int, expires_at: int) -> None:
    exports.mark_ready(tx, export_id, key, size, now, expires_at)


def _failed_tx(tx: Tx, export_id: str) -> None:
    exports.mark_failed(tx, export_id)


def _write_entry(zipper: ZipLines, name: str, records: list[dict[str, Any]]) -> None:
    zipper.begin(name)
    zipper.write_lines(records)
    zipper.end()


def _copy_image(storage: Storage, zipper: ZipLines, record: MediaRecord) -> None:
    extension = record.storage_key.rsplit(".", 1)[-1]
    try:
        data = storage.get(record.storage_key)
    except MissingObject:
        log.warning("export skipped missing media media_id=%s", record.id)
        return
    zipper.write_file(f"media/{record.id}.{extension}", data)


# -- the records of each file (read in the database's threads) -------------------------------


def _times(row: Row, *names: str) -> dict[str, Any]:
    return {**row, **{name: rfc3339(row[name]) for name in names}}


def _profile_tx(tx: Tx, user_id: str) -> list[dict[str, Any]]:
    row = exports.profile_of(tx, user_id)
    if row is None:
        raise NotFound("no such user")
    return [
        {
            **_times(row, "created_at", "updated_at", "last_seen_at"),
            "is_admin": bool(row["is_admin"]),
        }
    ]


def _sessions_tx(tx: Tx, user_id: str) -> list[dict[str, Any]]:
    return [
        _times(row, "created_at", "last_used_at", "revoked_at")
        for row in exports.sessions_of(tx, user_id)
    ]


def _memberships_tx(tx: Tx, user_id: str) -> list[dict[str, Any]]:
    return [
        {
            "room_id": row["room_id"],
            "kind": row["kind"],
            "name": row["name"],
            "role": row["role"],
            "joined_at": rfc3339(row["joined_at"]),
            "last_read_seq": row["last_read_seq"],
            "muted_until": rfc3339(row["muted_until"]),
        }
        for row in exports.memberships_of(tx, user_id)
    ]


def _settings_tx(tx: Tx, user_id: str) -> list[dict[str, Any]]:
    return [
        {
            "room_id": row["room_id"],
            "level": row["notify_level"],
            "room_mentions": bool(row["notify_room_mentions"]),
            "muted_until": rfc3339(row["notify_muted_until"]),
        }
        for row in exports.memberships_of(tx, user_id)
    ]


def _blocks_tx(tx: Tx, user_id: str) -> list[dict[str, Any]]:
    return [
        {"user_id": row["blocked_id"], "created_at": rfc3339(row["created_at"])}
        for row in exports.blocks_of(tx, user_id)
    ]


def _reports_tx(tx: Tx, user_id: str) -> list[dict[str, Any]]:
    return [
        _times(row, "created_at", "handled_at") for row in exports.reports_filed_by(tx, user_id)
    ]


_WHOLE_FILES: tuple[tuple[str, Callable[[Tx, str], list[dict[str, Any]]]], ...] = (
    ("profile.jsonl", _profile_tx),
    ("sessions.jsonl", _sessions_tx),
    ("memberships.jsonl", _memberships_tx),
    ("settings.jsonl", _settings_tx),
    ("blocks.jsonl", _blocks_tx),
    ("reports.jsonl", _reports_tx),
)


def _messages_tx(tx: Tx, user_id: str, after: str) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the user's messages, each with its edits; then the key of the next page
    (None after the last)."""
    rows = exports.messages_page(tx, user_id, after, PAGE)
    edits: dict[str, list[dict[str, Any]]] = {}
    for edit in exports.edits_of(tx, [row["id"] for row in rows]):
        data = json.loads(edit["data"])
        edits.setdefault(edit["message_id"], []).append(
            {"at": rfc3339(edit["at"]), "text": data.get("text")}
        )
    records = [
        {
            **_times(row, "created_at", "edited_at", "deleted_at"),
            "deleted": row["deleted_at"] is not None,
            "edits": edits.get(row["id"], []),
        }
        for row in rows
    ]
    return records, (rows[-1]["id"] if len(rows) == PAGE else None)


def _reactions_tx(
    tx: Tx, user_id: str, after: tuple[str, str]
) -> tuple[list[dict[str, Any]], tuple[str, str] | None]:
    rows = exports.reactions_page(tx, user_id, after, PAGE)
    records = [_times(row, "created_at") for row in rows]
    following = (rows[-1]["message_id"], rows[-1]["emoji"]) if len(rows) == PAGE else None
    return records, following


def _upload_records_tx(tx: Tx, user_id: str, after: str) -> list[MediaRecord]:
    return exports.uploads_page(tx, user_id, after, PAGE)


def _uploads_tx(tx: Tx, user_id: str, after: str) -> tuple[list[dict[str, Any]], str | None]:
    page = exports.uploads_page(tx, user_id, after, PAGE)
    records = [
        {
            "id": record.id,
            "purpose": record.purpose,
            "content_type": record.content_type,
            "width": record.width,
            "height": record.height,
            "size": record.size,
            "created_at": rfc3339(record.created_at),
            "file": f"media/{record.id}.{record.storage_key.rsplit('.', 1)[-1]}",
        }
        for record in page
    ]
    return records, (page[-1].id if len(page) == PAGE else None)
