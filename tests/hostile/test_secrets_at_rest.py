"""What a copy of the database alone gives away: no withdraw link secret
(only its sha256) and no preimage of an unpaid FakeWallet invoice."""

from __future__ import annotations

import hashlib
import importlib
import stat
from typing import Any

import lnurl
from fulmen import query
from fulmen.db import applied_migrations, is_postgres

WITHDRAW = "/withdraw/api/v1/links"
MIGRATION = "fulmen_withdraw.migrations.withdraw_2026_12_02t12_00_00_000000"


async def database_dump() -> str:
    """Every value of every row of every table, as text."""
    tables = await query(
        "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public'"
    ) if is_postgres() else await query("SELECT name FROM sqlite_master WHERE type = 'table'")
    assert any(t["name"] == "fulmen_payment" for t in tables)
    out = []
    for table in tables:
        for row in await query(f'SELECT * FROM "{table["name"]}"'):
            out.extend(str(v) for v in row.values())
    return "\n".join(out)


async def make_link(client: Any, wallet: Any, **fields: Any) -> dict[str, Any]:
    body = {"title": "Voucher", "min_withdrawable": 10, "max_withdrawable": 100, "uses": 2,
            "wait_time": 0, "is_unique": False, **fields}
    r = await client.post(WITHDRAW, json=body, headers=wallet.admin_headers)
    assert r.status_code == 201, r.text
    return r.json()


async def test_database_holds_no_link_secret_and_no_unpaid_preimage(fulmen_db, tmp_path):
    client = await fulmen_db.start(plugins=["withdraw"])
    src = await fulmen_db.wallet("src", sats=1000)
    dst = await fulmen_db.wallet("dst")
    links = [await make_link(client, src, title=f"L{i}") for i in range(3)]
    unpaid = [await fulmen_db.invoice(dst, 5 + i) for i in range(3)]
    paid = await fulmen_db.invoice(dst, 20)
    assert (await fulmen_db.pay(src, paid["bolt11"])).status_code == 201

    dump = await database_dump()
    for link in links:
        assert link["unique_hash"] and link["unique_hash"] not in dump
        assert hashlib.sha256(link["unique_hash"].encode()).hexdigest() in dump
    for inv in unpaid:
        preimage = fulmen_db.host.payments.known_preimage(
            {"preimage": None, "bolt11": inv["bolt11"], "payment_hash": inv["payment_hash"]})
        assert hashlib.sha256(bytes.fromhex(preimage)).hexdigest() == inv["payment_hash"]
        assert preimage not in dump
    # a paid invoice's preimage is stored (and shown): it proves the payment
    r = await client.get(f"/api/v1/payments/{paid['payment_hash']}", headers=dst.invoice_headers)
    assert r.json()["paid"] is True and r.json()["preimage"] in dump
    # the key that derives link secrets lives in the data folder, 0600
    key_file = tmp_path / "data" / "withdraw_link_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    # The derived secret works as before: the link's page and a claim.
    link = links[0]
    assert (await client.get(f"/withdraw/{link['unique_hash']}")).status_code == 200
    r = await client.get(f"{WITHDRAW}/{link['id']}", headers=src.admin_headers)
    assert r.json()["unique_hash"] == link["unique_hash"] and r.json()["lnurl"] == link["lnurl"]
    res = (await client.get(lnurl.url_decode(link["lnurl"]))).json()
    assert res["tag"] == "withdrawRequest" and res["callback"].endswith(link["unique_hash"])
    pr = (await fulmen_db.invoice(dst, 50))["bolt11"]
    r = await client.get(res["callback"], params={"k1": res["k1"], "pr": pr})
    assert r.json() == {"status": "OK"}
    assert await fulmen_db.balance(dst) == 70_000  # msat
    # a guessed secret finds nothing
    r = await client.get(f"/withdraw/api/v1/lnurl/{link['unique_hash'][:-1]}A")
    assert r.status_code == 404


async def test_links_made_before_keep_working_through_the_stored_hash(fulmen_db):
    client = await fulmen_db.start(plugins=["withdraw"])
    src = await fulmen_db.wallet("src", sats=1000)
    dst = await fulmen_db.wallet("dst")
    applied = await applied_migrations("withdraw")
    assert "2026-12-02T12:00:00:000000" in {r["name"] for r in applied}
    old, new = await make_link(client, src, title="old"), await make_link(client, src, title="new")
    # The old way: a random secret stored as it is.
    old_secret = "q" * 8 + "Old_Random-Secret" + "x" * 7
    await query("UPDATE withdraw_link SET unique_hash = {} WHERE id = {}", old_secret, old["id"])

    migration = importlib.import_module(MIGRATION)
    assert await migration.hash_stored_secrets() == 1
    assert await migration.hash_stored_secrets() == 0  # run again: nothing left to convert
    assert old_secret not in await database_dump()

    # The old LNURL still opens and pays.
    r = await client.get(f"/withdraw/api/v1/lnurl/{old_secret}")
    assert r.status_code == 200 and r.json()["tag"] == "withdrawRequest"
    pr = (await fulmen_db.invoice(dst, 30))["bolt11"]
    r = await client.get(f"/withdraw/api/v1/lnurl/cb/{old_secret}", params={"k1": r.json()["k1"], "pr": pr})
    assert r.json() == {"status": "OK"}
    assert (await client.get(f"/withdraw/{old_secret}")).status_code == 200
    # Its secret cannot be shown again (it was random, not derived); the new link's can.
    r = await client.get(WITHDRAW, headers=src.admin_headers)
    by_id = {x["id"]: x for x in r.json()["data"]}
    assert by_id[old["id"]]["unique_hash"] is None and by_id[old["id"]]["lnurl"] is None
    assert by_id[old["id"]]["used"] == 1
    assert by_id[new["id"]]["unique_hash"] == new["unique_hash"]


async def test_internal_payment_of_a_fake_invoice_yields_its_preimage(fulmen_db):
    """SQLite and PostgreSQL's one-statement path (two wallets), the
    step-by-step path (a wallet paying itself), and a payment from outside."""
    await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=1000)
    bob = await fulmen_db.wallet("bob")
    cases = [(alice, await fulmen_db.invoice(bob, 10)), (alice, await fulmen_db.invoice(alice, 10))]
    for payer, inv in cases:
        before = await query("SELECT preimage FROM fulmen_payment WHERE payment_hash = {}",
                             inv["payment_hash"])
        assert before == [{"preimage": None}]
        r = await fulmen_db.pay(payer, inv["bolt11"])
        assert r.status_code == 201, r.text
        rows = await query("SELECT out, preimage FROM fulmen_payment WHERE payment_hash = {}",
                           inv["payment_hash"])
        assert len(rows) == 2
        for row in rows:  # the payer's receipt and the invoice both hold it
            assert hashlib.sha256(bytes.fromhex(row["preimage"])).hexdigest() == inv["payment_hash"]
        r = await fulmen_db.client.get(f"/api/v1/payments/{inv['payment_hash']}",
                                       headers=payer.admin_headers)
        assert r.json()["preimage"] == rows[0]["preimage"]
    outside = await fulmen_db.invoice(bob, 7)
    assert (await fulmen_db.settle_from_outside(outside["payment_hash"])).status_code == 200
    rows = await query("SELECT preimage FROM fulmen_payment WHERE payment_hash = {}",
                       outside["payment_hash"])
    assert hashlib.sha256(bytes.fromhex(rows[0]["preimage"])).hexdigest() == outside["payment_hash"]
