"""The payment-hook outbox in one process: leases, takeover, giving up."""

from __future__ import annotations

import asyncio
import dataclasses

from fulmen import hookimpl, now_ms, query
from fulmen.testing import plugin


def tune(fulmen, **policy) -> None:
    """Change the hook-delivery outbox's timing (fulmen/outbox.py `Policy`)."""
    outbox = fulmen.host.hooks.deliveries
    outbox.policy = dataclasses.replace(outbox.policy, **policy)


class Slow:
    def __init__(self):
        self.calls = []

    @hookimpl
    async def on_invoice_paid(self, payment):
        self.calls.append(payment.id)
        await asyncio.sleep(1.0)


async def paid_invoice(fulmen) -> None:
    alice = await fulmen.wallet("alice", sats=10)
    bob = await fulmen.wallet("bob")
    inv = await fulmen.invoice(bob, 1)
    assert (await fulmen.pay(alice, inv["bolt11"])).status_code == 201


async def test_a_long_hook_keeps_its_lease_and_runs_once(fulmen_db, monkeypatch):
    slow = Slow()
    await fulmen_db.start(plugins=[plugin("slow", slow)])
    tune(fulmen_db, lease_ms=300, renew_seconds=0.1)
    await paid_invoice(fulmen_db)
    # other "processes" keep trying while the hook runs for 1 s (> 3 leases)
    for _ in range(15):
        await fulmen_db.host.hooks.deliver_due()
        await asyncio.sleep(0.1)
    await fulmen_db.drain()
    assert len(slow.calls) == 1
    [row] = await query("SELECT status, attempts FROM fulmen_hook_delivery")
    assert (row["status"], row["attempts"]) == ("done", 1)


async def test_a_dead_claim_is_taken_over_after_its_lease(fulmen_db):
    got = []

    class Rec:
        @hookimpl
        def on_invoice_paid(self, payment):
            got.append(payment.id)

    await fulmen_db.start(plugins=[plugin("rec", Rec())])
    # as if another process claimed every row and died
    outbox = fulmen_db.host.hooks.deliveries
    real = outbox.deliver_due
    outbox.deliver_due = _no_delivery
    try:
        await paid_invoice(fulmen_db)
        await fulmen_db.host.payments.drain()
        # Claimed before the real delivery is back: the host's own worker,
        # woken by the payment, must find the row leased, not free.
        lease_end = now_ms() + 400
        await query("UPDATE fulmen_hook_delivery SET locked_until = {}, attempts = 1", lease_end)
    finally:
        outbox.deliver_due = real
    assert await fulmen_db.host.hooks.deliver_due() == 0  # still claimed
    assert got == []
    await asyncio.sleep(0.5)
    assert await fulmen_db.host.hooks.deliver_due() == 1
    assert len(got) == 1
    [row] = await query("SELECT status, attempts FROM fulmen_hook_delivery")
    assert (row["status"], row["attempts"]) == ("done", 2)


async def _no_delivery() -> int:
    return 0


async def test_gives_up_after_max_attempts_and_shows_it(fulmen, monkeypatch):
    calls = []

    class Broken:
        @hookimpl
        def on_invoice_paid(self, payment):
            calls.append(payment.id)
            raise ValueError("always broken")

    client = await fulmen.start(plugins=[plugin("broken", Broken())])
    tune(fulmen, max_attempts=3)
    await paid_invoice(fulmen)
    for _ in range(5):
        await fulmen.drain()
        await query("UPDATE fulmen_hook_delivery SET next_attempt_at = 0 WHERE status = 'pending'")
    assert len(calls) == 3
    [row] = (await client.get("/admin/api/v1/hook-deliveries?status=failed",
                              headers=fulmen.admin_headers)).json()
    assert row["plugin_id"] == "broken" and row["attempts"] == 3
    assert row["last_error"] == "ValueError: always broken"
    [info] = (await client.get("/admin/api/v1/plugins", headers=fulmen.admin_headers)).json()
    assert "always broken" in info["last_error"] and info["state"] == "enabled"
