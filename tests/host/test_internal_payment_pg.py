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

    async def counted_settle(*args, **kwargs):
        statements.append(args[1]["id"])
        return await real_settle(*args, **kwargs)

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


async def payment_rows(payment_hash: str) -> dict:
    rows = await query(
        "SELECT (SELECT COUNT(*) FROM fulmen_payment WHERE payment_hash = {} AND out) AS outgoing, "
        "(SELECT status FROM fulmen_payment WHERE payment_hash = {} AND NOT out) AS invoice, "
        "(SELECT COUNT(*) FROM fulmen_ledger WHERE kind = 'payment') AS ledger, "
        "(SELECT COUNT(*) FROM fulmen_event) AS events",
        payment_hash, payment_hash,
    )
    return rows[0]


def record_settles(monkeypatch) -> list[str]:
    """How each run of the statement ended: alone or in a transaction, and
    its outcome."""
    runs: list[str] = []
    real = internal_payment.settle

    async def recorded(*args, alone):
        mode = "alone" if alone else "in a transaction"
        try:
            rows = await real(*args, alone=alone)
        except Exception as exc:
            runs.append(f"{mode}: {type(exc).__name__}")
            raise
        runs.append(f"{mode}: {len(rows)} rows")
        return rows

    monkeypatch.setattr(internal_payment, "settle", recorded)
    return runs


async def test_an_invoice_changed_since_read_is_settled_step_by_step(pg_fulmen, monkeypatch):
    """The event rows are built from the invoice row as read; if the row
    changes before the statement claims it (here its memo), the statement
    claims nothing and the payment is settled step by step, with events that
    match the payments."""
    await pg_fulmen.start()
    runs = record_settles(monkeypatch)
    alice = await pg_fulmen.wallet("alice", sats=100)
    bob = await pg_fulmen.wallet("bob")
    inv = await pg_fulmen.invoice(bob, 5, memo="read memo")
    real_info = payments_module.PaymentService._invoice_info

    async def changed_after_read(self, bolt11):
        info, row = await real_info(self, bolt11)
        await query("UPDATE fulmen_payment SET memo = 'real memo' WHERE id = {}", row["id"])
        return info, row

    monkeypatch.setattr(payments_module.PaymentService, "_invoice_info", changed_after_read)
    r = await pg_fulmen.pay(alice, inv["bolt11"])
    assert r.status_code == 201, r.text
    assert runs == ["alone: 0 rows"]
    rows = await query(
        "SELECT e.data, p.memo FROM fulmen_event e JOIN fulmen_payment p ON p.id = e.payment_id "
        "WHERE p.payment_hash = {}", inv["payment_hash"]
    )
    assert [(json.loads(r["data"])["payment"]["memo"], r["memo"]) for r in rows] == [
        ("real memo", "real memo"), ("real memo", "real memo")
    ]
    assert (await payment_rows(inv["payment_hash"]))["ledger"] == 2
    assert await pg_fulmen.balance(alice) == 95_000 and await pg_fulmen.balance(bob) == 5_000


async def test_a_refused_payment_leaves_the_invoice_unclaimed(pg_fulmen, monkeypatch):
    """The statement runs as its own transaction: when the payer cannot pay
    (or a wallet is gone) after the invoice was claimed in it, it raises and
    nothing of it stays, the claim included."""
    await pg_fulmen.start()
    runs = record_settles(monkeypatch)
    alice = await pg_fulmen.wallet("alice", sats=3)
    bob = await pg_fulmen.wallet("bob")
    inv = await pg_fulmen.invoice(bob, 5)
    before = await payment_rows(inv["payment_hash"])
    r = await pg_fulmen.pay(alice, inv["bolt11"])
    assert r.status_code == 400, r.text
    assert "Insufficient balance" in r.text
    assert runs == ["alone: Refused"]
    assert await payment_rows(inv["payment_hash"]) == {**before, "invoice": "pending", "outgoing": 0}
    assert await pg_fulmen.balance(alice) == 3_000

    await pg_fulmen.fund(alice, 10)
    await query("UPDATE fulmen_wallet SET deleted = TRUE WHERE id = {}", bob.id)
    r = await pg_fulmen.pay(alice, inv["bolt11"])
    assert r.status_code == 404 and "Wallet not found" in r.text, r.text
    assert runs[-1] == "alone: Refused"
    assert (await payment_rows(inv["payment_hash"]))["invoice"] == "pending"
    assert await pg_fulmen.balance(alice) == 13_000


async def test_a_wallet_with_webhooks_is_paid_in_a_transaction(pg_fulmen, monkeypatch):
    """Webhook deliveries are written by Python from the event, so for a
    wallet with endpoints the statement refuses to run alone and runs again
    inside a transaction that writes them."""
    client = await pg_fulmen.start()
    runs = record_settles(monkeypatch)
    alice = await pg_fulmen.wallet("alice", sats=100)
    bob = await pg_fulmen.wallet("bob")
    r = await client.post("/api/v1/webhooks", json={"url": "https://93.184.215.14/hook"},
                          headers=bob.admin_headers)
    assert r.status_code == 201, r.text
    inv = await pg_fulmen.invoice(bob, 5)
    r = await pg_fulmen.pay(alice, inv["bolt11"])
    assert r.status_code == 201, r.text
    assert runs == ["alone: HasWebhooks", "in a transaction: 2 rows"]
    deliveries = await query(
        "SELECT d.event_type FROM fulmen_webhook_delivery d JOIN fulmen_event e ON e.id = d.event_id "
        "WHERE d.wallet_id = {}", bob.id
    )
    assert [d["event_type"] for d in deliveries] == ["payment.received"]
    assert (await payment_rows(inv["payment_hash"]))["ledger"] == 2
    assert await pg_fulmen.balance(alice) == 95_000 and await pg_fulmen.balance(bob) == 5_000
