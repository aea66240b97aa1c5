"""Review: ways to move money that should not move."""

import asyncio
import secrets
import time

import bolt11
from bolt11 import Bolt11, MilliSatoshi, TagChar, Tags
from fulmen.db import query
from fulmen.testing import Fulmen


def forged_invoice(payment_hash: str, amount_msat: int) -> str:
    """A valid bolt11 from some other node that reuses a payment hash it saw."""
    tags = Tags()
    tags.add(TagChar.payment_hash, payment_hash)
    tags.add(TagChar.payment_secret, secrets.token_hex(32))
    tags.add(TagChar.description, "a coffee")
    tags.add(TagChar.expire_time, 3600)
    invoice = Bolt11(
        currency="bc", date=int(time.time()), tags=tags, amount_msat=MilliSatoshi(amount_msat)
    )
    return bolt11.encode(invoice, secrets.token_hex(32))


async def audit_ok(f: Fulmen) -> bool:
    r = await f.client.get("/admin/api/v1/audit", headers=f.admin_headers)
    return r.json()["ok"]


async def test_review_foreign_invoice_reusing_a_hash_never_charges_more_than_it_says(fulmen_db):
    """Mallory issues a 5,000 sat invoice here, then hands Alice a 1 sat invoice
    (signed by any key) carrying the same payment hash. Alice's client shows
    1 sat; the host must not take 5,000 sat from her."""
    await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=10_000)
    mallory = await fulmen_db.wallet("mallory")
    real = await fulmen_db.invoice(mallory, 5_000)
    fake = forged_invoice(real["payment_hash"], 1_000)
    assert bolt11.decode(fake).amount_msat == 1_000

    r = await fulmen_db.pay(alice, fake)
    charged = 10_000_000 - await fulmen_db.balance(alice)
    assert charged <= 1_000 + 2_000, (
        f"charged {charged} msat for a 1 sat invoice ({r.status_code} {r.text[:120]})"
    )
    assert await fulmen_db.balance(mallory) == 0


async def test_review_invoice_of_a_deleted_wallet_is_not_paid(fulmen_db):
    client = await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=100)
    bob = await fulmen_db.wallet("bob")
    inv = await fulmen_db.invoice(bob, 10)
    r = await client.delete(
        f"/api/v1/wallet/{bob.id}", headers={"Authorization": f"Bearer {bob.account_token}"}
    )
    assert r.status_code == 200
    r = await fulmen_db.pay(alice, inv["bolt11"])
    assert 400 <= r.status_code < 500, r.text
    assert await fulmen_db.balance(alice) == 100_000
    assert await audit_ok(fulmen_db)


async def test_review_wallet_delete_cannot_race_a_credit(pg_fulmen, monkeypatch):
    """A credit committed by another process between the delete's balance check
    and its UPDATE must not leave a deleted wallet holding funds."""
    import asyncpg
    import fulmen.wallets as wallets_module

    client = await pg_fulmen.start()
    bob = await pg_fulmen.wallet("bob")
    real_query = wallets_module.query

    async def credit_from_elsewhere() -> None:
        conn = await asyncpg.connect(pg_fulmen.database_url)
        try:
            await conn.execute("SET lock_timeout = '500ms'")
            async with conn.transaction():
                await conn.execute(
                    "UPDATE fulmen_wallet SET balance_msat = balance_msat + 5000 WHERE id = $1",
                    bob.id,
                )
                await conn.execute(
                    "INSERT INTO fulmen_ledger (wallet_id, amount_msat, kind, reason, created_at) "
                    "VALUES ($1, 5000, 'admin', 'race', 0)",
                    bob.id,
                )
        except asyncpg.exceptions.LockNotAvailableError:
            pass  # the delete holds the row: no interleaving possible (fixed)
        finally:
            await conn.close()

    async def interleaving_query(sql, *args):
        if sql.startswith("UPDATE fulmen_wallet SET deleted"):
            await credit_from_elsewhere()
        return await real_query(sql, *args)

    monkeypatch.setattr(wallets_module, "query", interleaving_query)
    await client.delete(
        f"/api/v1/wallet/{bob.id}", headers={"Authorization": f"Bearer {bob.account_token}"}
    )
    monkeypatch.setattr(wallets_module, "query", real_query)
    row = (await query("SELECT deleted, balance_msat FROM fulmen_wallet WHERE id = {}", bob.id))[0]
    assert not (row["deleted"] and int(row["balance_msat"]) > 0), row


# --- properties verified to hold --------------------------------------------------------


async def test_review_settle_from_outside_and_internal_pay_race_credits_once(fulmen_db):
    """The two ways an invoice gets paid, at once: exactly one credits it."""
    await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=100)
    bob = await fulmen_db.wallet("bob")
    for _ in range(5):
        inv = await fulmen_db.invoice(bob, 10)
        settled, paid = await asyncio.gather(
            fulmen_db.settle_from_outside(inv["payment_hash"]), fulmen_db.pay(alice, inv["bolt11"])
        )
        assert [settled.status_code, paid.status_code].count(200) + [paid.status_code].count(
            201
        ) == 1, (settled.text, paid.text)
    assert await audit_ok(fulmen_db)
    alice_paid = 100_000 - await fulmen_db.balance(alice)
    assert await fulmen_db.balance(bob) == 50_000
    assert alice_paid in range(0, 50_001, 10_000)
    rows = await query(
        "SELECT COUNT(*) AS n FROM fulmen_payment WHERE wallet_id = {} AND out", alice.id
    )
    assert int(rows[0]["n"]) * 10_000 == alice_paid


async def test_review_self_payment_is_neutral_and_ledgered(fulmen_db):
    await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=10)
    inv = await fulmen_db.invoice(alice, 7)
    r = await fulmen_db.pay(alice, inv["bolt11"])
    assert r.status_code == 201, r.text
    assert await fulmen_db.balance(alice) == 10_000
    r = await fulmen_db.pay(alice, inv["bolt11"])
    assert r.status_code == 400 and "already paid" in r.json()["detail"]
    assert await audit_ok(fulmen_db)


async def test_review_failed_external_payment_refunds_exactly_once(fulmen_db):
    """FakeWallet refuses external invoices; the reserve and amount come back
    once, even when reconciliation runs again afterwards."""
    await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=100)
    fake = forged_invoice(secrets.token_hex(32), 50_000)
    r = await fulmen_db.pay(alice, fake)
    assert r.status_code == 400
    await fulmen_db.host.payments.reconcile()
    await fulmen_db.host.payments.reconcile()
    assert await fulmen_db.balance(alice) == 100_000
    rows = await query(
        "SELECT kind, amount_msat FROM fulmen_ledger WHERE wallet_id = {} ORDER BY id", alice.id
    )
    assert [r["kind"] for r in rows] == ["admin", "payment", "refund"]
    assert int(rows[1]["amount_msat"]) == -int(rows[2]["amount_msat"])
    assert await audit_ok(fulmen_db)
