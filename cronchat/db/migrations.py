"""Versioned SQL migrations, one folder per dialect under the ``migrations`` package.

A file ``NNNN_name.sql`` is version NNNN. Applied versions are recorded in
``schema_migrations``; applying is idempotent.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from importlib import resources

from cronchat.config import ConfigError
from cronchat.db.database import Database, Tx
from cronchat.errors import Unavailable

log = logging.getLogger("cronchat.migrations")

_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The file split on semicolons that end a line; comments dropped."""
        lines = [line for line in self.sql.splitlines() if not line.strip().startswith("--")]
        parts = re.split(r";\s*$", "\n".join(lines), flags=re.MULTILINE)
        return [part.strip() for part in parts if part.strip()]


def available(dialect: str) -> list[Migration]:
    folder = resources.files("migrations") / dialect
    found = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    return sorted(found, key=lambda migration: migration.version)


def _ensure_table_tx(tx: Tx) -> None:
    tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER NOT NULL PRIMARY KEY, name VARCHAR(100) NOT NULL,"
        " applied_at BIGINT NOT NULL)"
    )


def _applied_tx(tx: Tx) -> set[int]:
    _ensure_table_tx(tx)
    return {row["version"] for row in tx.all("SELECT version FROM schema_migrations")}


def pending(db: Database) -> list[Migration]:
    """Migrations not yet applied to this database (blocking)."""
    applied = db.run_sync(_applied_tx)
    return [m for m in available(db.dialect.name) if m.version not in applied]


def migrate(db: Database) -> list[Migration]:
    """Apply every pending migration in order; answers those applied (blocking)."""
    done = []
    for migration in pending(db):

        def apply_tx(tx: Tx, migration: Migration = migration) -> None:
            for statement in migration.statements():
                tx.execute(statement)
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                (migration.version, migration.name, int(time.time() * 1000)),
            )

        db.run_sync(apply_tx)
        log.info("migration applied version=%04d name=%s", migration.version, migration.name)
        done.append(migration)
    return done


def require_current_schema(db: Database) -> None:
    """Raise ConfigError unless the database answers and has every migration applied."""
    try:
        missing = pending(db)
    except Unavailable:
        raise ConfigError(f"database {db.url.describe()} is unreachable") from None
    if missing:
        versions = ", ".join(f"{m.version:04d}" for m in missing)
        raise ConfigError(
            f"the database schema is behind (pending: {versions}); run `cronchat migrate`"
        )
