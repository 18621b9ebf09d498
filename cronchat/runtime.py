"""One assembly: config -> database, services, broker, hub. The server, the CLI and the tests
all build the runtime here, so they run the same wiring."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from cronchat.blocking import BlockingPool
from cronchat.config import Settings
from cronchat.db import Database
from cronchat.db.migrations import require_current_schema
from cronchat.realtime.broker import Broker, InProcessBroker
from cronchat.realtime.hub import Hub
from cronchat.realtime.redis_broker import RedisBroker
from cronchat.services.accounts import Accounts
from cronchat.services.messages import Messages
from cronchat.services.notify import Notifier
from cronchat.services.presence import Presence
from cronchat.services.rooms import Rooms
from cronchat.services.users import Users

log = logging.getLogger("cronchat.runtime")


@dataclass(slots=True)
class Services:
    accounts: Accounts
    users: Users
    rooms: Rooms
    messages: Messages


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database, settings.db_pool_size)
        self.blocking = BlockingPool()
        redis_url = settings.redis_url.reveal()
        self.broker: Broker = (
            RedisBroker(redis_url, notice_channel(settings)) if redis_url else InProcessBroker()
        )
        self.hub = Hub()
        self.broker.subscribe(self.hub.deliver)
        notify = Notifier(self.broker)
        self.services = Services(
            accounts=Accounts(settings, self.db, self.blocking, self.broker),
            users=Users(self.db),
            rooms=Rooms(self.db, notify),
            messages=Messages(self.db, notify, settings.max_text_length),
        )
        self.hub.load_events = self.services.messages.stored_events
        self.presence = Presence(self.db, self.broker)
        self.hub.on_presence = self.presence.changed

    def check_schema(self) -> None:
        """Refuse to serve a database whose schema is behind (blocking; at start-up)."""
        require_current_schema(self.db)

    async def start(self) -> None:
        await self.broker.start()

    async def readiness(self) -> dict[str, bool]:
        checks = {"database": await self.db.check()}
        if self.settings.redis_url.reveal():
            checks["broker"] = await self.broker.check()
        return checks

    async def close(self) -> None:
        await self.presence.drain()
        await self.broker.close()
        self.blocking.close()
        self.db.close()


def notice_channel(settings: Settings) -> str:
    """The Redis channel of one deployment: every process on the same database shares it, and
    deployments sharing a Redis do not hear each other."""
    digest = hashlib.sha256(settings.database.describe().encode()).hexdigest()[:16]
    return f"cronchat:{digest}:notices"
