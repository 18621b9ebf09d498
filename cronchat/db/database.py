"""The one thread crossing: services hand a synchronous ``*_tx`` function to :class:`Database`,
which runs it as one transaction in a worker thread and never on the IOLoop.

The dialect difference between MySQL and SQLite lives here and in :mod:`cronchat.db.dialect`:
queries are written once with ``%s`` placeholders.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Generic, ParamSpec, TypeVar

import pymysql
from dbutils.pooled_db import PooledDB
from pymysql.constants import CLIENT
from pymysql.cursors import RE_INSERT_VALUES

from cronchat.config import DatabaseUrl
from cronchat.db.dialect import MYSQL, SQLITE, Dialect
from cronchat.errors import Unavailable
from cronchat.private_files import create_private_file, make_private_dir

log = logging.getLogger("cronchat.db")

P = ParamSpec("P")
T = TypeVar("T")

Row = dict[str, Any]

# MySQL errors after which the whole transaction may safely run again.
_MYSQL_RETRY = {1213, 1205}  # deadlock, lock wait timeout
# MySQL client errors that mean the server cannot be reached.
_MYSQL_DOWN = {2002, 2003, 2006, 2013, 2055, 1053, 1927}
_ATTEMPTS = 6
# A pooled connection that ended a transaction this recently is not pinged before the next.
_PING_AFTER_IDLE_SECONDS = 1.0


class UniqueViolation(Exception):
    """A unique key refused the row; repositories turn it into a domain ``Conflict``."""


@dataclass(frozen=True, slots=True)
class Query(Generic[T]):
    """A read and what its rows mean, so that several reads can share one round trip
    (:meth:`Tx.fetch`)."""

    sql: str
    params: tuple[Any, ...]
    parse: Callable[[list[Row]], T]


class Tx:
    """One transaction on one connection, used only inside its worker thread.

    On MySQL every statement is a round trip to the server, so two forms save them:
    :meth:`fetch` sends several reads at once, and :meth:`execute_later` /
    :meth:`executemany_later` hold writes whose outcome nobody reads until the next
    statement or the commit carries them (as one multi-statement query). The parameters
    are escaped by the driver either way. On SQLite, which has no round trips, both run at
    once.
    """

    __slots__ = ("_cursor", "_later", "dialect")

    def __init__(self, cursor: Any, dialect: Dialect) -> None:
        self._cursor = cursor
        self.dialect = dialect
        self._later: list[str] = []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; answers the number of rows it changed."""
        self.flush()
        with _unique_violations():
            self._cursor.execute(self.dialect.sql(sql), tuple(params))
        return self._cursor.rowcount

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        self.flush()
        with _unique_violations():
            self._cursor.executemany(self.dialect.sql(sql), [tuple(row) for row in rows])
        return self._cursor.rowcount

    def execute_later(self, sql: str, params: Sequence[Any] = ()) -> None:
        """A write whose row count nobody needs: sent with the next statement or the commit.
        Its error (a :class:`UniqueViolation`, say) is raised there."""
        if self.dialect is SQLITE:
            self.execute(sql, params)
            return
        self._later.append(self._cursor.mogrify(sql, tuple(params)))

    def executemany_later(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """``INSERT ... VALUES (%s, ...)`` for many rows, as one statement sent later."""
        if not rows:
            return
        if self.dialect is SQLITE:
            self.executemany(sql, rows)
            return
        match = RE_INSERT_VALUES.match(sql)
        if match is None:
            raise ValueError("executemany_later takes an INSERT ... VALUES (...) statement")
        head, values, tail = match.group(1), match.group(2).rstrip(), match.group(3) or ""
        mogrify = self._cursor.mogrify
        self._later.append(head + ",".join(mogrify(values, tuple(row)) for row in rows) + tail)

    def flush(self, then: str | None = None) -> None:
        """Send the held writes now, in one round trip (followed by ``then``, if given)."""
        if not self._later and then is None:
            return
        statements, self._later = self._later, []
        if then is not None:
            statements.append(then)
        with _unique_violations():
            self._cursor.execute(";".join(statements))
            while self._cursor.nextset():
                pass

    def commit(self) -> None:
        """MySQL: the held writes and ``COMMIT`` in one round trip (the connection, a
        :class:`_Connection`, then sends no second ``COMMIT``)."""
        self.flush(then="COMMIT")
        self._cursor.connection.committed = True

    def fetch(self, *queries: Query[Any]) -> list[Any]:
        """Run several reads (and the held writes before them) in one round trip; answers
        each query's parsed rows, in order."""
        if self.dialect is SQLITE or len(queries) == 1 and not self._later:
            return [query.parse(self.all(query.sql, query.params)) for query in queries]
        mogrify = self._cursor.mogrify
        statements, self._later = self._later, []
        held = len(statements)
        statements += [mogrify(query.sql, query.params) for query in queries]
        results: list[Any] = []
        with _unique_violations():
            self._cursor.execute(";".join(statements))
            for index in range(len(statements)):
                if index > 0:
                    self._cursor.nextset()
                if index >= held:
                    rows = [dict(row) for row in self._cursor.fetchall()]
                    results.append(queries[index - held].parse(rows))
        return results

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        self.execute(sql, params)
        row = self._cursor.fetchone()
        return None if row is None else dict(row)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self.execute(sql, params)
        return [dict(row) for row in self._cursor.fetchall()]

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.one(sql, params)
        return None if row is None else next(iter(row.values()))


@contextmanager
def _unique_violations() -> Iterator[None]:
    try:
        yield
    except (sqlite3.IntegrityError, pymysql.err.IntegrityError) as error:
        if _is_unique_violation(error):
            raise UniqueViolation(str(error)) from error
        raise


class _Connection(pymysql.connections.Connection):
    """pymysql's connection without the round trips a transaction does not need: autocommit
    is off, so the first statement opens the transaction (``begin`` sends nothing); a
    ``COMMIT`` already sent after the held writes (:meth:`Tx.commit`) is not sent again;
    and DBUtils' check before each use pings only a connection that was idle (or lost its
    socket), which DBUtils then replaces when the ping fails."""

    committed = False
    ended_at = 0.0  # when its last transaction ended (monotonic)

    def begin(self) -> None:
        self.committed = False

    def commit(self) -> None:
        if not self.committed:
            super().commit()
        self.committed = False
        self.ended_at = time.monotonic()

    def rollback(self) -> None:
        self.committed = False
        super().rollback()
        self.ended_at = time.monotonic()

    def ping(self, reconnect: bool = False) -> bool | None:
        if self._sock is not None and time.monotonic() - self.ended_at < _PING_AFTER_IDLE_SECONDS:
            return True
        return super().ping(reconnect)


# What DBUtils creates connections with: our connection, pymysql's errors and thread safety.
_DRIVER = SimpleNamespace(connect=_Connection, dbapi=pymysql, threadsafety=pymysql.threadsafety)


def in_list(values: Sequence[Any] | set[Any]) -> tuple[str, tuple[Any, ...]]:
    """Placeholders and parameters for ``IN (...)``: ``("%s, %s", (a, b))``."""
    ordered = tuple(values)
    return ", ".join(["%s"] * len(ordered)), ordered


def pairs_match(
    first: str, second: str, pairs: set[tuple[Any, Any]] | list[tuple[Any, Any]]
) -> tuple[str, tuple[Any, ...]]:
    """A condition matching any of these value pairs of two columns, each pair a point of
    their index: ``(a = %s AND b = %s) OR ...``."""
    ordered = tuple(pairs)
    condition = " OR ".join([f"({first} = %s AND {second} = %s)"] * len(ordered))
    return f"({condition})", tuple(value for pair in ordered for value in pair)


def _is_unique_violation(error: Exception) -> bool:
    if isinstance(error, pymysql.err.IntegrityError):
        return error.args[0] == 1062
    return "UNIQUE constraint failed" in str(error) or "PRIMARY KEY" in str(error)


class Database:
    """A pool of worker threads, each with its own connection.

    ``run`` executes a write transaction, ``read`` a read-only one. On SQLite there is a single
    writer thread (SQLite allows one writer at a time, so queueing here beats busy-waiting) and
    a few reader threads; on MySQL every thread can write and DBUtils pools the connections.

    Every wait is bounded by ``timeout`` seconds: each network step of MySQL (connect, read,
    write), and the wait for a thread, so that a database cut off answers ``Unavailable``
    in bounded time instead of holding its callers until it returns.
    """

    def __init__(
        self, url: DatabaseUrl, pool_size: int = 8, timeout: float = 10, writers: int = 1
    ) -> None:
        self.url = url
        self.timeout = timeout
        # Called with the seconds a transaction waited for a worker thread (metrics).
        self.observe_wait: Callable[[float], None] | None = None
        self.dialect = SQLITE if url.dialect == "sqlite" else MYSQL
        self._local = threading.local()
        if self.dialect is SQLITE:
            # Created 0600 before SQLite opens it (SQLite would make it 0644); its -wal and
            # -shm files take the database file's mode.
            if url.path != ":memory:":
                make_private_dir(Path(url.path).parent)
                create_private_file(Path(url.path))
            self.writers = 1
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="db-write")
            self._reader = ThreadPoolExecutor(max(2, pool_size // 2), thread_name_prefix="db-read")
            self._pool = None
        else:
            # Write transactions of a group commit run side by side (on rows of their own),
            # at most half the pool, so that reads still find connections.
            self.writers = max(1, min(writers, pool_size // 2))
            self._writer = ThreadPoolExecutor(pool_size, thread_name_prefix="db")
            self._reader = self._writer
            self._pool = PooledDB(
                creator=_DRIVER,
                mincached=0,
                maxconnections=pool_size,
                blocking=True,
                ping=1,  # check a pooled connection before handing it out (_Connection.ping)
                host=url.host,
                port=url.port,
                user=url.user,
                password=url.password.reveal(),
                database=url.database,
                charset="utf8mb4",
                autocommit=False,
                # Tx.fetch and Tx.flush send several statements in one round trip.
                client_flag=CLIENT.MULTI_STATEMENTS,
                # A returned connection is rolled back only when its transaction did not end.
                reset=False,
                connect_timeout=timeout,
                read_timeout=timeout,
                write_timeout=timeout,
                cursorclass=pymysql.cursors.DictCursor,
                init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
            )
        # Readiness probes: a thread and a connection of their own, so that a probe never
        # waits for a pool thread held by a hung query, nor holds one.
        self._checker = ThreadPoolExecutor(1, thread_name_prefix="db-check")
        self._probe: asyncio.Future[None] | None = None
        self._answering = True

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(tx, *args)`` as one write transaction in a worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._writer, self._timed, time.monotonic(), fn, args, True
        )

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(tx, *args)`` as one read-only transaction in a worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._reader, self._timed, time.monotonic(), fn, args, False
        )

    def _timed(
        self, queued_at: float, fn: Callable[..., T], args: tuple[Any, ...], write: bool
    ) -> T:
        waited = time.monotonic() - queued_at
        if self.observe_wait is not None:
            self.observe_wait(waited)
        if waited > self.timeout:
            # Threads were held (by a database that stopped answering, say): the caller has
            # waited long enough, and work queued behind them drains without touching it.
            raise Unavailable("the database is busy, try again shortly")
        return self._transaction(fn, args, write)

    def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """The blocking form of :meth:`run`, for the CLI and migrations (never on the IOLoop)."""
        return self._transaction(fn, args, True)

    def _transaction(self, fn: Callable[..., T], args: tuple[Any, ...], write: bool) -> T:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                if self.dialect is SQLITE:
                    return self._sqlite_transaction(fn, args, write)
                return self._mysql_transaction(fn, args)
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) and "busy" not in str(error):
                    raise
                retry_reason = "database is locked"
            except pymysql.err.OperationalError as error:
                code = error.args[0] if error.args else 0
                if code in _MYSQL_DOWN:
                    log.warning("database unreachable code=%s %r", code, error)
                    raise Unavailable("the database is unavailable, try again shortly") from None
                if code not in _MYSQL_RETRY:
                    raise
                retry_reason = f"mysql error {code}"
            except pymysql.err.InterfaceError:
                raise Unavailable("the database is unavailable, try again shortly") from None
            if attempt == _ATTEMPTS:
                raise Unavailable("the database is busy, try again shortly")
            log.info("transaction retried reason=%r attempt=%d", retry_reason, attempt)
            time.sleep(0.01 * attempt)
        raise AssertionError("unreachable")

    def _sqlite_connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.url.path, isolation_level=None, check_same_thread=True, timeout=10
            )
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute("PRAGMA busy_timeout=10000")
            self._local.connection = connection
        return connection

    def _sqlite_transaction(self, fn: Callable[..., T], args: tuple[Any, ...], write: bool) -> T:
        connection = self._sqlite_connection()
        cursor = connection.cursor()
        cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            result = fn(Tx(cursor, SQLITE), *args)
            cursor.execute("COMMIT")
            return result
        except BaseException:
            if connection.in_transaction:
                cursor.execute("ROLLBACK")
            raise
        finally:
            cursor.close()

    def _mysql_transaction(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        assert self._pool is not None
        try:
            connection = self._pool.connection()
        except pymysql.err.MySQLError as error:
            code = error.args[0] if error.args else 0
            log.warning("database connect failed code=%s", code)
            raise Unavailable("the database is unavailable, try again shortly") from None
        try:
            cursor = connection.cursor()
            try:
                connection.begin()  # nothing sent: the first statement opens the transaction
                tx = Tx(cursor, MYSQL)
                result = fn(tx, *args)
                tx.commit()  # the held writes and COMMIT in one round trip
                connection.commit()  # DBUtils' bookkeeping; nothing sent again
                return result
            except BaseException:
                try:
                    connection.rollback()
                except pymysql.err.MySQLError:
                    pass  # the connection is gone; DBUtils replaces it on next use
                raise
            finally:
                cursor.close()
        finally:
            connection.close()  # back to the pool

    def ping(self) -> None:
        """Raise if the database does not answer (blocking; used by readiness checks)."""
        self.run_sync(lambda tx: tx.scalar("SELECT 1"))

    async def check(self, budget: float) -> bool:
        """Whether the database answers within ``budget`` seconds. While one probe is still
        out (a database that stopped answering holds it up to ``timeout``), later checks
        wait for the same probe rather than queue more."""
        if self._probe is None:
            probe = asyncio.get_running_loop().run_in_executor(self._checker, self._probe_once)
            probe.add_done_callback(self._probe_done)
            self._probe = probe
        try:
            await asyncio.wait_for(asyncio.shield(self._probe), budget)
        except Exception as error:  # readiness reports any failure, whatever its kind
            if self._answering:
                log.warning("readiness database check failed error=%s", type(error).__name__)
            self._answering = False
            return False
        if not self._answering:
            log.info("readiness database check answers again")
        self._answering = True
        return True

    def _probe_done(self, probe: asyncio.Future[None]) -> None:
        self._probe = None
        if not probe.cancelled():
            probe.exception()  # retrieved: a probe nobody waited for any more is not an error

    def _probe_once(self) -> None:
        """``SELECT 1`` on the probe thread's own connection (blocking)."""
        if self.dialect is SQLITE:
            self._sqlite_transaction(lambda tx: tx.scalar("SELECT 1"), (), False)
            return
        connection = getattr(self._local, "probe", None)
        try:
            if connection is None:
                connection = self._local.probe = pymysql.connect(
                    host=self.url.host,
                    port=self.url.port,
                    user=self.url.user,
                    password=self.url.password.reveal(),
                    database=self.url.database,
                    autocommit=True,
                    connect_timeout=self.timeout,
                    read_timeout=self.timeout,
                    write_timeout=self.timeout,
                )
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchall()
        except pymysql.err.MySQLError:
            self._local.probe = None
            if connection is not None:
                try:
                    connection.close()
                except pymysql.err.Error:
                    pass
            raise

    def close(self) -> None:
        self._checker.shutdown(wait=False, cancel_futures=True)
        self._writer.shutdown(wait=True, cancel_futures=False)
        if self._reader is not self._writer:
            self._reader.shutdown(wait=True)
        if self._pool is not None:
            self._pool.close()
