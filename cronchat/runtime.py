"""One assembly: config -> database, storage, services, broker, hub. The server, the CLI and
the tests all build the runtime here, so they run the same wiring."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass

from cronchat.blocking import BlockingPool
from cronchat.config import ConfigError, Settings
from cronchat.cursors import Cursors
from cronchat.db import Database
from cronchat.db.migrations import migrate, require_current_schema
from cronchat.egress import Egress
from cronchat.errors import DomainError
from cronchat.images import Limits
from cronchat.media_links import MediaLinks
from cronchat.metrics import Metrics
from cronchat.push.delivery import CLOSE_SECONDS, PushDelivery
from cronchat.push.vapid import VapidKeys
from cronchat.rate_limits import RateLimits
from cronchat.realtime.broker import Broker, InProcessBroker
from cronchat.realtime.db_relay import DatabaseBroker, NoticeRelay
from cronchat.realtime.hub import Hub
from cronchat.realtime.notifier import Notifier
from cronchat.realtime.presence_store import LocalPresence, PresenceStore, RedisPresence
from cronchat.realtime.readers import StoredEvents, StoredReadStates
from cronchat.realtime.redis_broker import RedisBroker
from cronchat.realtime.session_cache import SessionCache
from cronchat.realtime.sockets import Sockets
from cronchat.services.accounts import Accounts
from cronchat.services.audit import Audit
from cronchat.services.blocks import Blocks
from cronchat.services.edits import Edits
from cronchat.services.exports import ExportLinks, Exports
from cronchat.services.history import History
from cronchat.services.lifecycle import Lifecycle
from cronchat.services.media import Media
from cronchat.services.members import Members
from cronchat.services.moderation import Moderation
from cronchat.services.notifications import Notifications
from cronchat.services.presence import Presence
from cronchat.services.pushers import Pushers
from cronchat.services.reactions import Reactions
from cronchat.services.read_markers import ReadMarkers
from cronchat.services.reports import Reports
from cronchat.services.rooms import Rooms
from cronchat.services.sending import Sending
from cronchat.services.typing_notices import TypingNotices
from cronchat.services.users import Users
from cronchat.views import report_frame
from storage import Storage, StorageError
from storage.local import LocalStorage
from storage.s3 import S3Storage

log = logging.getLogger("cronchat.runtime")

# /readyz answers within this, whatever hangs: a check that has not answered by then fails.
READY_BUDGET_SECONDS = 2.0


@dataclass(slots=True)
class Services:
    accounts: Accounts
    users: Users
    rooms: Rooms
    members: Members
    sending: Sending
    history: History
    edits: Edits
    reactions: Reactions
    read_markers: ReadMarkers
    notifications: Notifications
    blocks: Blocks
    pushers: Pushers
    typing: TypingNotices
    media: Media
    lifecycle: Lifecycle
    exports: Exports
    reports: Reports
    moderation: Moderation
    audit: Audit


class Runtime:
    """``serving`` False is a process that serves no sockets (the CLI): its notices go
    through the database, which every serving process reads (:mod:`cronchat.realtime.db_relay`)."""

    def __init__(self, settings: Settings, worker: int = 0, serving: bool = True) -> None:
        self.settings = settings
        self.db = Database(
            settings.database, settings.db_pool_size, settings.db_timeout, settings.db_writers
        )
        self.blocking = BlockingPool()
        self.storage = open_storage(settings)
        self.links = MediaLinks(settings.jwt_secret.reveal(), settings.media_url_ttl)
        self.vapid = VapidKeys.load(settings.vapid_private_key.reveal(), settings.vapid_subject)
        # Every request to a URL a client chose goes through this one guard.
        self.egress = Egress(settings.push_allow_private)
        self.rate_limits = RateLimits(settings)
        redis_url = settings.redis_url.reveal()
        self.broker: Broker
        if not serving:
            self.broker = DatabaseBroker(self.db)
        elif redis_url:
            self.broker = RedisBroker(
                redis_url, f"{deployment_prefix(settings)}:notices", settings.redis_timeout
            )
        else:
            self.broker = InProcessBroker()
        self.metrics = Metrics(worker)
        self.sessions = SessionCache(
            settings.session_cache_seconds,
            on_hit=self.metrics.session_cache_hits.inc,
            on_miss=self.metrics.session_cache_misses.inc,
        )
        sockets = Sockets(self.sessions)
        store: PresenceStore = (
            RedisPresence(redis_url, deployment_prefix(settings), sockets.is_online)
            if redis_url
            else LocalPresence(sockets.is_online)
        )
        self.presence = Presence(self.db, self.broker, store, sockets.online_users)
        self.hub = Hub(
            sockets,
            events=StoredEvents(self.db, self.links),
            read_states=StoredReadStates(self.db),
            on_presence=self.presence.changed,
            on_delivered=self.metrics.frames_delivered.inc,
        )
        # What processes without sockets publish reaches this one's hub through the database.
        self.relay = NoticeRelay(self.db, self.hub.deliver) if serving else None
        self._keep_alive: asyncio.Task[None] | None = None
        self.broker.subscribe(self.hub.deliver)
        notify = Notifier(self.broker, self.metrics, self.links, online=self.presence.online)
        self.services = self._build_services(notify)
        # Pushes to members with no socket open: planned and sent by serving processes only.
        self.push = PushDelivery(
            self.db,
            self.egress,
            self.blocking,
            self.vapid,
            self.metrics,
            self.presence.online,
            include_content=settings.push_content,
            retry_base_seconds=settings.push_retry_base_seconds,
            concurrency=settings.push_concurrency,
            timeout_seconds=settings.push_timeout_seconds,
        )
        self.serving = serving
        if serving:
            self.services.sending.on_committed = self.push.wake
        self.db.observe_wait = self.metrics.db_wait_seconds.observe
        self.metrics.watch(
            sockets=self.hub.connection_count,
            broker_reconnects=lambda: getattr(self.broker, "reconnects", 0),
        )

    def _build_services(self, notify: Notifier) -> Services:
        """The domain services, each given what it needs."""
        settings = self.settings
        media = Media(
            self.db,
            self.blocking,
            self.storage,
            settings.media_max_bytes,
            Limits(
                settings.media_max_pixels,
                settings.media_max_frames,
                settings.media_max_decode_seconds,
            ),
            notify,
        )
        accounts = Accounts(
            settings, self.db, self.blocking, self.broker, self.rate_limits, self.sessions
        )
        export_links = ExportLinks(settings.jwt_secret.reveal(), settings.media_url_ttl)
        cursors = Cursors(settings.jwt_secret.reveal())
        return Services(
            accounts=accounts,
            users=Users(self.db, notify),
            rooms=Rooms(self.db, notify, media, cursors),
            members=Members(self.db, notify),
            sending=Sending(self.db, notify, settings.max_text_length, self.metrics),
            history=History(self.db, notify),
            edits=Edits(self.db, notify, settings.max_text_length, media),
            reactions=Reactions(self.db, notify),
            read_markers=ReadMarkers(self.db, notify),
            notifications=Notifications(self.db, notify, cursors),
            blocks=Blocks(self.db, notify),
            pushers=Pushers(self.db, self.egress),
            typing=TypingNotices(self.db, notify),
            media=media,
            lifecycle=Lifecycle(self.db, notify, accounts, media, self.blocking, self.storage),
            exports=Exports(self.db, self.blocking, self.storage, export_links),
            reports=Reports(self.db, notify, media, cursors, report_frame),
            moderation=Moderation(self.db, notify),
            audit=Audit(self.db, cursors),
        )

    @staticmethod
    def preflight(settings: Settings) -> None:
        """Refuse to start on a database whose schema is behind, or on a media store that
        does not work: raise ConfigError, one line for the operator (blocking; before the
        runtime is built, so that a server checks before it binds and forks)."""
        db = Database(settings.database, 1)
        try:
            require_current_schema(db)
        finally:
            db.close()
        require_storage(open_storage(settings))

    @staticmethod
    def migrate(settings: Settings) -> list[str]:
        """Apply the pending migrations; answers their names, ``NNNN_name`` (blocking)."""
        db = Database(settings.database, 1)
        try:
            return [f"{m.version:04d}_{m.name}" for m in migrate(db)]
        except DomainError:
            raise ConfigError(f"database {settings.database.describe()} is unreachable") from None
        finally:
            db.close()

    def check_schema(self) -> None:
        """Refuse to serve a database whose schema is behind (blocking; at start-up)."""
        require_current_schema(self.db)

    def check_storage(self) -> None:
        """Refuse to serve when the media store does not work (blocking; at start-up)."""
        require_storage(self.storage)

    async def start(self) -> None:
        await self.broker.start()
        if self.relay is not None:
            await self.relay.start()
        self.presence.start()
        keep_alive = self.hub.sockets.keep_alive(self.settings.ws_ping_interval)
        self._keep_alive = asyncio.create_task(keep_alive)
        if self.serving:
            self.push.start()

    async def readiness(self) -> dict[str, bool]:
        """Each dependency's check, run side by side within one short budget: a database or
        store that stopped answering makes readiness false, never slow. The broker's check
        is its connection's state, not a probe of its own."""
        checks: dict[str, Awaitable[bool]] = {
            "database": self.db.check(READY_BUDGET_SECONDS),
            "storage": self.services.media.storage_ready(),
        }
        if self.settings.redis_url.reveal():
            checks["broker"] = self.broker.check()
        outcomes = await asyncio.gather(
            *(_within(check, READY_BUDGET_SECONDS) for check in checks.values())
        )
        return dict(zip(checks, outcomes, strict=True))

    async def close(self) -> None:
        if self._keep_alive is not None:
            self._keep_alive.cancel()
        await self.push.close()
        await self.services.exports.close()
        # Connections left open by a push cut short must not hold the shutdown up.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.egress.close(), CLOSE_SECONDS)
        if self.relay is not None:
            await self.relay.close()
        await self.presence.close()
        await self.broker.close()
        self.blocking.close()
        self.db.close()


async def _within(check: Awaitable[bool], seconds: float) -> bool:
    try:
        return await asyncio.wait_for(check, seconds)
    except TimeoutError:
        return False


def deployment_prefix(settings: Settings) -> str:
    """The Redis key prefix of one deployment: every process on the same database shares it,
    and deployments sharing a Redis do not hear each other."""
    digest = hashlib.sha256(settings.database.describe().encode()).hexdigest()[:16]
    return f"cronchat:{digest}"


def open_storage(settings: Settings) -> Storage:
    """The media store ``CRONCHAT_MEDIA_BACKEND`` names. Nothing is contacted yet."""
    if settings.media_backend == "s3":
        return S3Storage(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id.reveal(),
            secret_access_key=settings.s3_secret_access_key.reveal(),
        )
    return LocalStorage(settings.media_dir)


def require_storage(storage: Storage) -> None:
    """Raise ConfigError, one line for the operator, unless the media store works."""
    try:
        storage.check()
    except StorageError as error:
        raise ConfigError(f"media storage ({storage.describe()}): {error}") from None
