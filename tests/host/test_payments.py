import asyncio

import bolt11
import pytest
from fulmen.db import query


async def ledger_sum(wallet_id):
    rows = await query("SELECT COALESCE(SUM(amount_msat), 0) AS s FROM fulmen_ledger WHERE wallet_id = {}",
                       wallet_id)
    return int(rows[0]["s"])


async def test_internal_payment_moves_money_instantly(fulmen_db):
    client = await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=100)
    bob = await fulmen_db.wallet("bob")
    inv = await fulmen_db.invoice(bob, 30, memo="lunch")
    r = await fulmen_db.pay(alice, inv["bolt11"])
    assert r.status_code == 201, r.text
    paid = r.json()
    assert paid["status"] == "success" and paid["amount"] == -30000 and paid["fee"] == 0
    assert paid["payment_hash"] == inv["payment_hash"]
    assert await fulmen_db.balance(alice) == 70000
    assert await fulmen_db.balance(bob) == 30000
    # the receiver now sees it paid, with the preimage, which hashes to the payment hash
    r = await client.get(f"/api/v1/payments/{inv['payment_hash']}", headers=bob.invoice_headers)
    body = r.json()
    assert body["paid"] is True and body["details"]["amount"] == 30000
    import hashlib
    assert hashlib.sha256(bytes.fromhex(body["preimage"])).hexdigest() == inv["payment_hash"]
    for w in (alice, bob):
        assert await ledger_sum(w.id) == await fulmen_db.balance(w)


async def test_invoice_is_paid_at_most_once(fulmen_db):
    await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=100)
    carol = await fulmen_db.wallet("carol", sats=100)
    bob = await fulmen_db.wallet("bob")
    inv = await fulmen_db.invoice(bob, 10)
    assert (await fulmen_db.pay(alice, inv["bolt11"])).status_code == 201
    r = await fulmen_db.pay(carol, inv["bolt11"])
    assert r.status_code == 400 and "already paid" in r.json()["detail"]
    assert await fulmen_db.balance(carol) == 100000
    assert await fulmen_db.balance(bob) == 10000


async def test_concurrent_payers_of_one_invoice_pay_once(fulmen_db):
    await fulmen_db.start()
    payers = [await fulmen_db.wallet(f"p{i}", sats=50) for i in range(8)]
    bob = await fulmen_db.wallet("bob")
    inv = await fulmen_db.invoice(bob, 10)
    results = await asyncio.gather(*(fulmen_db.pay(p, inv["bolt11"]) for p in payers))
    assert sorted(r.status_code for r in results) == [201] + [400] * 7
    assert await fulmen_db.balance(bob) == 10000
    assert sum([await fulmen_db.balance(p) for p in payers]) == 8 * 50000 - 10000


async def test_concurrent_spends_never_overdraw(fulmen_db):
    await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=100)
    bob = await fulmen_db.wallet("bob")
    invoices = [await fulmen_db.invoice(bob, 7) for _ in range(30)]
    results = await asyncio.gather(*(fulmen_db.pay(alice, i["bolt11"]) for i in invoices))
    ok = [r for r in results if r.status_code == 201]
    refused = [r for r in results if r.status_code != 201]
    assert len(ok) == 100 // 7
    assert all(r.status_code == 400 and r.json()["detail"] == "Insufficient balance." for r in refused)
    assert await fulmen_db.balance(alice) == 100000 - len(ok) * 7000
    assert await ledger_sum(alice.id) == await fulmen_db.balance(alice)
    assert await fulmen_db.host.wallets.audit() == []


async def test_expired_invoice_is_not_paid(fulmen_db):
    await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=100)
    bob = await fulmen_db.wallet("bob")
    inv = await fulmen_db.invoice(bob, 10, expiry=1)
    await asyncio.sleep(1.1)
    r = await fulmen_db.pay(alice, inv["bolt11"])
    assert r.status_code == 400 and "expired" in r.json()["detail"]
    assert await fulmen_db.balance(alice) == 100000


@pytest.mark.parametrize(
    "body, detail",
    [
        ({"out": False, "amount": 0}, "greater than zero"),
        ({"out": False, "amount": -5}, "greater than zero"),
        ({"out": False}, "amount is required"),
        ({"out": False, "amount": "ten"}, "must be a number"),
        ({"out": False, "amount": True}, "must be a number"),
        ({"out": False, "amount": 0.0001}, "whole number of msat"),
        ({"out": False, "amount": 10**12}, "above this host's limit"),
        ({"out": False, "amount": 1, "unit": "XYZ"}, "ISO 4217"),
        ({"out": False, "amount": 1, "unit": "BTC"}, "ISO 4217"),
        ({"out": False, "amount": 1, "expiry": 0}, "expiry must be at least 1"),
        ({"out": False, "amount": 1, "memo": 5}, "memo must be a string"),
        ({"out": False, "amount": 1, "description_hash": "zz"}, "64 hex"),
        ({"out": False, "amount": 1, "extra": []}, "extra must be a JSON object"),
        ({"out": True, "bolt11": "lnbc1notaninvoice"}, "Invalid bolt11"),
        ({"out": True}, "bolt11 is required"),
        ({"out": "yes", "amount": 1}, "out must be true or false"),
    ],
)
async def test_bad_payment_input_is_a_clear_4xx(fulmen, body, detail):
    client = await fulmen.start()
    alice = await fulmen.wallet("alice", sats=10)
    r = await client.post("/api/v1/payments", headers=alice.admin_headers, json=body)
    assert 400 <= r.status_code < 500, r.text
    assert detail in r.json()["detail"]
    assert await fulmen.balance(alice) == 10000
    rows = await query("SELECT COUNT(*) AS n FROM fulmen_payment WHERE memo <> 'Admin credit'")
    assert rows[0]["n"] == 0


async def test_malformed_json_is_400(fulmen):
    client = await fulmen.start()
    alice = await fulmen.wallet("alice")
    r = await client.post("/api/v1/payments", headers={**alice.admin_headers, "content-type": "application/json"},
                          content=b"{not json")
    assert r.status_code == 400


async def test_amountless_invoice_is_refused(fulmen):
    await fulmen.start()
    alice = await fulmen.wallet("alice", sats=10)
    created = await fulmen.host.funding.create_invoice(0, "no amount", None, 600)
    r = await fulmen.pay(alice, created.bolt11)
    assert r.status_code == 400 and "Amountless" in r.json()["detail"]


async def test_insufficient_balance_changes_nothing(fulmen_db):
    await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=5)
    bob = await fulmen_db.wallet("bob")
    inv = await fulmen_db.invoice(bob, 6)
    r = await fulmen_db.pay(alice, inv["bolt11"])
    assert r.status_code == 400 and r.json()["detail"] == "Insufficient balance."
    assert await fulmen_db.balance(alice) == 5000 and await fulmen_db.balance(bob) == 0
    # the invoice is still payable by someone who can afford it
    carol = await fulmen_db.wallet("carol", sats=10)
    assert (await fulmen_db.pay(carol, inv["bolt11"])).status_code == 201


async def test_fake_wallet_refuses_external_invoices_and_refunds(fulmen):
    from fulmen.funding.fake import FakeWallet

    await fulmen.start()
    alice = await fulmen.wallet("alice", sats=100)
    other_node = FakeWallet("11" * 32)
    external = await other_node.create_invoice(10_000, "elsewhere", None, 600)
    r = await fulmen.pay(alice, external.bolt11)
    assert r.status_code == 400 and "FakeWallet" in r.json()["detail"]
    assert await fulmen.balance(alice) == 100000
    r = await fulmen.client.get("/api/v1/payments", headers=alice.read_headers, params={"out": "true"})
    assert r.json()[0]["status"] == "failed"
    assert await fulmen.host.wallets.audit() == []


async def test_idempotency_key_never_pays_twice(fulmen_db):
    client = await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=100)
    bob = await fulmen_db.wallet("bob")
    inv = await fulmen_db.invoice(bob, 10)
    headers = {**alice.admin_headers, "Idempotency-Key": "order-42"}
    body = {"out": True, "bolt11": inv["bolt11"]}
    first, second = await asyncio.gather(
        client.post("/api/v1/payments", headers=headers, json=body),
        client.post("/api/v1/payments", headers=headers, json=body),
    )
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    assert first.json()["checking_id"] == second.json()["checking_id"]
    third = await client.post("/api/v1/payments", headers=headers, json=body)
    assert third.json()["checking_id"] == first.json()["checking_id"]
    assert await fulmen_db.balance(alice) == 90000
    other = await fulmen_db.invoice(bob, 5)
    r = await client.post("/api/v1/payments", headers=headers, json={"out": True, "bolt11": other["bolt11"]})
    assert r.status_code == 409


async def test_settle_from_outside_credits_once(fulmen_db):
    await fulmen_db.start()
    bob = await fulmen_db.wallet("bob")
    inv = await fulmen_db.invoice(bob, 12)
    assert (await fulmen_db.settle_from_outside(inv["payment_hash"])).status_code == 200
    r = await fulmen_db.settle_from_outside(inv["payment_hash"])
    assert r.status_code == 400 and "already paid" in r.json()["detail"]
    assert await fulmen_db.balance(bob) == 12000


async def test_description_hash_and_unhashed_description(fulmen):
    import hashlib

    await fulmen.start()
    bob = await fulmen.wallet("bob")
    meta = '[["text/plain","hello"]]'
    inv = await fulmen.invoice(bob, 1, unhashed_description=meta.encode().hex())
    assert bolt11.decode(inv["bolt11"]).description_hash == hashlib.sha256(meta.encode()).hexdigest()
    h = "ab" * 32
    inv = await fulmen.invoice(bob, 1, description_hash=h)
    assert bolt11.decode(inv["bolt11"]).description_hash == h


async def test_check_payment_hides_details_from_strangers(fulmen):
    client = await fulmen.start()
    alice = await fulmen.wallet("alice", sats=10)
    bob = await fulmen.wallet("bob")
    inv = await fulmen.invoice(bob, 1)
    await fulmen.pay(alice, inv["bolt11"])
    r = await client.get(f"/api/v1/payments/{inv['payment_hash']}")
    assert r.json() == {"paid": True, "status": "success"}
    eve = await fulmen.wallet("eve")
    r = await client.get(f"/api/v1/payments/{inv['payment_hash']}", headers=eve.admin_headers)
    assert "preimage" not in r.json() and "details" not in r.json()
    r = await client.get(f"/api/v1/payments/{'0' * 64}")
    assert r.status_code == 404
    r = await client.get("/api/v1/payments/nothex")
    assert r.status_code == 400


async def test_decode_and_fee_reserve(fulmen):
    client = await fulmen.start()
    bob = await fulmen.wallet("bob")
    inv = await fulmen.invoice(bob, 1000, memo="m")
    r = await client.post("/api/v1/payments/decode", json={"data": inv["bolt11"]})
    assert r.status_code == 200
    d = r.json()
    assert d["amount_msat"] == 1_000_000 and d["payment_hash"] == inv["payment_hash"] and d["description"] == "m"
    r = await client.post("/api/v1/payments/decode", json={"data": "garbage"})
    assert r.status_code == 400 and r.json()["message"]
    r = await client.get("/api/v1/payments/fee-reserve", params={"invoice": inv["bolt11"]})
    assert r.json() == {"fee_reserve": 10_000}  # 1 % of 1,000 sat
    r = await client.get("/api/v1/payments/fee-reserve", params={"invoice": "x"})
    assert r.status_code == 400


async def test_no_endpoint_reveals_another_wallets_payments(fulmen):
    client = await fulmen.start()
    alice = await fulmen.wallet("alice", sats=10)
    bob = await fulmen.wallet("bob")
    inv = await fulmen.invoice(bob, 1)
    await fulmen.pay(alice, inv["bolt11"])
    r = await client.get("/api/v1/payments", headers=alice.read_headers)
    assert [p["wallet_id"] for p in r.json()] == [alice.id, alice.id]  # payment and top-up
    r = await client.get("/api/v1/payments", headers=bob.read_headers)
    assert [p["wallet_id"] for p in r.json()] == [bob.id]


async def test_admin_credit_and_debit_are_ledgered(fulmen_db):
    client = await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=10)
    r = await client.put("/users/api/v1/balance", json={"id": alice.id, "amount": -4},
                         headers=fulmen_db.admin_headers)
    assert r.status_code == 200 and r.json()["success"] is True
    r = await client.put("/users/api/v1/balance", json={"id": alice.id, "amount": -7},
                         headers=fulmen_db.admin_headers)
    assert r.status_code == 400
    r = await client.post(f"/admin/api/v1/wallets/{alice.id}/balance",
                          json={"amount_msat": 500, "reason": "goodwill"}, headers=fulmen_db.admin_headers)
    assert r.json() == {"balance": 6500}
    rows = await query("SELECT reason FROM fulmen_ledger WHERE wallet_id = {} ORDER BY id", alice.id)
    assert rows[-1]["reason"] == "goodwill"
    r = await client.put("/users/api/v1/balance", json={"id": "nope", "amount": 1},
                         headers=fulmen_db.admin_headers)
    assert r.status_code == 404
    r = await client.put("/users/api/v1/balance", json={"id": alice.id, "amount": 1})
    assert r.status_code == 401


async def test_refused_internal_payment_leaves_the_invoice_payable(fulmen_db):
    """A payer without the funds claims nothing: the invoice stays pending
    (the claim is undone with the rest) and the next payer can pay it."""
    client = await fulmen_db.start()
    poor = await fulmen_db.wallet("poor", sats=5)
    rich = await fulmen_db.wallet("rich", sats=100)
    bob = await fulmen_db.wallet("bob")
    inv = await fulmen_db.invoice(bob, 10)
    r = await fulmen_db.pay(poor, inv["bolt11"])
    assert r.status_code == 400 and r.json()["detail"] == "Insufficient balance.", r.text
    r = await client.get(f"/api/v1/payments/{inv['payment_hash']}", headers=bob.invoice_headers)
    assert r.json()["paid"] is False
    assert await fulmen_db.balance(poor) == 5000 and await fulmen_db.balance(bob) == 0
    r = await fulmen_db.pay(rich, inv["bolt11"])
    assert r.status_code == 201, r.text
    assert await fulmen_db.balance(rich) == 90000 and await fulmen_db.balance(bob) == 10000
    for w in (poor, rich, bob):
        assert await ledger_sum(w.id) == await fulmen_db.balance(w)


async def test_opposite_internal_payments_at_once_all_settle(fulmen_db):
    """Many payments between two wallets in both directions at the same time:
    wallet rows are locked in one order, so none deadlocks or fails."""
    await fulmen_db.start()
    a = await fulmen_db.wallet("a", sats=1000)
    b = await fulmen_db.wallet("b", sats=1000)
    a_to_b = [await fulmen_db.invoice(b, 1) for _ in range(12)]
    b_to_a = [await fulmen_db.invoice(a, 2) for _ in range(12)]
    results = await asyncio.gather(
        *[fulmen_db.pay(a, inv["bolt11"]) for inv in a_to_b],
        *[fulmen_db.pay(b, inv["bolt11"]) for inv in b_to_a],
    )
    assert [r.status_code for r in results] == [201] * 24, [r.text for r in results if r.status_code != 201]
    assert await fulmen_db.balance(a) == (1000 - 12 + 24) * 1000
    assert await fulmen_db.balance(b) == (1000 + 12 - 24) * 1000
    for w in (a, b):
        assert await ledger_sum(w.id) == await fulmen_db.balance(w)
