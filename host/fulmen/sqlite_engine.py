"""The embedded SQLite engine: statements on the event loop, fsyncs shared.

A SQLite statement on the payment path takes microseconds; handing each one
to a worker thread (as aiosqlite does) costs far more than the statement,
and a payment is about ten of them. So statements run directly on the event
loop, on two connections of this process:

- the *writer*, used by one transaction at a time (an asyncio lock), so
  the process never blocks on itself; BEGIN IMMEDIATE takes SQLite's write
  lock, so other processes on the same file still queue behind it;
- a read-only *reader* for statements outside a transaction. A read that
  runs longer than `SLOW_READ_SECONDS` is interrupted and re-run in a
  thread, so a large export never stalls the loop. A read first waits for
  the fsync of commits this process made before it (below), so no answer
  shows a payment that a power cut could still take back.

The only slow parts of a write are waits on other processes (BEGIN when
another process holds the lock: then it is retried in a thread) and the
fsync that makes a commit durable. The connections run with
`synchronous=NORMAL`, where COMMIT writes the transaction to the WAL
without syncing it, and `commit()` then waits until an fsync of the WAL
that started after this commit has finished. Each transaction still commits
on its own, and is acknowledged only once it is on disk (it survives power
loss, as with `synchronous=FULL`), but commits that finish while one fsync
runs share the next one instead of each waiting for its own, and the write
lock is not held during the fsync. Checkpoints (copying the WAL into the
database file) run in a thread too, instead of inside some unlucky COMMIT,
and beside the fsyncs rather than in one of them: a commit waits for its
fsync only, never for a checkpoint (which copies and syncs megabytes).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from typing import Any

from piccolo.engine.sqlite import SQLiteEngine, dict_factory

log = logging.getLogger(__name__)

SLOW_READ_SECONDS = 0.002
CHECKPOINT_WAL_BYTES = 4 * 1024 * 1024
BUSY_TIMEOUT_MS = 30_000


# Statements that certainly write go straight to the writer; anything else is
# tried on the read-only reader first (a write there fails at once, unrun).
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")


class _Result:
    """What Piccolo reads from `async with connection.execute(...) as cursor`."""

    def __init__(self, rows: list[Any], lastrowid: int | None) -> None:
        self.rows = rows
        self.lastrowid = lastrowid

    async def fetchall(self) -> list[Any]:
        return self.rows

    async def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None


class _Statement:
    """Awaitable and an async context manager, like aiosqlite's `execute()`."""

    def __init__(self, run: Any) -> None:
        self._run = run

    def __await__(self) -> Any:
        return self._run().__await__()

    async def __aenter__(self) -> _Result:
        return await self._run()

    async def __aexit__(self, *exc: Any) -> None:
        return None


class _Transaction:
    """The writer, lent to one Piccolo transaction (`engine.get_connection()`).

    Piccolo drives it with BEGIN / SAVEPOINT / COMMIT / ROLLBACK statements
    and `close()`; the lock is released as soon as the transaction ends."""

    def __init__(self, engine: EmbeddedSQLiteEngine) -> None:
        self._engine = engine
        self._open = True

    def execute(self, sql: str, args: Any = None) -> _Statement:
        return _Statement(lambda: self._execute(sql, args or ()))

    async def _execute(self, sql: str, args: Any) -> _Result:
        engine = self._engine
        verb = sql.split(None, 1)[0].upper()
        if verb == "BEGIN":
            try:
                await engine._begin(sql)
            except BaseException:
                self._release()
                raise
            return _Result([], None)
        if verb == "COMMIT":
            try:
                engine._writer.execute("COMMIT")
            except BaseException:
                engine._rollback_quietly()
                self._release()
                raise
            self._release()  # before the fsync: the next transaction can start
            await engine.durable()
            return _Result([], None)
        if verb == "ROLLBACK" and "TO" not in sql.upper():
            try:
                engine._writer.execute("ROLLBACK")
            finally:
                self._release()
            return _Result([], None)
        return engine._run(engine._writer, sql, args)

    def _release(self) -> None:
        if self._open:
            self._open = False
            self._engine._lock.release()

    async def close(self) -> None:
        self._release()


class EmbeddedSQLiteEngine(SQLiteEngine):
    def __init__(self, path: str, **kwargs: Any) -> None:
        super().__init__(path=path, **kwargs)
        self._lock = asyncio.Lock()
        self._writer_conn: sqlite3.Connection | None = None
        self._reader_conn: sqlite3.Connection | None = None
        self._sync = _WalSync(path)
        self._read_started = 0.0  # when the reader's current statement started

    def open(self) -> None:
        """Open both connections now (the file, WAL mode) rather than on first use."""
        _ = self._reader

    # --- connections ---------------------------------------------------------

    def _connect(self, read_only: bool = False) -> sqlite3.Connection:
        kwargs = dict(self.connection_kwargs)
        kwargs.pop("timeout", None)
        if read_only:
            kwargs["database"] = f"file:{kwargs['database']}?mode=ro"
            kwargs["uri"] = True
        connection = sqlite3.connect(**kwargs, check_same_thread=False, timeout=0)
        connection.row_factory = dict_factory
        connection.execute("PRAGMA foreign_keys = 1")
        connection.execute("PRAGMA synchronous = NORMAL")  # the fsync is `durable()`'s
        return connection

    @property
    def _writer(self) -> sqlite3.Connection:
        if self._writer_conn is None:
            connection = self._connect()
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA wal_autocheckpoint = 0")  # `_WalSync` checkpoints
            # When the WAL starts over after a checkpoint, cut the file back
            # to the checkpoint size, so it grows past it again only once
            # that much has been written since (see `_WalSync`).
            connection.execute(f"PRAGMA journal_size_limit = {CHECKPOINT_WAL_BYTES}")
            self._writer_conn = connection
        return self._writer_conn

    @property
    def _reader(self) -> sqlite3.Connection:
        if self._reader_conn is None:
            _ = self._writer  # creates the file and the WAL first
            connection = self._connect(read_only=True)
            connection.set_progress_handler(
                lambda: int(time.perf_counter() - self._read_started > SLOW_READ_SECONDS), 2000
            )
            self._reader_conn = connection
        return self._reader_conn

    async def close(self) -> None:
        async with self._lock:
            for connection in (self._reader_conn, self._writer_conn):
                if connection is not None:
                    connection.close()
            self._reader_conn = self._writer_conn = None
            await self._sync.close()

    # --- statements ----------------------------------------------------------

    @staticmethod
    def _run(connection: sqlite3.Connection, sql: str, args: Any) -> _Result:
        cursor = connection.execute(sql, args)
        try:
            return _Result(cursor.fetchall(), cursor.lastrowid)
        finally:
            cursor.close()

    async def _begin(self, sql: str) -> None:
        """BEGIN on the loop; if another process holds the write lock, wait
        for it in a thread instead of blocking the loop."""
        try:
            self._writer.execute(sql)
        except sqlite3.OperationalError as error:
            if _code(error) != sqlite3.SQLITE_BUSY:
                raise
            await asyncio.to_thread(self._begin_waiting, sql)

    def _begin_waiting(self, sql: str) -> None:
        writer = self._writer
        writer.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        try:
            writer.execute(sql)
        finally:
            writer.execute("PRAGMA busy_timeout = 0")

    def _rollback_quietly(self) -> None:
        try:
            self._writer.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # no transaction left to roll back

    async def durable(self) -> None:
        """Return once everything committed so far is on disk."""
        await self._sync.wait(self._sync.note_commit())

    async def get_connection(self) -> Any:  # Piccolo: the connection of a new transaction
        await self._lock.acquire()
        return _Transaction(self)

    async def fetch(self, sql: str, args: Any) -> list[dict[str, Any]]:
        """A statement with `?` placeholders, in the current transaction if
        any: `fulmen.db.query`'s path, without Piccolo's query building."""
        transaction = self.current_transaction.get()
        if transaction is not None:
            return self._run(self._writer, sql, args).rows
        return await self._run_in_new_connection(sql, args)

    async def _run_in_existing_connection(self, connection: Any, query: str, args: Any = None,
                                          query_type: str = "generic", table: Any = None) -> Any:
        return (await connection.execute(query, args)).rows

    async def _run_in_new_connection(self, query: str, args: Any = None, query_type: str = "generic",
                                     table: Any = None) -> Any:
        """A statement outside a transaction: on the reader if it only reads,
        else as a transaction of its own on the writer."""
        args = args or ()
        if not query.lstrip()[:7].upper().startswith(_WRITES):
            sync = self._sync
            if sync.synced < sync.committed:
                # Show nothing that is not yet on disk: what this process
                # committed before this read is acknowledged to nobody until
                # its fsync, so a reader must not act on it earlier either.
                await sync.wait(sync.committed)
            reader = self._reader
            self._read_started = time.perf_counter()
            try:
                return self._run(reader, query, args).rows
            except sqlite3.OperationalError as error:
                code = _code(error)
                if code in (sqlite3.SQLITE_INTERRUPT, sqlite3.SQLITE_BUSY):
                    # a slow read, or a rare wait on another process: in a thread
                    return await asyncio.to_thread(self._read_in_thread, query, args)
                if code != sqlite3.SQLITE_READONLY:
                    raise
        transaction = await self.get_connection()
        await transaction.execute("BEGIN IMMEDIATE")
        try:
            result = await transaction.execute(query, args)
        except BaseException:
            await transaction.execute("ROLLBACK")
            raise
        await transaction.execute("COMMIT")
        return result.rows

    def _read_in_thread(self, query: str, args: Any) -> list[Any]:
        connection = self._connect(read_only=True)
        try:
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            return self._run(connection, query, args).rows
        finally:
            connection.close()


def flush_file(fd: int) -> None:
    """fdatasync where there is one (as SQLite itself uses on Linux): the
    data and the size, not the timestamps."""
    getattr(os, "fdatasync", os.fsync)(fd)


def _code(error: sqlite3.Error) -> int:
    """The primary result code (SQLITE_BUSY also for its extended codes)."""
    return (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF


class _WalSync:
    """Group fsync of the WAL: commits are numbered; `wait(n)` returns once
    an fsync that started after commit `n` has finished. One fsync runs at a
    time and covers every commit before it started. A checkpoint, when the
    WAL has grown, runs after a round, beside the next ones: no commit waits
    for it.

    When is that? The WAL file keeps the length of its longest run (after a
    complete checkpoint the writer starts it over from the top) unless it is
    cut back: the writer's `journal_size_limit` cuts it to
    `CHECKPOINT_WAL_BYTES` when it starts over. So a file longer than that
    holds more than that since the WAL last started over. (Without the cut,
    a WAL that had once reached the size had every later round checkpoint,
    each checkpoint fsyncing the database file.) Under a steady stream of
    commits a checkpoint rarely copies everything, and then each round
    starts another until one does and the WAL starts over."""

    def __init__(self, path: str) -> None:
        self.wal = f"{path}-wal"
        self.directory = os.path.dirname(os.path.abspath(path))
        self.path = path
        self.committed = 0
        self.synced = 0
        self._round: asyncio.Future[None] | None = None
        self._dir_synced = False
        self._checkpointer: sqlite3.Connection | None = None
        self._checkpointing: asyncio.Future[None] | None = None

    def note_commit(self) -> int:
        self.committed += 1
        return self.committed

    async def wait(self, commit: int) -> None:
        while self.synced < commit:
            if self._round is None:
                self._round = asyncio.ensure_future(self._sync_round(self.committed))
            await asyncio.shield(self._round)

    async def _sync_round(self, upto: int) -> None:
        try:
            size = await asyncio.to_thread(self._fsync)
            self.synced = max(self.synced, upto)
        finally:
            self._round = None
        if size > CHECKPOINT_WAL_BYTES and self._checkpointing is None:
            self._checkpointing = asyncio.ensure_future(self._checkpoint_in_thread())

    def _fsync(self) -> int:
        """fsync the WAL; returns its size."""
        fd = os.open(self.wal, os.O_RDONLY)
        try:
            flush_file(fd)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if not self._dir_synced:  # the WAL's directory entry, once
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self._dir_synced = True
        return size

    async def _checkpoint_in_thread(self) -> None:
        try:
            await asyncio.to_thread(self._checkpoint)
        except Exception:  # the commits are safe in the WAL; a later round tries again
            log.exception("WAL checkpoint failed")
        finally:
            self._checkpointing = None

    def _checkpoint(self) -> None:
        """Copy the WAL into the database; PASSIVE never waits for (or
        blocks) writers. The next writer then starts the WAL from the top."""
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(self.path, check_same_thread=False, timeout=0,
                                                 isolation_level=None)
        try:
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.OperationalError as error:  # busy: a later round tries again
            log.debug("checkpoint skipped: %s", error)

    async def close(self) -> None:
        """Let a running checkpoint finish, then close its connection."""
        if self._checkpointing is not None:
            await asyncio.wait([self._checkpointing])
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
