"""The settlement step: everything a committed balance change causes.

The payment service calls `Settlement.record` inside the transaction that
changes a balance, once per payment that reached a final state. It writes,
always in this order and nowhere else:

1. the wallet's **event** (`fulmen_event`): the wallet's next event number
   (`fulmen_wallet.event_seq`, which also locks the wallet row until the
   commit, so a wallet's events commit in number order, none skipped);
2. the **webhook deliveries** (`fulmen_webhook_delivery`): one per endpoint
   of the wallet that wants this event type, and one for an incoming
   invoice's own `webhook` URL;
3. the **plugin hook deliveries** (`fulmen_hook_delivery`): one per plugin
   whose payment filter takes this payment.

So a committed payment always has all of them and a rolled-back one none.
After the commit, `after_commit` publishes the events and wakes the outbox
workers (fulmen/outbox.py) that carry out the deliveries.

The PostgreSQL internal payment (fulmen/internal_payment.py) writes steps 1
and 3 inside its one statement, from the SQL fragments below, and then calls
`record_webhooks` for step 2; each table still has this module as its only
writer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import metrics
from .db import is_postgres, now_ms, query
from .events import HOOK_TYPES, Event, EventBus, event_body, event_data_json
from .models import Payment

#: (plugin id, only for wallets it watches) for each plugin a payment hook goes to
HookTargets = Callable[[str, Payment], list[tuple[str, bool]]]


@dataclass
class Recorded:
    """What `record` wrote for one payment, for `after_commit`."""

    payment: Payment
    event: Event | None = None
    webhook_rows: int = 0
    hook_rows: int = 0


@dataclass
class Wakers:
    """Who to tell after the commit that new rows wait (the outbox workers)."""

    webhooks: Callable[[], None] = lambda: None
    hooks: Callable[[], None] = lambda: None


# --- step 1: the event ------------------------------------------------------------

# PostgreSQL: the wallet's next event number and the event row in one
# statement. The data text is built as `event_data_json` builds it.
EVENT_INSERT_SQL = """
WITH wallet AS (
    UPDATE fulmen_wallet SET event_seq = event_seq + 1 WHERE id = $1
    RETURNING event_seq, balance_msat, webhook_endpoints
)
INSERT INTO fulmen_event (wallet_id, seq, type, payment_id, payment_hash, data, created_at)
SELECT $1, event_seq, $2, $3, $4,
    '{"wallet_balance": ' || (balance_msat / 1000)::text || ', "payment": ' || $5 || '}', $6
FROM wallet
RETURNING id, seq AS event_seq, (SELECT balance_msat FROM wallet) AS balance_msat,
    (SELECT webhook_endpoints FROM wallet) AS webhook_endpoints
"""

# Fragments of the PostgreSQL internal payment's statement: they read its
# `paid` (both payments) and `wallets` (both wallet rows after the update,
# each with its new `event_seq`) CTEs. $1 is the time, $11/$12 the incoming
# and outgoing payments' JSON, $13-$16 the hook targets.
EVENTS_CTE = """
events AS (
    INSERT INTO fulmen_event (wallet_id, seq, type, payment_id, payment_hash, data, created_at)
    SELECT p.wallet_id, w.event_seq, CASE WHEN p.out THEN 'payment.sent' ELSE 'payment.received' END,
        p.id, p.payment_hash,
        '{"wallet_balance": ' || (w.balance_msat / 1000)::text || ', "payment": '
            || CASE WHEN p.out THEN $12 ELSE $11 END || '}',
        $1
    FROM paid p JOIN wallets w ON w.id = p.wallet_id
    RETURNING id, payment_id, seq
)"""

HOOK_DELIVERIES_CTE = """
deliveries AS (
    INSERT INTO fulmen_hook_delivery (payment_id, plugin_id, hook, status, attempts,
        next_attempt_at, locked_until, created_at)
    SELECT p.id, t.plugin_id, t.hook, 'pending', 0, $1, 0, $1
    FROM paid p
    JOIN unnest($13::text[], $14::text[], $15::boolean[], $16::boolean[])
        AS t(plugin_id, hook, for_outgoing, by_wallet) ON t.for_outgoing = p.out
    WHERE NOT t.by_wallet OR EXISTS (
        SELECT 1 FROM fulmen_hook_wallet h WHERE h.plugin_id = t.plugin_id AND h.wallet_id = p.wallet_id
    )
    RETURNING id
)"""


class Settlement:
    def __init__(self, events: EventBus, hook_targets: HookTargets, webhook_window_ms: int,
                 wakers: Wakers | None = None) -> None:
        self.events = events
        self.hook_targets = hook_targets
        self.webhook_window_ms = webhook_window_ms
        self.wakers = wakers or Wakers()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- inside the transaction ---------------------------------------------------------

    async def record(self, payment: Payment, hook: str) -> Recorded:
        """Write what this payment's final state causes (steps 1-3, in order).
        `hook` names the state: on_invoice_paid, on_payment_sent, on_payment_failed."""
        recorded = Recorded(payment)
        recorded.event = await self._write_event(payment, HOOK_TYPES[hook])
        recorded.webhook_rows = await self.record_webhooks(recorded.event, payment)
        recorded.hook_rows = await self._write_hook_deliveries(hook, payment)
        return recorded

    async def _write_event(self, payment: Payment, event_type: str) -> Event:
        now = now_ms()
        payment_data = payment.to_lnbits()
        payment_json = json.dumps(payment_data)
        if is_postgres():
            # The payment has already locked this wallet row in this transaction.
            rows = await query(
                EVENT_INSERT_SQL, payment.wallet_id, event_type, payment.id, payment.payment_hash,
                payment_json, now,
            )
        else:
            rows = await query(
                "UPDATE fulmen_wallet SET event_seq = event_seq + 1 WHERE id = {} "
                "RETURNING event_seq, balance_msat, webhook_endpoints",
                payment.wallet_id,
            )
            balance_sat = int(rows[0]["balance_msat"]) // 1000
            inserted = await query(
                "INSERT INTO fulmen_event (wallet_id, seq, type, payment_id, payment_hash, data, "
                "created_at) VALUES ({}, {}, {}, {}, {}, {}, {}) RETURNING id",
                payment.wallet_id, rows[0]["event_seq"], event_type, payment.id, payment.payment_hash,
                event_data_json(balance_sat, payment_json), now,
            )
            rows = [{**rows[0], "id": inserted[0]["id"]}]
        row = rows[0]
        data = {"wallet_balance": int(row["balance_msat"]) // 1000, "payment": payment_data}
        return Event(int(row["id"]), payment.wallet_id, int(row["event_seq"]), event_type, payment.id,
                     payment.payment_hash, data, now, wallet_webhooks=int(row["webhook_endpoints"]))

    async def record_webhooks(self, event: Event, payment: Payment) -> int:
        """Step 2: one delivery row per matching endpoint (and the invoice's own URL)."""
        invoice_hook = event.type == "payment.received" and bool(payment.webhook)
        if not event.wallet_webhooks and not invoice_hook:
            return 0  # the common case: nothing to deliver, no query
        endpoints = await query(
            "SELECT id, url, events FROM fulmen_webhook_endpoint WHERE wallet_id = {} AND NOT deleted",
            event.wallet_id,
        ) if event.wallet_webhooks else []
        now = now_ms()
        targets: list[tuple[str | None, str, str]] = [
            (e["id"], e["url"], event_body(event))
            for e in endpoints if event.type in e["events"].split(",")
        ]
        if invoice_hook and payment.webhook:
            targets.append((None, payment.webhook,
                            json.dumps(payment.to_lnbits(), separators=(",", ":"))))
        for endpoint_id, url, body in targets:
            await query(
                "INSERT INTO fulmen_webhook_delivery (wallet_id, endpoint_id, event_id, event_type, url, "
                "body, status, attempts, next_attempt_at, locked_until, give_up_at, created_at, "
                "updated_at) VALUES ({}, {}, {}, {}, {}, {}, 'pending', 0, {}, 0, {}, {}, {})",
                event.wallet_id, endpoint_id, event.id, event.type, url, body, now,
                now + self.webhook_window_ms, now, now,
            )
        return len(targets)

    async def _write_hook_deliveries(self, hook: str, payment: Payment) -> int:
        """Step 3. A plugin that watches wallets gets a row only for a wallet it
        watches: the check is part of the INSERT, no extra round trip."""
        now = now_ms()
        written = 0
        for plugin_id, by_wallet in self.hook_targets(hook, payment):
            watched = ("WHERE EXISTS (SELECT 1 FROM fulmen_hook_wallet "
                       "WHERE plugin_id = {} AND wallet_id = {}) " if by_wallet else "")
            rows = await query(
                "INSERT INTO fulmen_hook_delivery (payment_id, plugin_id, hook, status, attempts, "
                "next_attempt_at, locked_until, created_at) "
                "SELECT {}, {}, {}, 'pending', 0, {}, 0, {} " + watched + "RETURNING id",
                payment.id, plugin_id, hook, now, now,
                *((plugin_id, payment.wallet_id) if by_wallet else ()),
            )
            written += len(rows)
        return written

    def statement_hook_targets(self, payments: Sequence[tuple[Payment, str]]) -> list[list[Any]]:
        """The hook targets of payments settled by one statement, as the four
        arrays `HOOK_DELIVERIES_CTE` reads ($13-$16)."""
        targets = [
            (plugin_id, hook, payment.out, by_wallet)
            for payment, hook in payments
            for plugin_id, by_wallet in self.hook_targets(hook, payment)
        ]
        return [[t[i] for t in targets] for i in range(4)]

    # --- after the commit -------------------------------------------------------------

    def after_commit(self, *recorded: Recorded) -> None:
        """Publish the events and wake the workers, without holding up the response."""
        for item in recorded:
            metrics.count_payment(item.payment)
            if item.event is not None:
                self._spawn(self.events.publish(item.event))
        if any(item.webhook_rows for item in recorded):
            self.wakers.webhooks()
        if any(item.hook_rows for item in recorded):
            self.wakers.hooks()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait for post-commit publishing (at shutdown and in tests)."""
        deadline = time.monotonic() + timeout
        while self._tasks and time.monotonic() < deadline:
            await asyncio.wait(list(self._tasks), timeout=max(0.01, deadline - time.monotonic()))


