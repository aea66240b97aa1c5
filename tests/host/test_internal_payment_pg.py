"""PostgreSQL settles an internal payment in one statement
(`fulmen/internal_payment.py`): it must write exactly what the step-by-step
path and its settlement step write."""

import json

import fulmen.internal_payment as internal_payment
import fulmen.payments as payments_module
from fulmen import PaymentFilter, hookimpl
from fulmen.db import query
from fulmen.testing import plugin

IGNORED = {"id", "payment_hash", "checking_id", "bolt11", "bolt11_hash", "preimage", "expires_at",
           "created_at", "updated_at", "expiry", "time", "payment_request"}


class Probe:
    @hookimpl
    def payment_filter(self):
        return PaymentFilter(watched_wallets_only=True)

    @hookimpl
    def on_invoice_paid(self, payment):
        pass

    @hookimpl
    def on_payment_sent(self, payment):
        pass


def same_shape(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in IGNORED}


async def written_for(payment_hash: str) -> dict:
    """Everything the payment of this invoice wrote, without ids and times."""
    payments = await query(
        "SELECT * FROM fulmen_payment WHERE payment_hash = {} ORDER BY out", payment_hash
    )
    ids = [p["id"] for p in payments]
    ledger = await query(
        "SELECT wallet_id, amount_msat, kind, payment_id FROM fulmen_ledger "
        "WHERE payment_id IN ({}, {}) ORDER BY amount_msat", *ids
    )
    events = await query(
        "SELECT wallet_id, seq, type, payment_id, data FROM fulmen_event "
        "WHERE payment_id IN ({}, {}) ORDER BY type", *ids
    )
    deliveries = await query(
        "SELECT payment_id, plugin_id, hook FROM fulmen_hook_delivery "
        "WHERE payment_id IN ({}, {}) ORDER BY hook", *ids
    )
    side = {p["id"]: ("out" if p["out"] else "in") for p in payments}
    return {
        "payments": [same_shape(dict(p, extra=json.loads(p["extra"]))) for p in payments],
        "ledger": [dict(r, payment_id=side[r["payment_id"]]) for r in ledger],
        "events": [
            dict(r, payment_id=side[r["payment_id"]],
                 data=dict(json.loads(r["data"]),
                           payment=same_shape(json.loads(r["data"])["payment"])))
            for r in events
        ],
        "deliveries": [dict(r, payment_id=side[r["payment_id"]]) for r in deliveries],
    }


async def test_one_statement_writes_what_the_steps_write(pg_fulmen, monkeypatch):
    await pg_fulmen.start(plugins=[plugin("probe", Probe())])
    host = pg_fulmen.host
    results = {}
    statements = []
    real_settle = internal_payment.settle

    async def counted_settle(*args):
        statements.append(args[1]["id"])
        return await real_settle(*args)

    monkeypatch.setattr(internal_payment, "settle", counted_settle)
    for path in ("one statement", "step by step"):
        alice = await pg_fulmen.wallet("alice", sats=100)
        bob = await pg_fulmen.wallet("bob")
        await host.context_for("probe").watch_wallet(bob.id)  # bob's receipt: a row; alice's: none
        inv = await pg_fulmen.invoice(bob, 7, memo="tea", extra={"tag": "shop", "note": {"a": [1, 2.5]}})
        if path == "step by step":
            monkeypatch.setattr(payments_module, "is_postgres", lambda: False)
        r = await pg_fulmen.pay(alice, inv["bolt11"])
        assert r.status_code == 201, r.text
        written = await written_for(inv["payment_hash"])
        names = {alice.id: "payer", bob.id: "payee"}
        results[path] = json.loads(json.dumps(written).replace(alice.id, "payer").replace(bob.id, "payee"))
        assert len(written["payments"]) == 2 and len(written["events"]) == 2, names
    assert len(statements) == 1  # the first payment took the one-statement path, the second did not
    assert results["one statement"] == results["step by step"]
    assert [d["hook"] for d in results["one statement"]["deliveries"]] == ["on_invoice_paid"]
    assert await pg_fulmen.balance(alice) == 93_000


async def test_a_wrong_prediction_falls_back_to_the_steps(pg_fulmen, monkeypatch):
    """If the payments the statement wrote ever differed from those its event
    rows were built from, nothing of it is kept: the payment is settled step
    by step instead, with events that match the payments."""
    await pg_fulmen.start()
    alice = await pg_fulmen.wallet("alice", sats=100)
    bob = await pg_fulmen.wallet("bob")
    inv = await pg_fulmen.invoice(bob, 5, memo="real memo")
    real = internal_payment.predicted_payments

    def wrong(*args):
        incoming, outgoing = real(*args)
        incoming.memo = "predicted memo"
        return incoming, outgoing

    monkeypatch.setattr(internal_payment, "predicted_payments", wrong)
    r = await pg_fulmen.pay(alice, inv["bolt11"])
    assert r.status_code == 201, r.text
    rows = await query(
        "SELECT e.data FROM fulmen_event e JOIN fulmen_payment p ON p.id = e.payment_id "
        "WHERE p.payment_hash = {}", inv["payment_hash"]
    )
    assert [json.loads(r["data"])["payment"]["memo"] for r in rows] == ["real memo", "real memo"]
    counts = await query(
        "SELECT (SELECT COUNT(*) FROM fulmen_payment WHERE memo <> 'Admin credit') AS payments, "
        "(SELECT COUNT(*) FROM fulmen_ledger WHERE kind = 'payment') AS ledger"
    )
    assert (counts[0]["payments"], counts[0]["ledger"]) == (2, 2)
    assert await pg_fulmen.balance(alice) == 95_000 and await pg_fulmen.balance(bob) == 5_000
