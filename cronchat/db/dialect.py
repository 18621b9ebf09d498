"""The few places where MySQL and SQLite SQL differ, in one object per dialect."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    # Appended to a SELECT that must lock the rows it reads until commit.
    for_update: str
    # INSERT that silently skips a row whose unique key exists.
    insert_ignore: str

    def sql(self, query: str) -> str:
        """Queries are written with ``%s`` placeholders; SQLite wants ``?``."""
        return _to_qmark(query) if self.name == "sqlite" else query


@lru_cache(maxsize=1024)
def _to_qmark(query: str) -> str:
    return query.replace("%s", "?")


MYSQL = Dialect(name="mysql", for_update=" FOR UPDATE", insert_ignore="INSERT IGNORE")
# SQLite has one writer at a time: a write transaction (BEGIN IMMEDIATE) already holds the lock.
SQLITE = Dialect(name="sqlite", for_update="", insert_ignore="INSERT OR IGNORE")
