"""Plugins' durable jobs: side effects that must happen once a transaction
commits, even if this process dies (a Nostr plugin publishing a zap
receipt, a plugin calling a merchant's server).

A plugin records a job with `host.jobs.enqueue(kind, payload)` inside its
own transaction, and registers the handler for that kind in `startup`. The
job is a row in `fulmen_job`, run by the host's outbox (fulmen/outbox.py):
claimed by one process, retried with backoff (2 s doubling, up to 1 h) for
`RETRY_HOURS`, then `failed` and kept for inspection
(`GET /admin/api/v1/jobs`, redeliver with `POST .../{id}/redeliver`).
A handler that raises means "try again later"; make it idempotent, since a
process dying mid-run means another run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from .contract import JobHandler
from .db import now_ms, query
from .outbox import DONE, RELEASED, Outbox, Outcome, Policy, doubling

log = logging.getLogger(__name__)

RETRY_HOURS = 24.0


class JobQueue:
    """The host's one queue of plugin jobs; `for_plugin` gives a plugin its view."""

    def __init__(self, is_serving: Callable[[str], bool]) -> None:
        self.is_serving = is_serving
        self._handlers: dict[tuple[str, str], JobHandler] = {}
        self.outbox = Outbox(
            Policy(table="fulmen_job", window=True, touch=True,
                   backoff_ms=doubling(2_000, 3_600_000)),
            self._run,
        )

    def for_plugin(self, plugin_id: str) -> PluginJobs:
        return PluginJobs(self, plugin_id)

    async def enqueue(self, plugin_id: str, kind: str, payload: dict[str, Any],
                      key: str | None = None) -> bool:
        now = now_ms()
        rows = await query(
            "INSERT INTO fulmen_job (plugin_id, kind, job_key, payload, status, attempts, "
            "next_attempt_at, locked_until, give_up_at, created_at, updated_at) "
            "VALUES ({}, {}, {}, {}, 'pending', 0, {}, 0, {}, {}, {}) "
            "ON CONFLICT (plugin_id, kind, job_key) WHERE job_key IS NOT NULL DO NOTHING "
            "RETURNING id",
            plugin_id, kind, key, json.dumps(payload), now,
            now + int(RETRY_HOURS * 3_600_000), now, now,
        )
        if rows:
            self.outbox.wake()  # a row its transaction rolls back is simply not found
        return bool(rows)

    async def _run(self, row: dict[str, Any]) -> Outcome:
        handler = self._handlers.get((row["plugin_id"], row["kind"]))
        if handler is None or not self.is_serving(row["plugin_id"]):
            # Its plugin is stopped here, or has not registered the kind yet:
            # leave the job for a process (or a later moment) that can run it.
            return RELEASED
        try:
            await handler(json.loads(row["payload"]))
        except Exception as exc:
            log.warning("job %s (%s/%s) failed: %r", row["id"], row["plugin_id"], row["kind"], exc)
            return Outcome(error=f"{type(exc).__name__}: {exc}")
        return DONE


class PluginJobs:
    """A plugin's view of the job queue (`host.jobs`)."""

    def __init__(self, queue: JobQueue, plugin_id: str) -> None:
        self._queue = queue
        self._plugin_id = plugin_id

    def handler(self, kind: str) -> Callable[[JobHandler], JobHandler]:
        def register(function: JobHandler) -> JobHandler:
            self._queue._handlers[(self._plugin_id, kind)] = function
            self._queue.outbox.wake()
            return function

        return register

    async def enqueue(self, kind: str, payload: dict[str, Any], key: str | None = None) -> bool:
        return await self._queue.enqueue(self._plugin_id, kind, payload, key)
