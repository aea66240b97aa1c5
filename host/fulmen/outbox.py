"""The durable outbox: jobs written in a transaction, carried out after it.

Plugin hook deliveries, webhook deliveries and plugins' own jobs are rows
in a table with the same bookkeeping columns (`status`, `attempts`,
`next_attempt_at`, `locked_until`, `last_error`). One `Outbox` per table
does everything around a job, the same way for every kind:

- **claim**: a conditional UPDATE takes due rows and sets a lease
  (`locked_until`); on PostgreSQL `FOR UPDATE SKIP LOCKED` lets processes
  claim side by side. So each attempt is made by one process;
- **lease and renew**: while the sender runs, the lease is renewed, so a
  long job keeps its row and a row whose process died is taken over once
  its lease runs out (at-least-once: make effects idempotent);
- **backoff and retry**: a failure is retried after `policy.backoff_ms`,
  until `max_attempts` or the row's `give_up_at` (a retry window);
- **dead letter**: a row that will not be retried is `failed`, with its
  last error, and stays visible until pruned;
- **inspection and redeliver**: `list` and `redeliver` (a fresh retry window).

What a job *does* is the sender's business: a callable that gets the row
and returns an `Outcome`. The outbox never knows about plugins or HTTP.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .db import is_postgres, now_ms, query

log = logging.getLogger(__name__)

Row = dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    """What a sender made of one attempt."""

    #: None: done. Otherwise why it failed (stored as `last_error`).
    error: str | None = None
    #: a failure no retry can fix (the row goes straight to `failed`)
    permanent: bool = False
    #: not attempted: hand the row back untouched (e.g. its plugin was disabled)
    released: bool = False
    #: extra columns to store with the outcome (e.g. an HTTP status code)
    columns: dict[str, Any] = field(default_factory=dict)


DONE = Outcome()
RELEASED = Outcome(released=True)

Sender = Callable[[Row], Awaitable[Outcome]]


def doubling(base_ms: int, max_ms: int) -> Callable[[int], int]:
    """Backoff before retry n (n = attempts made so far): base * 2^(n-1), capped."""

    def backoff(attempts: int) -> int:
        return int(min(base_ms * 2 ** max(0, attempts - 1), max_ms))

    return backoff


@dataclass(frozen=True)
class Policy:
    """How one table's jobs are claimed and retried."""

    table: str
    #: the status of a finished row ("done" for plugin hooks, "success" for webhooks)
    done_status: str = "done"
    lease_ms: int = 10_000
    renew_seconds: float = 3.0
    batch: int = 50
    #: give up after this many attempts (None: only the row's `give_up_at`)
    max_attempts: int | None = None
    #: the table has `give_up_at` (a retry window per row)
    window: bool = False
    #: the table has `updated_at`
    touch: bool = False
    backoff_ms: Callable[[int], int] = doubling(2_000, 3_600_000)
    #: run a claimed batch at once (independent receivers) or one by one
    parallel: bool = False


class Outbox:
    """The worker and bookkeeping for one outbox table."""

    def __init__(self, policy: Policy, send: Sender,
                 only: Callable[[], tuple[str, list[Any]] | None] | None = None,
                 describe: Callable[[Row], str] | None = None) -> None:
        """`only`: an extra claim condition (SQL with `{}` placeholders, args),
        or None from it to claim nothing this pass (e.g. no enabled plugin).
        `describe`: a row in words for the log (never credentials)."""
        self.policy = policy
        self.send = send
        self.only = only
        self.describe = describe or (lambda row: f"row {row['id']}")
        self._wake = asyncio.Event()

    # --- the worker ------------------------------------------------------------------

    def wake(self) -> None:
        """New rows were committed: look now rather than at the next poll."""
        self._wake.set()

    async def run(self, poll_seconds: float = 1.0) -> None:
        """One worker per process: runs due jobs when woken, and every
        `poll_seconds` for retries and rows left by other processes."""
        while True:
            try:
                while await self.deliver_due():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox %s: delivery pass failed", self.policy.table)
            try:
                await asyncio.wait_for(self._wake.wait(), poll_seconds)
            except TimeoutError:
                pass
            self._wake.clear()

    async def deliver_due(self) -> int:
        """Claim due rows and run them. Safe in every process at once.
        Returns how many rows this call claimed."""
        extra_sql, extra_args = "", []
        if self.only is not None:
            condition = self.only()
            if condition is None:
                return 0
            extra_sql, extra_args = f" AND {condition[0]}", condition[1]
        p = self.policy
        now = now_ms()
        # PostgreSQL: rows another process is claiming are skipped, not waited for.
        skip_locked = " FOR UPDATE SKIP LOCKED" if is_postgres() else ""
        rows = await query(
            f"UPDATE {p.table} SET locked_until = {{}}, attempts = attempts + 1 "
            f"WHERE id IN (SELECT id FROM {p.table} WHERE status = 'pending' "
            f"AND next_attempt_at <= {{}} AND locked_until < {{}}{extra_sql} "
            f"ORDER BY id LIMIT {{}}{skip_locked}) "
            "AND status = 'pending' AND locked_until < {} RETURNING *",
            now + p.lease_ms, now, now, *extra_args, p.batch, now,
        )
        rows.sort(key=lambda r: r["id"])
        if p.parallel:
            await asyncio.gather(*(self._attempt(row) for row in rows))
        else:
            for row in rows:
                await self._attempt(row)
        return len(rows)

    async def _attempt(self, row: Row) -> None:
        lease = [int(row["locked_until"])]
        renewer = asyncio.ensure_future(self._renew(int(row["id"]), lease))
        try:
            outcome = await self.send(row)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a sender's bug is a failed attempt, never a lost row
            log.exception("outbox %s: sender raised on row %s", self.policy.table, row["id"])
            outcome = Outcome(error=f"{type(exc).__name__}: {exc}")
        finally:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
        await self._record(row, lease[0], outcome)

    async def _renew(self, row_id: int, lease: list[int]) -> None:
        """Keep a claimed row's lease while its sender runs. `lease[0]` is the
        value last written; it doubles as this process's claim token."""
        p = self.policy
        while True:
            await asyncio.sleep(p.renew_seconds)
            new = now_ms() + p.lease_ms
            renewed = await query(
                f"UPDATE {p.table} SET locked_until = {{}} "
                "WHERE id = {} AND locked_until = {} AND status = 'pending' RETURNING id",
                new, row_id, lease[0],
            )
            if not renewed:
                log.warning("outbox %s: lease on row %s lost while it ran", p.table, row_id)
                return
            lease[0] = new

    async def _record(self, row: Row, lease: int, outcome: Outcome) -> None:
        p = self.policy
        now = now_ms()
        sets: dict[str, Any] = dict(outcome.columns)
        if outcome.released:
            # Not attempted: undo the claim's attempt count, keep everything else.
            await query(
                f"UPDATE {p.table} SET locked_until = 0, attempts = attempts - 1 "
                "WHERE id = {} AND locked_until = {}",
                row["id"], lease,
            )
            return
        if outcome.error is None:
            status = p.done_status
            sets["last_error"] = None
        else:
            attempts = int(row["attempts"])
            next_at = now + p.backoff_ms(attempts)
            give_up = (
                outcome.permanent
                or (p.max_attempts is not None and attempts >= p.max_attempts)
                or (p.window and next_at > int(row["give_up_at"]))
            )
            status = "failed" if give_up else "pending"
            sets["last_error"] = outcome.error[:1000]
            sets["next_attempt_at"] = next_at
            if give_up:
                log.warning("%s %s gave up: %s", p.table, self.describe(row), outcome.error)
        sets["status"] = status
        sets["locked_until"] = 0
        if p.touch:
            sets["updated_at"] = now
        assignments = ", ".join(f"{column} = {{}}" for column in sets)
        # Only while this claim still holds: if the lease ran out and another
        # process claimed the row, releasing it here would let a third one
        # run it while the second still is. (A success counts whoever made it.)
        guard = "" if outcome.error is None else " AND locked_until = {}"
        await query(
            f"UPDATE {p.table} SET {assignments} WHERE id = {{}} AND status = 'pending'{guard}",
            *sets.values(), row["id"], *(() if outcome.error is None else (lease,)),
        )

    # --- inspection -------------------------------------------------------------------

    async def list(self, where: dict[str, Any] | None = None, status: str | None = None,
                   limit: int = 100) -> list[Row]:
        """Rows, newest first, matching the column values in `where` and `status`."""
        conditions = dict(where or {})
        if status:
            conditions["status"] = status
        clause = " AND ".join(f"{column} = {{}}" for column in conditions)
        return await query(
            f"SELECT * FROM {self.policy.table} {'WHERE ' + clause if clause else ''} "
            "ORDER BY id DESC LIMIT {}",
            *conditions.values(), limit,
        )

    async def redeliver(self, row_id: int, where: dict[str, Any] | None = None,
                        window_ms: int | None = None) -> Row | None:
        """Run a row again now, whatever its state (a fresh retry window, and
        for a capped table a fresh count). None when no row matches or it is
        being run right now (`exists` tells which)."""
        p = self.policy
        now = now_ms()
        sets: dict[str, Any] = {"status": "pending", "next_attempt_at": now, "locked_until": 0}
        if p.window:
            sets["give_up_at"] = now + (window_ms or 0)
        if p.max_attempts is not None:
            sets["attempts"] = 0
        if p.touch:
            sets["updated_at"] = now
        conditions = dict(where or {})
        assignments = ", ".join(f"{column} = {{}}" for column in sets)
        extra = "".join(f" AND {column} = {{}}" for column in conditions)
        rows = await query(
            f"UPDATE {p.table} SET {assignments} WHERE id = {{}}{extra} AND locked_until < {{}} "
            "RETURNING *",
            *sets.values(), row_id, *conditions.values(), now,
        )
        if rows:
            self.wake()
        return rows[0] if rows else None

    async def exists(self, row_id: int, where: dict[str, Any] | None = None) -> bool:
        conditions = dict(where or {})
        extra = "".join(f" AND {column} = {{}}" for column in conditions)
        rows = await query(
            f"SELECT 1 AS one FROM {self.policy.table} WHERE id = {{}}{extra}",
            row_id, *conditions.values(),
        )
        return bool(rows)

    async def prune(self, older_than_ms: int) -> None:
        """Forget finished rows older than this (by `updated_at`, else `created_at`)."""
        column = "updated_at" if self.policy.touch else "created_at"
        await query(
            f"DELETE FROM {self.policy.table} WHERE status <> 'pending' AND {column} < {{}}",
            now_ms() - older_than_ms,
        )
