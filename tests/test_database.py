"""The transaction's round-trip savers (``Tx.fetch``, ``Tx.execute_later``) keep the meaning
of plain statements: reads see the held writes, a held write's error fails its whole
transaction, and nothing of a failed transaction stays. On SQLite and MySQL."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from cronchat.config import DatabaseUrl
from cronchat.db import Database, Query, Tx, UniqueViolation

# Rows of the notices table (an id we choose, a time, a text) far above the ids the relay
# hands out, so that no serving process of the run reads them.
NOTICE = "INSERT INTO notices (id, created_at, notice) VALUES (%s, %s, %s)"


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(DatabaseUrl.parse(database_url), 2)
    yield database
    database.close()


def fresh_ids(count: int) -> list[int]:
    base = 10**12 + secrets.randbelow(10**11)
    return [base + n for n in range(count)]


def count_of(ids: list[int]) -> Query[int]:
    marks = ", ".join(["%s"] * len(ids))
    return Query(
        f"SELECT COUNT(*) AS n FROM notices WHERE id IN ({marks})",
        tuple(ids),
        lambda rows: rows[0]["n"],
    )


def stored(db: Database, ids: list[int]) -> int:
    return db.run_sync(lambda tx: tx.fetch(count_of(ids))[0])


def test_reads_see_the_held_writes_and_each_query_answers_in_order(db: Database) -> None:
    first, second, third = fresh_ids(3)

    def work(tx: Tx) -> list[int]:
        tx.execute_later(NOTICE, (first, 1, "held"))
        tx.executemany_later(NOTICE, [(second, 2, "held too"), (third, 3, "and this")])
        return tx.fetch(count_of([first]), count_of([second, third]), count_of([first, third]))

    assert db.run_sync(work) == [1, 2, 2]
    assert stored(db, [first, second, third]) == 3


def test_held_writes_commit_with_the_transaction(db: Database) -> None:
    ids = fresh_ids(3)
    db.run_sync(lambda tx: tx.executemany_later(NOTICE, [(i, i, "x") for i in ids]))
    assert stored(db, ids) == 3


def test_a_held_write_that_breaks_a_unique_key_leaves_nothing_of_its_transaction(
    db: Database,
) -> None:
    kept, doubled = fresh_ids(2)

    def work(tx: Tx) -> None:
        tx.execute_later(NOTICE, (kept, 1, "before"))
        tx.executemany_later(NOTICE, [(doubled, 2, "once"), (doubled, 3, "twice")])

    with pytest.raises(UniqueViolation):
        db.run_sync(work)
    assert stored(db, [kept, doubled]) == 0
    # The connection is usable again at once, in a clean transaction.
    db.run_sync(lambda tx: tx.execute_later(NOTICE, (kept, 4, "after")))
    assert stored(db, [kept, doubled]) == 1


def test_a_read_after_a_failing_held_write_raises_the_writes_error(db: Database) -> None:
    (doubled,) = fresh_ids(1)
    db.run_sync(lambda tx: tx.execute(NOTICE, (doubled, 1, "there")))

    def work(tx: Tx) -> None:
        tx.execute_later(NOTICE, (doubled, 2, "again"))
        tx.fetch(count_of([doubled]), count_of([doubled]))

    with pytest.raises(UniqueViolation):
        db.run_sync(work)
    assert stored(db, [doubled]) == 1
