"""The embedded SQLite engine (fulmen/sqlite_engine.py): statements on the
event loop, commits acknowledged only after an fsync of the WAL that started
after them, slow reads and waits on other processes moved off the loop."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time

import pytest
from fulmen import sqlite_engine
from fulmen.sqlite_engine import EmbeddedSQLiteEngine
from piccolo.engine.sqlite import TransactionType


@pytest.fixture
async def engine(tmp_path):
    engine = EmbeddedSQLiteEngine(path=str(tmp_path / "t.sqlite3"))
    engine.open()
    await engine.run_ddl("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
    yield engine
    await engine.close()


@pytest.fixture
def held_flush(monkeypatch) -> threading.Event:
    """The WAL flush waits until the returned event is set (a slow disk)."""
    gate = threading.Event()
    real_flush = sqlite_engine.flush_file

    def flush(fd):
        gate.wait(5)
        real_flush(fd)

    monkeypatch.setattr(sqlite_engine, "flush_file", flush)
    yield gate
    gate.set()


async def insert(engine, value: int) -> None:
    async with engine.transaction(transaction_type=TransactionType.immediate):
        await engine.run_querystring(_qs("INSERT INTO t (v) VALUES ({})", value))


def _qs(sql, *args):
    from piccolo.querystring import QueryString

    return QueryString(sql, *args)


class Ticker:
    """Counts how long the event loop went without running a task."""

    def __init__(self) -> None:
        self.longest_gap = 0.0
        self._task: asyncio.Task | None = None

    async def _tick(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.longest_gap = max(self.longest_gap, now - last)
            last = now

    def __enter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc) -> None:
        assert self._task is not None
        self._task.cancel()


async def test_commit_waits_for_an_fsync_that_started_after_it(engine, monkeypatch):
    events: list[tuple[str, int]] = []
    real_fsync = sqlite_engine.flush_file

    def fsync(fd):
        events.append(("fsync-start", engine._sync.committed))
        time.sleep(0.005)  # a slow disk: commits pile up behind it
        real_fsync(fd)

    monkeypatch.setattr(sqlite_engine, "flush_file", fsync)
    acknowledged: list[tuple[int, int]] = []  # (rows visible when acked, fsyncs started by then)

    async def pay(value: int) -> None:
        await insert(engine, value)
        starts = [n for kind, n in events if kind == "fsync-start"]
        acknowledged.append((value, len(starts)))

    await asyncio.gather(*(pay(i) for i in range(40)))
    starts = [n for kind, n in events if kind == "fsync-start"]
    rows = await engine.run_querystring(_qs("SELECT count(*) AS n FROM t"))
    assert rows[0]["n"] == 40
    # Shared: far fewer fsyncs than commits, but at least one after the last commit.
    assert 1 <= len(starts) < 40
    assert max(starts) == engine._sync.committed
    assert engine._sync.synced == engine._sync.committed


async def test_a_commit_is_not_acknowledged_before_its_fsync(engine, held_flush):
    gate = held_flush
    task = asyncio.ensure_future(insert(engine, 1))
    await asyncio.sleep(0.05)
    assert not task.done()  # committed, but not yet on disk
    # ... and the write lock is free meanwhile: another transaction commits.
    other = asyncio.ensure_future(insert(engine, 2))
    await asyncio.sleep(0.05)
    outside = sqlite3.connect(engine.path)  # another process's view
    assert outside.execute("SELECT count(*) FROM t").fetchone()[0] == 2
    outside.close()
    gate.set()
    await asyncio.wait_for(asyncio.gather(task, other), 5)


async def test_a_failed_statement_rolls_back_and_frees_the_writer(engine):
    with pytest.raises(sqlite3.IntegrityError):
        async with engine.transaction(transaction_type=TransactionType.immediate):
            await engine.run_querystring(_qs("INSERT INTO t (v) VALUES ({})", 7))
            await engine.run_querystring(_qs("INSERT INTO t (v) VALUES (NULL)"))
    await asyncio.wait_for(insert(engine, 8), 2)
    rows = await engine.run_querystring(_qs("SELECT v FROM t ORDER BY id"))
    assert [r["v"] for r in rows] == [8]


async def test_writes_outside_a_transaction_commit_durably(engine):
    rows = await engine.run_querystring(_qs("INSERT INTO t (v) VALUES ({}) RETURNING id, v", 5))
    assert rows == [{"id": 1, "v": 5}]
    assert engine._sync.synced >= engine._sync.committed >= 1
    other = sqlite3.connect(engine.path)
    assert other.execute("SELECT v FROM t").fetchall() == [(5,)]
    other.close()


async def test_a_slow_read_moves_off_the_loop(engine):
    await engine.run_querystring(_qs(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) "
        "INSERT INTO t (v) SELECT i FROM n"
    ))
    slow = "SELECT count(*) AS s FROM t a, t b WHERE (a.v + b.v) % 7 = 0"  # ~0.5 s of work
    expected = sqlite3.connect(engine.path).execute(slow).fetchone()[0]
    with Ticker() as ticker:
        rows = await engine.run_querystring(_qs(slow))
    assert rows[0]["s"] == expected
    # The loop kept running (interrupted after ~2 ms, re-run in a thread).
    assert ticker.longest_gap < 0.2


async def test_waiting_for_another_process_does_not_block_the_loop(engine):
    other = sqlite3.connect(engine.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    with Ticker() as ticker:
        task = asyncio.ensure_future(insert(engine, 1))
        await asyncio.sleep(0.3)
        assert not task.done()
        # Reads still answer from the last committed state meanwhile.
        assert (await engine.run_querystring(_qs("SELECT count(*) AS n FROM t")))[0]["n"] == 0
        other.execute("COMMIT")
        await asyncio.wait_for(task, 5)
    other.close()
    assert ticker.longest_gap < 0.2
    assert (await engine.run_querystring(_qs("SELECT count(*) AS n FROM t")))[0]["n"] == 1


async def test_the_wal_is_checkpointed_off_the_loop(engine, monkeypatch):
    monkeypatch.setattr(sqlite_engine, "CHECKPOINT_WAL_BYTES", 64 * 1024)
    for i in range(300):
        await insert(engine, i)
    wal = os.path.getsize(f"{engine.path}-wal")
    # Without checkpoints (wal_autocheckpoint is off) 300 commits grow the
    # WAL by a page or more each; checkpoints let the writer start it over.
    assert wal < 300 * 4096
    rows = await engine.run_querystring(_qs("SELECT count(*) AS n FROM t"))
    assert rows[0]["n"] == 300


async def test_a_read_waits_for_the_fsync_of_earlier_commits(engine, held_flush):
    gate = held_flush
    writer = asyncio.ensure_future(insert(engine, 1))
    await asyncio.sleep(0.05)  # committed, waiting for its fsync
    read = asyncio.ensure_future(engine.run_querystring(_qs("SELECT count(*) AS n FROM t")))
    await asyncio.sleep(0.05)
    assert not read.done()  # it would show a row that is not on disk yet
    gate.set()
    assert (await asyncio.wait_for(read, 5))[0]["n"] == 1
    await writer


async def test_a_commit_does_not_wait_for_a_checkpoint(engine, monkeypatch):
    monkeypatch.setattr(sqlite_engine, "CHECKPOINT_WAL_BYTES", 1)  # after every round
    gate = threading.Event()
    real_checkpoint = sqlite_engine._WalSync._checkpoint

    def slow_checkpoint(self):
        gate.wait(5)  # copying a large WAL into the database file
        real_checkpoint(self)

    monkeypatch.setattr(sqlite_engine._WalSync, "_checkpoint", slow_checkpoint)
    try:
        await insert(engine, 1)  # its round starts the checkpoint
        assert engine._sync._checkpointing is not None
        # Commits go on being acknowledged while the checkpoint runs.
        await asyncio.wait_for(asyncio.gather(*(insert(engine, i) for i in range(2, 6))), 2)
        assert engine._sync.synced == engine._sync.committed
        assert engine._sync._checkpointing is not None
    finally:
        gate.set()
    await asyncio.wait_for(engine.close(), 5)  # waits for the checkpoint
    assert engine._sync._checkpointing is None


async def test_once_the_wal_starts_over_it_is_cut_back_and_not_checkpointed(tmp_path, monkeypatch):
    limit = 64 * 1024
    monkeypatch.setattr(sqlite_engine, "CHECKPOINT_WAL_BYTES", limit)
    engine = EmbeddedSQLiteEngine(path=str(tmp_path / "c.sqlite3"))
    engine.open()
    checkpoints: list[int] = []
    real_checkpoint = sqlite_engine._WalSync._checkpoint

    def counting(self):
        checkpoints.append(1)
        real_checkpoint(self)

    monkeypatch.setattr(sqlite_engine._WalSync, "_checkpoint", counting)
    wal = f"{engine.path}-wal"
    try:
        await engine.run_ddl("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
        for i in range(60):  # a page or more each: the WAL passes the limit
            await insert(engine, i)
        assert checkpoints
        while engine._sync._checkpointing is not None:
            await asyncio.sleep(0.01)
        # Copy whatever is left (nothing writes meanwhile): the next write
        # starts the WAL over from the top ...
        other = sqlite3.connect(engine.path)
        assert other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[0] == 0
        other.close()
        await insert(engine, 60)
        assert os.path.getsize(wal) <= limit  # ... and cuts the file back to the limit
        while engine._sync._checkpointing is not None:
            await asyncio.sleep(0.01)
        before = len(checkpoints)
        for i in range(5):  # well under the limit again: no checkpoint
            await insert(engine, i)
        assert len(checkpoints) == before
    finally:
        await engine.close()


async def test_a_failed_checkpoint_is_logged_and_commits_go_on(engine, monkeypatch, caplog):
    monkeypatch.setattr(sqlite_engine, "CHECKPOINT_WAL_BYTES", 1)

    def broken(self):
        raise sqlite3.DatabaseError("disk I/O error")

    monkeypatch.setattr(sqlite_engine._WalSync, "_checkpoint", broken)
    await insert(engine, 1)
    while engine._sync._checkpointing is not None:
        await asyncio.sleep(0.01)
    assert "WAL checkpoint failed" in caplog.text
    await asyncio.wait_for(insert(engine, 2), 2)
    rows = await engine.run_querystring(_qs("SELECT count(*) AS n FROM t"))
    assert rows[0]["n"] == 2
