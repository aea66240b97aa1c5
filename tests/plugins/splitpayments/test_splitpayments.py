"""splitpayments: targets API, exact shares, no double payment on retries."""

import asyncio
import time

import fulmen_splitpayments
import pytest
from fulmen import query

PATH = "/splitpayments/api/v1/targets"


async def settle(f):
    """`f.drain()`, and also wait for a delivery the host's own hook worker
    claimed before the drain could (drain returns as soon as it finds nothing
    left to claim, while that worker may still be running the hook): wait
    until no delivery is due and unfinished (a failed one is due later)."""
    await f.drain()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = await query(
            "SELECT COUNT(*) AS n FROM fulmen_hook_delivery WHERE status = 'pending' "
            "AND next_attempt_at <= {}", int(time.time() * 1000),
        )
        if not int(rows[0]["n"]):
            break
        await asyncio.sleep(0.02)
    await f.drain()


async def ledger_sum(wallet_id):
    rows = await query(
        "SELECT COALESCE(SUM(amount_msat), 0) AS s FROM fulmen_ledger WHERE wallet_id = {}", wallet_id
    )
    return int(rows[0]["s"])


async def receive(f, wallet, sats):
    """`wallet` is paid `sats` from a fresh funded wallet; hooks have run after."""
    payer = await f.wallet("payer", sats=sats)
    inv = await f.invoice(wallet, sats)
    r = await f.pay(payer, inv["bolt11"])
    assert r.status_code == 201, r.text
    await settle(f)
    return inv


async def incoming(f, payment_hash, wallet):
    return [p for p in await f.host.payments.find_by_hash(payment_hash, wallet.id) if not p.out][0]


async def test_set_get_delete_targets(fulmen_db):
    client = await fulmen_db.start(plugins=["splitpayments"])
    src = await fulmen_db.wallet("src")
    a = await fulmen_db.wallet("a")
    b = await fulmen_db.wallet("b")
    body = {"targets": [
        {"wallet": a.id, "alias": "Alice", "percent": 12.5},
        {"wallet": b.inkey, "alias": "Bob", "percent": 30},
    ]}
    r = await client.put(PATH, json=body, headers=src.admin_headers)
    assert r.status_code == 200, r.text
    r = await client.get(PATH, headers=src.admin_headers)
    assert r.status_code == 200
    got = sorted(r.json(), key=lambda t: t["alias"])
    assert [(t["wallet"], t["alias"], t["percent"], t["source"]) for t in got] == [
        (a.id, "Alice", 12.5, src.id), (b.id, "Bob", 30.0, src.id),  # invoice key stored as wallet id
    ]
    assert all(t["id"] for t in got)
    # PUT replaces the whole list
    r = await client.put(PATH, json={"targets": [{"wallet": b.id, "alias": "", "percent": 5}]},
                         headers=src.admin_headers)
    assert [t["wallet"] for t in r.json()] == [b.id]
    # another wallet's targets are its own
    assert (await client.get(PATH, headers=a.admin_headers)).json() == []
    r = await client.delete(PATH, headers=src.admin_headers)
    assert r.status_code == 200 and r.json()["success"] is True
    assert (await client.get(PATH, headers=src.admin_headers)).json() == []


@pytest.mark.parametrize("kind, status", [("invoice", 403), ("read", 403), (None, 401), ("bad", 401)])
async def test_admin_key_needed(fulmen, kind, status):
    client = await fulmen.start(plugins=["splitpayments"])
    src = await fulmen.wallet("src")
    headers = {"invoice": src.invoice_headers, "read": src.read_headers, None: {},
               "bad": {"X-Api-Key": "nope"}}[kind]
    for method in ("get", "delete"):
        assert (await getattr(client, method)(PATH, headers=headers)).status_code == status
    r = await client.put(PATH, json={"targets": []}, headers=headers)
    assert r.status_code == status and "detail" in r.json()


async def test_validation_errors(fulmen_db):
    client = await fulmen_db.start(plugins=["splitpayments"])
    src = await fulmen_db.wallet("src")
    a = await fulmen_db.wallet("a")
    b = await fulmen_db.wallet("b")
    cases = [
        ({"targets": [{"wallet": a.id, "percent": 60}, {"wallet": b.id, "percent": 40.5}]}, "more than 100"),
        ({"targets": [{"wallet": src.id, "percent": 10}]}, "itself"),
        ({"targets": [{"wallet": src.inkey, "percent": 10}]}, "itself"),
        ({"targets": [{"wallet": a.id, "percent": 10}, {"wallet": a.inkey, "percent": 10}]}, "twice"),
        ({"targets": [{"wallet": a.id, "percent": 0}]}, "greater than 0"),
        ({"targets": [{"wallet": a.id, "percent": -5}]}, "greater than 0"),
        ({"targets": [{"wallet": a.id, "percent": 100.01}]}, "at most 100"),
        ({"targets": [{"wallet": a.id, "percent": "10"}]}, "must be a number"),
        ({"targets": [{"wallet": a.id, "percent": True}]}, "must be a number"),
        ({"targets": [{"wallet": a.id}]}, "percent is required"),
        ({"targets": [{"wallet": "no-such-wallet", "percent": 10}]}, "no wallet on this host"),
        ({"targets": [{"wallet": "", "percent": 10}]}, "wallet is required"),
        ({"targets": [{"wallet": "alice@example.com", "percent": 10}]}, "Lightning Address"),
        ({"targets": [{"wallet": "LNURL1DP68GURN8GHJ7", "percent": 10}]}, "LNURL"),
        ({"targets": [{"wallet": a.id, "alias": 5, "percent": 10}]}, "alias must be a string"),
        ({"targets": "x"}, "targets must be a list"),
        ({}, "targets must be a list"),
        ({"targets": [5]}, "must be an object"),
    ]
    for body, message in cases:
        r = await client.put(PATH, json=body, headers=src.admin_headers)
        assert r.status_code == 400, (body, r.text)
        assert message in r.json()["detail"], (body, r.json())
    # nothing was stored by any refused request
    assert (await client.get(PATH, headers=src.admin_headers)).json() == []
    # exactly 100 % in floats that do not add up exactly in binary is accepted
    body = {"targets": [{"wallet": a.id, "percent": 33.3}, {"wallet": b.id, "percent": 66.7}]}
    assert (await client.put(PATH, json=body, headers=src.admin_headers)).status_code == 200


async def test_incoming_payment_is_split_exactly(fulmen_db):
    client = await fulmen_db.start(plugins=["splitpayments"])
    src = await fulmen_db.wallet("src")
    a = await fulmen_db.wallet("a")
    b = await fulmen_db.wallet("b")
    body = {"targets": [{"wallet": a.id, "alias": "a", "percent": 33.3},
                        {"wallet": b.inkey, "alias": "b", "percent": 12.5}]}
    assert (await client.put(PATH, json=body, headers=src.admin_headers)).status_code == 200
    inv = await receive(fulmen_db, src, 1001)  # 1 001 000 msat
    # floor(1001000 * 33.3 / 100) = 333333, floor(1001000 * 12.5 / 100) = 125125
    assert await fulmen_db.balance(a) == 333333
    assert await fulmen_db.balance(b) == 125125
    assert await fulmen_db.balance(src) == 1001000 - 333333 - 125125
    # the shares are tagged, and were not split again by the receivers or the source
    r = await client.get("/api/v1/payments", headers=a.read_headers)
    [share] = r.json()
    assert share["tag"] == "splitpayments" and share["amount"] == 333333
    assert share["extra"]["source_payment"] == inv["payment_hash"]
    rows = await query("SELECT status, amount_msat FROM splitpayments_split ORDER BY amount_msat")
    assert [(r["status"], int(r["amount_msat"])) for r in rows] == [("done", 125125), ("done", 333333)]
    # a second payment is split too
    await receive(fulmen_db, src, 10)
    assert await fulmen_db.balance(a) == 333333 + 3330
    assert await fulmen_db.balance(b) == 125125 + 1250
    for w in (src, a, b):
        assert await ledger_sum(w.id) == await fulmen_db.balance(w)
    assert await fulmen_db.host.wallets.audit() == []


async def test_outgoing_payments_and_other_wallets_are_not_split(fulmen_db):
    client = await fulmen_db.start(plugins=["splitpayments"])
    src = await fulmen_db.wallet("src", sats=100)
    a = await fulmen_db.wallet("a")
    other = await fulmen_db.wallet("other")
    body = {"targets": [{"wallet": a.id, "alias": "a", "percent": 50}]}
    assert (await client.put(PATH, json=body, headers=src.admin_headers)).status_code == 200
    inv = await fulmen_db.invoice(other, 40)
    assert (await fulmen_db.pay(src, inv["bolt11"])).status_code == 201
    await receive(fulmen_db, other, 20)
    assert await fulmen_db.balance(a) == 0
    assert await fulmen_db.balance(src) == 60000


async def test_mutual_targets_do_not_loop(fulmen_db):
    client = await fulmen_db.start(plugins=["splitpayments"])
    a = await fulmen_db.wallet("a")
    b = await fulmen_db.wallet("b")
    for w, t in ((a, b), (b, a)):
        r = await client.put(PATH, json={"targets": [{"wallet": t.id, "alias": "", "percent": 50}]},
                             headers=w.admin_headers)
        assert r.status_code == 200
    await receive(fulmen_db, a, 100)
    assert await fulmen_db.balance(a) == 50000
    assert await fulmen_db.balance(b) == 50000


async def test_external_payment_is_split(fulmen_db):
    client = await fulmen_db.start(plugins=["splitpayments"])
    src = await fulmen_db.wallet("src")
    a = await fulmen_db.wallet("a")
    body = {"targets": [{"wallet": a.id, "alias": "a", "percent": 25}]}
    assert (await client.put(PATH, json=body, headers=src.admin_headers)).status_code == 200
    inv = await fulmen_db.invoice(src, 400)
    assert (await fulmen_db.settle_from_outside(inv["payment_hash"])).status_code == 200
    await settle(fulmen_db)
    assert await fulmen_db.balance(a) == 100000
    assert await fulmen_db.balance(src) == 300000
    assert await fulmen_db.host.wallets.audit() == []


async def test_hook_retry_never_pays_twice(fulmen_db):
    client = await fulmen_db.start(plugins=["splitpayments"])
    host = fulmen_db.host
    src = await fulmen_db.wallet("src")
    a = await fulmen_db.wallet("a")
    b = await fulmen_db.wallet("b")
    body = {"targets": [{"wallet": a.id, "alias": "a", "percent": 40},
                        {"wallet": b.id, "alias": "b", "percent": 10}]}
    assert (await client.put(PATH, json=body, headers=src.admin_headers)).status_code == 200
    inv = await receive(fulmen_db, src, 1000)
    payment = await incoming(fulmen_db, inv["payment_hash"], src)
    assert (await fulmen_db.balance(a), await fulmen_db.balance(b)) == (400000, 100000)

    # the host delivers again (as after a lost acknowledgement)
    await fulmen_splitpayments.on_invoice_paid(host=host, payment=payment)
    # a crash after paying but before the share was marked done
    await query("UPDATE splitpayments_split SET status = 'pending' WHERE payment_id = {}", payment.id)
    await fulmen_splitpayments.on_invoice_paid(host=host, payment=payment)
    # and several runs at once
    await query("UPDATE splitpayments_split SET status = 'pending' WHERE payment_id = {}", payment.id)
    await asyncio.gather(*(fulmen_splitpayments.on_invoice_paid(host=host, payment=payment)
                           for _ in range(4)))
    await settle(fulmen_db)
    assert (await fulmen_db.balance(a), await fulmen_db.balance(b)) == (400000, 100000)
    assert await fulmen_db.balance(src) == 500000
    rows = await query("SELECT status FROM splitpayments_split WHERE payment_id = {}", payment.id)
    assert sorted(r["status"] for r in rows) == ["done", "done"]
    outgoing = await query(
        "SELECT COUNT(*) AS n FROM fulmen_payment WHERE wallet_id = {} AND out", src.id
    )
    assert int(outgoing[0]["n"]) == 2
    assert await fulmen_db.host.wallets.audit() == []


async def test_concurrent_first_delivery_pays_once(fulmen_db):
    """Several runs of the hook race from the start (several host processes)."""
    client = await fulmen_db.start(plugins=["splitpayments"])
    host = fulmen_db.host
    src = await fulmen_db.wallet("src")
    a = await fulmen_db.wallet("a")
    body = {"targets": [{"wallet": a.id, "alias": "a", "percent": 70}]}
    assert (await client.put(PATH, json=body, headers=src.admin_headers)).status_code == 200
    payer = await fulmen_db.wallet("payer", sats=100)
    inv = await fulmen_db.invoice(src, 100)
    assert (await fulmen_db.pay(payer, inv["bolt11"])).status_code == 201
    payment = await incoming(fulmen_db, inv["payment_hash"], src)
    await asyncio.gather(*(fulmen_splitpayments.on_invoice_paid(host=host, payment=payment)
                           for _ in range(5)))
    await settle(fulmen_db)
    assert await fulmen_db.balance(a) == 70000
    assert await fulmen_db.balance(src) == 30000
    assert await fulmen_db.host.wallets.audit() == []


async def test_share_waits_for_funds_and_is_retried(fulmen_db):
    """If the source spent the money before the split ran, the hook fails (so
    the host retries it) and the share is paid on a later attempt, once."""
    client = await fulmen_db.start(plugins=["splitpayments"])
    host = fulmen_db.host
    src = await fulmen_db.wallet("src")
    a = await fulmen_db.wallet("a")
    body = {"targets": [{"wallet": a.id, "alias": "a", "percent": 50}]}
    assert (await client.put(PATH, json=body, headers=src.admin_headers)).status_code == 200
    # while the plugin is disabled the host records no delivery for it, so the
    # hook runs only when this test calls it
    await host.set_plugin_enabled("splitpayments", False)
    payer = await fulmen_db.wallet("payer", sats=100)
    inv = await fulmen_db.invoice(src, 100)
    assert (await fulmen_db.pay(payer, inv["bolt11"])).status_code == 201
    sink = await fulmen_db.wallet("sink")
    spend = await fulmen_db.invoice(sink, 80)
    assert (await fulmen_db.pay(src, spend["bolt11"])).status_code == 201
    await settle(fulmen_db)
    payment = await incoming(fulmen_db, inv["payment_hash"], src)
    await host.set_plugin_enabled("splitpayments", True)
    with pytest.raises(RuntimeError, match="Insufficient balance"):
        await fulmen_splitpayments.on_invoice_paid(host=host, payment=payment)
    assert await fulmen_db.balance(a) == 0
    assert await fulmen_db.balance(src) == 20000
    # the share's invoice in the target wallet expires before the next attempt:
    # the retry makes a new one (and the old one can never be paid)
    [row] = await query("SELECT * FROM splitpayments_split WHERE payment_id = {}", payment.id)
    assert row["status"] == "pending" and "Insufficient balance" in row["error"]
    await query("UPDATE fulmen_payment SET expires_at = 0 WHERE payment_hash = {}", row["payment_hash"])
    await fulmen_db.fund(src, 30)
    await fulmen_splitpayments.on_invoice_paid(host=host, payment=payment)
    await fulmen_splitpayments.on_invoice_paid(host=host, payment=payment)
    await settle(fulmen_db)
    assert await fulmen_db.balance(a) == 50000
    assert await fulmen_db.balance(src) == 0
    [done] = await query("SELECT * FROM splitpayments_split WHERE payment_id = {}", payment.id)
    assert done["status"] == "done" and done["payment_hash"] != row["payment_hash"]
    assert await fulmen_db.host.wallets.audit() == []


async def test_invoice_key_cannot_tag_invoices_out_of_the_split(fulmen_db):
    """`extra` is written by whoever creates the invoice (an invoice key is
    enough): a payment looking like a share is still split unless this plugin
    really made it as a share for this wallet."""
    client = await fulmen_db.start(plugins=["splitpayments"])
    src = await fulmen_db.wallet("src")
    a = await fulmen_db.wallet("a")
    r = await client.put(PATH, json={"targets": [{"wallet": a.id, "percent": 50}]},
                         headers=src.admin_headers)
    assert r.status_code == 200, r.text
    payer = await fulmen_db.wallet("payer", sats=1000)
    for extra in ({"tag": "splitpayments"}, {"splitted": True}):
        inv = await fulmen_db.invoice(src, 100, extra=extra)
        assert (await fulmen_db.pay(payer, inv["bolt11"])).status_code == 201
        await settle(fulmen_db)
    assert await fulmen_db.balance(a) == 100_000  # half of each of the two payments
    assert await fulmen_db.balance(src) == 100_000


@pytest.mark.other_plugins  # needs tpos installed
async def test_terminal_tip_is_not_split(fulmen_db):
    """A tpos invoice's tip leaves the wallet for the tip wallet: only the
    rest is shared, so a tipped sale never costs the wallet more than it got."""
    client = await fulmen_db.start(plugins=["splitpayments", "tpos"])
    shop = await fulmen_db.wallet("shop")
    staff = await fulmen_db.wallet("staff")
    owner = await fulmen_db.wallet("owner")
    customer = await fulmen_db.wallet("customer", sats=1000)
    r = await client.put(PATH, json={"targets": [{"wallet": owner.id, "percent": 100}]},
                         headers=shop.admin_headers)
    assert r.status_code == 200, r.text
    r = await client.post("/tpos/api/v1/tposs", json={"name": "Bar", "tip_wallet": staff.id},
                          headers=shop.admin_headers)
    assert r.status_code == 201, r.text
    r = await client.post(f"/tpos/api/v1/tposs/{r.json()['id']}/invoices",
                          json={"amount": 110, "tip_amount": 10})
    assert r.status_code == 201, r.text
    assert (await fulmen_db.pay(customer, r.json()["bolt11"])).status_code == 201
    await settle(fulmen_db)
    await settle(fulmen_db)
    assert await fulmen_db.balance(staff) == 10_000
    assert await fulmen_db.balance(owner) == 100_000  # 100 % of the 100 sats sale, not of the tip
    assert await fulmen_db.balance(shop) == 0
    # an invoice made with the wallet API that only looks like a terminal's is split whole
    inv = await fulmen_db.invoice(shop, 50, extra={"tag": "tpos", "tip_amount": 50})
    assert (await fulmen_db.pay(customer, inv["bolt11"])).status_code == 201
    await settle(fulmen_db)
    assert await fulmen_db.balance(owner) == 150_000
    assert await fulmen_db.host.wallets.audit() == []


async def test_targets_changed_during_a_concurrent_first_run_pay_one_set(fulmen_db, monkeypatch):
    """Two runs of the hook for one payment, the second having looked for
    recorded shares before the first recorded them, with the targets replaced
    in between: only one set of shares is recorded and paid (never 60 % + 60 %)."""
    from fulmen_splitpayments import splits

    client = await fulmen_db.start(plugins=["splitpayments"])
    host = fulmen_db.host
    src = await fulmen_db.wallet("src")
    a = await fulmen_db.wallet("a")
    b = await fulmen_db.wallet("b")
    for target in (a, b):
        r = await client.put(PATH, json={"targets": [{"wallet": target.id, "percent": 60}]},
                             headers=src.admin_headers)
        assert r.status_code == 200
        if target is a:
            payer = await fulmen_db.wallet("payer", sats=100)
            inv = await fulmen_db.invoice(src, 100)
            assert (await fulmen_db.pay(payer, inv["bolt11"])).status_code == 201
            await settle(fulmen_db)  # the first run: 60 % to a
    assert await fulmen_db.balance(a) == 60_000
    payment = await incoming(fulmen_db, inv["payment_hash"], src)
    real_rows = splits._rows
    seen = {"n": 0}

    async def stale_rows(payment_id):
        seen["n"] += 1
        return [] if seen["n"] == 1 else await real_rows(payment_id)

    monkeypatch.setattr(splits, "_rows", stale_rows)
    await splits.split_payment(host, payment)
    await settle(fulmen_db)
    assert await fulmen_db.balance(b) == 0
    assert await fulmen_db.balance(a) == 60_000 and await fulmen_db.balance(src) == 40_000
    assert await fulmen_db.host.wallets.audit() == []


async def test_only_wallets_with_targets_get_hook_deliveries(fulmen_db):
    """Payments of a wallet without targets record no hook delivery at all;
    setting targets starts the split, deleting them (or an empty PUT) stops it."""
    client = await fulmen_db.start(plugins=["splitpayments"])
    src = await fulmen_db.wallet("src")
    a = await fulmen_db.wallet("a")

    async def deliveries():
        rows = await query("SELECT COUNT(*) AS n FROM fulmen_hook_delivery WHERE plugin_id = 'splitpayments'")
        return int(rows[0]["n"])

    await receive(fulmen_db, src, 10)
    assert await deliveries() == 0
    body = {"targets": [{"wallet": a.id, "alias": "A", "percent": 50}]}
    assert (await client.put(PATH, json=body, headers=src.admin_headers)).status_code == 200
    await receive(fulmen_db, src, 10)
    # the source's payment, and none for the share paid into `a` (no targets)
    assert await deliveries() == 1
    assert await fulmen_db.balance(a) == 5000
    assert (await client.delete(PATH, headers=src.admin_headers)).status_code == 200
    await receive(fulmen_db, src, 10)
    assert (await client.put(PATH, json=body, headers=src.admin_headers)).status_code == 200
    assert (await client.put(PATH, json={"targets": []}, headers=src.admin_headers)).status_code == 200
    await receive(fulmen_db, src, 10)
    assert await deliveries() == 1
    assert await fulmen_db.balance(a) == 5000
    assert await fulmen_db.balance(src) == 35000


async def test_upgrade_watches_wallets_that_already_have_targets(fulmen_db):
    """Targets stored before the plugin watched wallets keep splitting: the
    upgrade's migration watches every wallet that has targets."""
    import importlib

    client = await fulmen_db.start(plugins=["splitpayments"])
    src = await fulmen_db.wallet("src")
    a = await fulmen_db.wallet("a")
    body = {"targets": [{"wallet": a.id, "alias": "A", "percent": 20}]}
    assert (await client.put(PATH, json=body, headers=src.admin_headers)).status_code == 200
    await query("DELETE FROM fulmen_hook_wallet")  # as before the upgrade
    migration = importlib.import_module(
        "fulmen_splitpayments.migrations.splitpayments_2026_11_27t11_00_00_000000"
    )
    for _ in range(2):  # and running it again changes nothing
        await (await migration.forwards()).run()
    rows = await query("SELECT plugin_id, wallet_id FROM fulmen_hook_wallet")
    assert [(r["plugin_id"], r["wallet_id"]) for r in rows] == [("splitpayments", src.id)]
    await receive(fulmen_db, src, 10)
    assert await fulmen_db.balance(a) == 2000
