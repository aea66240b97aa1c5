"""Money is never frozen by one bad row, and balances add up.

- An invoice whose numbers or dates do not fit (a 2^38-second expiry, a
  timestamp far ahead, a huge final CLTV, another network) is refused with a
  400 before anything is held: through the API and through a withdraw voucher
  (whose use is given back).
- A payment that cannot be settled does not stop reconciliation of the
  others: its error is recorded on it and shown in the admin pending list,
  and its wallet's history and export still answer.
- Balances have a ceiling (21 million bitcoin) the database enforces.
- Admin top-ups and debits are payments in the history; the audit checks
  balance = ledger = history and says what it read.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from coincurve import PrivateKey
from fulmen import query
from fulmen.funding import FundingError, PaymentState, PaymentStatus
from fulmen.funding.bolt11_encode import encode_invoice
from fulmen.funding.fake import FakeWallet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "lnurlp"))
from lnurl_testing import start_looped  # noqa: E402

MAX_MSAT = 2_100_000_000_000_000_000
ELSEWHERE = PrivateKey(bytes.fromhex("33" * 32))


def invoice(
    sats: int = 100, *, currency: str = "bc", expiry: int = 3600, timestamp: int | None = None,
    min_final_cltv: int = 18, amount_msat: int | None = None,
) -> tuple[str, str]:
    """An invoice signed by another node: (bolt11, payment hash)."""
    payment_hash = hashlib.sha256(secrets.token_bytes(32)).digest()
    bolt11 = encode_invoice(
        ELSEWHERE, currency, amount_msat if amount_msat is not None else sats * 1000,
        timestamp if timestamp is not None else int(time.time()), payment_hash,
        secrets.token_bytes(32), "elsewhere", None, expiry, min_final_cltv,
    )
    return bolt11, payment_hash.hex()


class NodeWithPendingPayments(FakeWallet):
    """Payments leave the host and stay in flight until the test says how
    they ended (`answers`); a payment it was never told about is unknown."""

    def __init__(self) -> None:
        super().__init__("44" * 32)
        self.answers: dict[str, PaymentStatus] = {}

    async def pay_invoice(self, bolt11: str, fee_limit_msat: int) -> PaymentStatus:
        return PaymentStatus(PaymentState.PENDING)

    async def get_payment_status(self, payment_hash: str) -> PaymentStatus:
        if payment_hash not in self.answers:
            raise FundingError("unknown")
        return self.answers[payment_hash]


# --- invoices that do not fit ---------------------------------------------------------------

POISON = {
    "huge expiry": ({"expiry": 2**38}, "expiry"),
    "expiry above a year": ({"expiry": 366 * 24 * 3600}, "expiry"),
    "timestamp far ahead": ({"timestamp": 2**35 - 1}, "timestamp"),
    "timestamp in 1970": ({"timestamp": 5}, "timestamp"),
    "huge final cltv": ({"min_final_cltv": 10**6}, "min_final_cltv"),
    "testnet": ({"currency": "tb"}, "testnet"),
    "regtest": ({"currency": "bcrt"}, "regtest"),
    "signet": ({"currency": "tbs"}, "signet"),
}


@pytest.mark.parametrize("case", list(POISON))
async def test_invoice_that_does_not_fit_is_a_400(fulmen_db, case):
    fields, word = POISON[case]
    node = NodeWithPendingPayments()
    client = await fulmen_db.start(funding=node)
    alice = await fulmen_db.wallet("alice", sats=1000)
    bolt11, _ = invoice(100, **fields)
    r = await fulmen_db.pay(alice, bolt11)
    assert r.status_code == 400, r.text
    assert word in r.json()["detail"]
    assert await fulmen_db.balance(alice) == 1_000_000  # nothing held
    r = await client.get("/api/v1/payments", headers=alice.read_headers, params={"out": "true"})
    assert r.json() == []
    r = await client.get("/admin/api/v1/payments/pending", headers=fulmen_db.admin_headers)
    assert r.json() == []


async def test_mainnet_host_still_pays_mainnet_and_testnet_host_refuses_it(fulmen_db):
    node = NodeWithPendingPayments()
    await fulmen_db.start(funding=node, network="tb")
    alice = await fulmen_db.wallet("alice", sats=1000)
    r = await fulmen_db.pay(alice, invoice(100, currency="bc")[0])
    assert r.status_code == 400 and "mainnet" in r.json()["detail"]
    r = await fulmen_db.pay(alice, invoice(100, currency="tb")[0])
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "pending"


async def test_poison_invoice_through_a_withdraw_voucher(fulmen_db):
    client, _ = await start_looped(fulmen_db, ["withdraw"])
    src = await fulmen_db.wallet("src", sats=1000)
    body = {"title": "Voucher", "min_withdrawable": 10, "max_withdrawable": 100, "uses": 1,
            "wait_time": 0, "is_unique": False}
    r = await client.post("/withdraw/api/v1/links", json=body, headers=src.admin_headers)
    assert r.status_code == 201, r.text
    link = r.json()
    import lnurl

    r = await client.get(lnurl.url_decode(link["lnurl"]))
    scan = r.json()
    r = await client.get(scan["callback"], params={"k1": scan["k1"],
                                                   "pr": invoice(50, expiry=2**38)[0]})
    assert r.json()["status"] == "ERROR" and "expiry" in r.json()["reason"]
    assert await fulmen_db.balance(src) == 1_000_000
    r = await client.get(f"/withdraw/api/v1/links/{link['id']}", headers=src.admin_headers)
    assert r.json()["used"] == 0  # the use was given back
    r = await client.get("/admin/api/v1/payments/pending", headers=fulmen_db.admin_headers)
    assert r.json() == []


# --- one bad row never stops the others ---------------------------------------------------


async def pending_payment(fulmen_db: Any, wallet: Any, sats: int) -> str:
    bolt11, payment_hash = invoice(sats)
    r = await fulmen_db.pay(wallet, bolt11)
    assert r.status_code == 201 and r.json()["status"] == "pending", r.text
    return payment_hash


async def test_one_unsettleable_payment_does_not_stop_reconciliation(fulmen_db):
    node = NodeWithPendingPayments()
    client = await fulmen_db.start(funding=node)
    bob = await fulmen_db.wallet("bob", sats=1000)
    carol = await fulmen_db.wallet("carol", sats=1000)
    dave = await fulmen_db.wallet("dave", sats=1000)
    erin = await fulmen_db.wallet("erin", sats=1000)
    bob_hash = await pending_payment(fulmen_db, bob, 100)
    dave_hash = await pending_payment(fulmen_db, dave, 100)  # first in line
    carol_hash = await pending_payment(fulmen_db, carol, 200)
    erin_hash = await pending_payment(fulmen_db, erin, 300)
    # dave's refund cannot be applied: his balance is at the ceiling
    room = MAX_MSAT - await fulmen_db.balance(dave)
    r = await client.put("/users/api/v1/balance", json={"id": dave.id, "amount": room // 1000},
                         headers=fulmen_db.admin_headers)
    assert r.status_code == 200, r.text
    # erin's row is one stored before invoice dates were bounded
    await query("UPDATE fulmen_payment SET expires_at = {} WHERE payment_hash = {}",
                2**38 * 1000, erin_hash)
    failed = PaymentStatus(PaymentState.FAILED, error="no route")
    for h in (bob_hash, carol_hash, dave_hash, erin_hash):
        node.answers[h] = failed

    assert await fulmen_db.host.payments.reconcile() == 3
    assert await fulmen_db.balance(bob) == 1_000_000
    assert await fulmen_db.balance(carol) == 1_000_000
    assert await fulmen_db.balance(erin) == 1_000_000
    assert await fulmen_db.balance(dave) == MAX_MSAT  # still held, not lost

    r = await client.get("/admin/api/v1/payments/pending", headers=fulmen_db.admin_headers)
    assert r.status_code == 200
    [stuck] = r.json()
    assert stuck["payment_hash"] == dave_hash and "maximum" in stuck["check_error"]
    # top-ups and the payment: the stuck and the odd row are listed and exported
    for wallet, entries in ((dave, 3), (erin, 2)):
        r = await client.get("/api/v1/payments", headers=wallet.read_headers)
        assert r.status_code == 200 and len(r.json()) == entries
        r = await client.get("/api/v1/payments/export.csv", headers=wallet.read_headers)
        assert r.status_code == 200 and len(r.text.strip().splitlines()) == entries + 1
    r = await client.get("/api/v1/payments", headers=erin.read_headers, params={"out": "true"})
    assert r.json()[0]["status"] == "failed" and r.json()[0]["expiry"].startswith("9999-")

    # once dave's balance has room, the next pass settles it and clears the error
    r = await client.put("/users/api/v1/balance", json={"id": dave.id, "amount": -1000},
                         headers=fulmen_db.admin_headers)
    assert r.status_code == 200, r.text
    assert await fulmen_db.host.payments.reconcile() == 1
    rows = await query("SELECT status, check_error FROM fulmen_payment WHERE payment_hash = {}",
                       dave_hash)
    assert rows[0]["status"] == "failed" and rows[0]["check_error"] is None
    audit = (await client.get("/admin/api/v1/audit", headers=fulmen_db.admin_headers)).json()
    assert audit["ok"] is True, audit


async def test_reconcile_in_the_background_survives_an_unsettleable_row(fulmen_db):
    """The host's own loop: a stuck row does not keep the others pending."""
    import asyncio

    node = NodeWithPendingPayments()
    client = await fulmen_db.start(funding=node, reconcile_interval=0.2)
    dave = await fulmen_db.wallet("dave", sats=1000)
    bob = await fulmen_db.wallet("bob", sats=1000)
    dave_hash = await pending_payment(fulmen_db, dave, 100)
    bob_hash = await pending_payment(fulmen_db, bob, 100)
    room = MAX_MSAT - await fulmen_db.balance(dave)
    await client.put("/users/api/v1/balance", json={"id": dave.id, "amount": room // 1000},
                     headers=fulmen_db.admin_headers)
    node.answers[dave_hash] = node.answers[bob_hash] = PaymentStatus(PaymentState.FAILED)
    for _ in range(100):
        if await fulmen_db.balance(bob) == 1_000_000:
            break
        await asyncio.sleep(0.05)
    assert await fulmen_db.balance(bob) == 1_000_000


# --- balances have a ceiling -----------------------------------------------------------------


async def test_balance_ceiling(fulmen_db):
    client = await fulmen_db.start()
    alice = await fulmen_db.wallet("alice")
    bob = await fulmen_db.wallet("bob", sats=10)
    r = await client.put("/users/api/v1/balance", json={"id": alice.id, "amount": MAX_MSAT // 1000},
                         headers=fulmen_db.admin_headers)
    assert r.status_code == 200, r.text
    for _ in range(4):  # the top-ups of the report: each refused, nothing changes
        r = await client.put("/users/api/v1/balance",
                             json={"id": alice.id, "amount": MAX_MSAT // 1000},
                             headers=fulmen_db.admin_headers)
        assert r.status_code == 400 and "maximum" in r.json()["detail"], r.text
    r = await client.post(f"/admin/api/v1/wallets/{alice.id}/balance",
                          json={"amount_msat": 1, "reason": "one more"},
                          headers=fulmen_db.admin_headers)
    assert r.status_code == 400 and "maximum" in r.json()["detail"]
    # an incoming payment that would cross it is refused too; the payer keeps its money
    inv = await fulmen_db.invoice(alice, 1)
    r = await fulmen_db.pay(bob, inv["bolt11"])
    assert r.status_code == 400 and "maximum" in r.json()["detail"], r.text
    assert await fulmen_db.balance(bob) == 10_000
    assert await fulmen_db.balance(alice) == MAX_MSAT
    # the database itself refuses a balance above it
    with pytest.raises(Exception, match="fulmen_wallet_balance_max"):
        await query("UPDATE fulmen_wallet SET balance_msat = balance_msat + 1 WHERE id = {}",
                    alice.id)
    audit = (await client.get("/admin/api/v1/audit", headers=fulmen_db.admin_headers)).json()
    assert audit["ok"] is True and audit["wallets"] == 2, audit


# --- top-ups in history; the audit ------------------------------------------------------


async def test_admin_top_ups_are_payments_in_history(fulmen_db):
    client = await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=50)
    bob = await fulmen_db.wallet("bob")
    r = await client.put("/users/api/v1/balance", json={"id": alice.id, "amount": -20},
                         headers=fulmen_db.admin_headers)
    assert r.status_code == 200
    r = await client.post(f"/admin/api/v1/wallets/{alice.id}/balance",
                          json={"amount_msat": 1500, "reason": "goodwill"},
                          headers=fulmen_db.admin_headers)
    assert r.status_code == 200
    inv = await fulmen_db.invoice(bob, 7)
    assert (await fulmen_db.pay(alice, inv["bolt11"])).status_code == 201

    r = await client.get("/api/v1/payments", headers=alice.read_headers,
                         params={"sortby": "time", "direction": "asc"})
    history = r.json()
    assert [p["memo"] for p in history][:3] == ["Admin credit", "Admin debit", "Admin credit"]
    assert [p["amount"] for p in history][:3] == [50_000, -20_000, 1500]
    assert history[2]["extra"] == {"reason": "goodwill"}
    assert all(p["status"] == "success" for p in history)
    assert sum(p["amount"] + p["fee"] for p in history) == await fulmen_db.balance(alice)
    csv_text = (await client.get("/api/v1/payments/export.csv", headers=alice.read_headers)).text
    assert csv_text.count("Admin credit") == 2 and csv_text.count("Admin debit") == 1

    audit = (await client.get("/admin/api/v1/audit", headers=fulmen_db.admin_headers)).json()
    assert audit["ok"] is True and audit["mismatches"] == []
    assert audit["wallets"] == 2 and audit["ledger_entries"] == 5 and audit["payments"] == 5
    assert audit["database"].startswith("postgres" if "postgres" in fulmen_db.database_url
                                        else "sqlite")
    assert "@" not in audit["database"].split("//", 1)[1] or ":" not in \
        audit["database"].split("//", 1)[1].split("@")[0]  # no password shown
    # a balance change with a ledger entry but no payment: history does not add up
    await query("UPDATE fulmen_wallet SET balance_msat = balance_msat + 5 WHERE id = {}", bob.id)
    await query("INSERT INTO fulmen_ledger (wallet_id, amount_msat, kind, payment_id, reason, "
                "created_at) VALUES ({}, 5, 'admin', NULL, 'behind the back', 0)", bob.id)
    audit = (await client.get("/admin/api/v1/audit", headers=fulmen_db.admin_headers)).json()
    assert audit["ok"] is False
    assert audit["mismatches"] == [{"id": bob.id, "balance_msat": 7005, "ledger_msat": 7005,
                                    "history_msat": 7000}]


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fulmen", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120, check=False)


def test_cli_audit_says_what_it_read(tmp_path):
    env = {"FULMEN_DATA_DIR": str(tmp_path / "data"), "FULMEN_ADMIN_KEY": "k",
           "FULMEN_PLUGINS": "none"}
    r = run_cli(["create-account", "--name", "shell"], env)
    assert r.returncode == 0, r.stderr
    wallet = json.loads(r.stdout)
    r = run_cli(["audit"], env)
    assert r.returncode == 0, r.stderr
    assert f"database: sqlite:///{tmp_path / 'data' / 'fulmen.sqlite3'}" in r.stdout
    assert "checked 1 wallets, 0 ledger entries, 0 payments" in r.stdout
    db = sqlite3.connect(tmp_path / "data" / "fulmen.sqlite3")
    # an old float balance (the overflow this ceiling prevents) is reported, not a crash
    db.execute("DROP TRIGGER fulmen_wallet_balance_max_update")
    db.execute("UPDATE fulmen_wallet SET balance_msat = 1.05e19 WHERE id = ?", (wallet["id"],))
    for _ in range(5):
        db.execute("INSERT INTO fulmen_ledger (wallet_id, amount_msat, kind, reason, created_at) "
                   "VALUES (?, 2100000000000000000, 'admin', 'top-up', 0)", (wallet["id"],))
    db.commit()
    r = run_cli(["audit"], env)
    assert r.returncode == 1, r.stderr
    assert f"MISMATCH wallet {wallet['id']}" in r.stdout
    assert "ledger 10500000000000000000 msat" in r.stdout


# --- LNbits clients that name the wallet --------------------------------------------------


async def test_history_accepts_the_keys_own_wallet_id(fulmen_db):
    client = await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=5)
    bob = await fulmen_db.wallet("bob", sats=5)
    for path in ("/api/v1/payments", "/api/v1/payments/paginated", "/api/v1/payments/export.csv"):
        r = await client.get(path, headers=alice.read_headers, params={"wallet_id": alice.id})
        assert r.status_code == 200, r.text
        if path.endswith(".csv"):
            assert r.text.count("Admin credit") == 1
        else:
            data = r.json()
            rows = data["data"] if isinstance(data, dict) else data
            assert [p["wallet_id"] for p in rows] == [alice.id]
        r = await client.get(path, headers=alice.read_headers, params={"wallet_id": bob.id})
        assert r.status_code == 403, r.text
        assert "wallet_id" in r.json()["detail"]


async def test_migration_turns_earlier_top_ups_into_payments(fulmen_db):
    """A top-up made before this version exists only in the ledger; the
    migration gives it its payment, so the history adds up."""
    from fulmen.migrations.fulmen_2026_12_02t10_45_00_000000 import _backfill_admin_payments

    client = await fulmen_db.start()
    alice = await fulmen_db.wallet("alice")
    # as the old top-up wrote it: balance and ledger, no payment
    await query("UPDATE fulmen_wallet SET balance_msat = 42000 WHERE id = {}", alice.id)
    await query("INSERT INTO fulmen_ledger (wallet_id, amount_msat, kind, payment_id, reason, "
                "created_at) VALUES ({}, 42000, 'admin', NULL, 'old top-up', 1700000000000)",
                alice.id)
    audit = (await client.get("/admin/api/v1/audit", headers=fulmen_db.admin_headers)).json()
    assert audit["mismatches"] == [{"id": alice.id, "balance_msat": 42000, "ledger_msat": 42000,
                                    "history_msat": 0}]
    await _backfill_admin_payments()
    await _backfill_admin_payments()  # nothing left to do the second time
    audit = (await client.get("/admin/api/v1/audit", headers=fulmen_db.admin_headers)).json()
    assert audit["ok"] is True, audit
    [payment] = (await client.get("/api/v1/payments", headers=alice.read_headers)).json()
    assert payment["memo"] == "Admin credit" and payment["amount"] == 42000
    assert payment["extra"] == {"reason": "old top-up"}
    assert payment["time"].startswith("2023-11-14")


async def test_an_invoice_that_cannot_be_credited_does_not_stop_the_stream(fulmen_db):
    import asyncio

    client = await fulmen_db.start()
    alice = await fulmen_db.wallet("alice")
    bob = await fulmen_db.wallet("bob")
    r = await client.put("/users/api/v1/balance", json={"id": alice.id, "amount": MAX_MSAT // 1000},
                         headers=fulmen_db.admin_headers)
    assert r.status_code == 200
    stuck = await fulmen_db.invoice(alice, 1)
    fine = await fulmen_db.invoice(bob, 2)
    fulmen_db.host.funding.mark_paid(stuck["checking_id"])  # paid from outside, in this order
    fulmen_db.host.funding.mark_paid(fine["checking_id"])
    for _ in range(100):
        if await fulmen_db.balance(bob) == 2000:
            break
        await asyncio.sleep(0.05)
    assert await fulmen_db.balance(bob) == 2000
    assert await fulmen_db.balance(alice) == MAX_MSAT
    r = await client.get("/admin/api/v1/payments/pending", headers=fulmen_db.admin_headers)
    [row] = r.json()
    assert row["payment_hash"] == stuck["payment_hash"] and "maximum" in row["check_error"]
