"""The external payment path, through a scripted funding source."""

import asyncio

import pytest
from fulmen.db import query
from fulmen.funding import PaymentState, PaymentStatus
from fulmen.funding.fake import FakeWallet


class ScriptedNode(FakeWallet):
    """FakeWallet that 'pays' external invoices as the test says."""

    def __init__(self):
        super().__init__("22" * 32)
        self.pay_result = PaymentStatus(PaymentState.SUCCESS, fee_msat=1500, preimage="aa" * 32)
        self.status_result = PaymentStatus(PaymentState.PENDING)
        self.pay_calls = []
        self.raise_on_pay = None

    async def pay_invoice(self, bolt11, fee_limit_msat):
        self.pay_calls.append((bolt11, fee_limit_msat))
        if self.raise_on_pay:
            raise self.raise_on_pay
        return self.pay_result

    async def get_payment_status(self, payment_hash):
        return self.status_result


async def external_invoice(sats):
    return (await FakeWallet("33" * 32).create_invoice(sats * 1000, "elsewhere", None, 600)).bolt11


async def balances_match_ledger(host):
    assert await host.wallets.audit() == []


async def test_external_success_keeps_actual_fee_and_refunds_rest(fulmen_db):
    node = ScriptedNode()
    await fulmen_db.start(funding=node)
    alice = await fulmen_db.wallet("alice", sats=1000)
    r = await fulmen_db.pay(alice, await external_invoice(100))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "success" and body["fee"] == -1500 and body["preimage"] == "aa" * 32
    assert node.pay_calls[0][1] == 2000  # fee limit = reserve = max(2 sat, 1 %)
    assert await fulmen_db.balance(alice) == 1000_000 - 100_000 - 1500
    await balances_match_ledger(fulmen_db.host)


async def test_external_failure_refunds_in_full(fulmen_db):
    node = ScriptedNode()
    node.pay_result = PaymentStatus(PaymentState.FAILED, error="no route")
    await fulmen_db.start(funding=node)
    alice = await fulmen_db.wallet("alice", sats=1000)
    r = await fulmen_db.pay(alice, await external_invoice(100))
    assert r.status_code == 400 and "no route" in r.json()["detail"]
    assert await fulmen_db.balance(alice) == 1000_000
    await balances_match_ledger(fulmen_db.host)


async def test_pending_keeps_funds_reserved_until_reconciled(fulmen_db):
    node = ScriptedNode()
    node.pay_result = PaymentStatus(PaymentState.PENDING)
    await fulmen_db.start(funding=node)
    alice = await fulmen_db.wallet("alice", sats=1000)
    r = await fulmen_db.pay(alice, await external_invoice(500))
    assert r.status_code == 201 and r.json()["status"] == "pending"
    assert await fulmen_db.balance(alice) == 1000_000 - 500_000 - 5000  # amount + 1 % reserve
    # still pending at the node: nothing changes
    assert await fulmen_db.host.payments.reconcile() == 0
    assert await fulmen_db.balance(alice) == 1000_000 - 505_000
    # the node settles it with a 1 sat fee: the rest of the reserve comes back
    node.status_result = PaymentStatus(PaymentState.SUCCESS, fee_msat=1000, preimage="bb" * 32)
    assert await fulmen_db.host.payments.reconcile() == 1
    assert await fulmen_db.balance(alice) == 1000_000 - 501_000
    assert await fulmen_db.host.payments.reconcile() == 0
    await balances_match_ledger(fulmen_db.host)


async def test_node_error_while_paying_is_not_a_failure(fulmen_db):
    node = ScriptedNode()
    node.raise_on_pay = ConnectionError("node went away")
    await fulmen_db.start(funding=node)
    alice = await fulmen_db.wallet("alice", sats=1000)
    r = await fulmen_db.pay(alice, await external_invoice(100))
    assert r.status_code == 201 and r.json()["status"] == "pending"
    node.status_result = PaymentStatus(PaymentState.FAILED, error="expired")
    assert await fulmen_db.host.payments.reconcile() == 1
    assert await fulmen_db.balance(alice) == 1000_000
    await balances_match_ledger(fulmen_db.host)


async def test_crash_between_reserve_and_result_is_resolved_after_restart(fulmen_db, tmp_path):
    """Simulate a crash: the reservation commits, the process dies before the
    node's answer is recorded; a new host reconciles at start."""
    node = ScriptedNode()
    await fulmen_db.start(funding=node)
    alice = await fulmen_db.wallet("alice", sats=1000)

    class Crash(BaseException):
        pass

    node.raise_on_pay = Crash()
    with pytest.raises(Crash):
        await fulmen_db.host.payments.pay(
            await fulmen_db.host.wallets.authenticate_key(alice.adminkey), await external_invoice(100)
        )
    await fulmen_db.stop()
    # restart on the same database; the node now reports success
    node2 = ScriptedNode()
    node2.status_result = PaymentStatus(PaymentState.SUCCESS, fee_msat=0, preimage="cc" * 32)
    await fulmen_db.start(funding=node2, reconcile_interval=0.05)
    for _ in range(100):
        rows = await query("SELECT status FROM fulmen_payment WHERE out")
        if rows[0]["status"] != "pending":
            break
        await asyncio.sleep(0.05)
    assert rows[0]["status"] == "success"
    assert await fulmen_db.balance(alice) == 1000_000 - 100_000
    await balances_match_ledger(fulmen_db.host)


async def test_same_external_invoice_cannot_be_paid_twice_concurrently(fulmen_db):
    node = ScriptedNode()
    node.pay_result = PaymentStatus(PaymentState.PENDING)
    await fulmen_db.start(funding=node)
    a = await fulmen_db.wallet("a", sats=1000)
    b = await fulmen_db.wallet("b", sats=1000)
    bolt11 = await external_invoice(100)
    results = await asyncio.gather(fulmen_db.pay(a, bolt11), fulmen_db.pay(b, bolt11))
    assert sorted(r.status_code for r in results) == [201, 409]
    assert len(node.pay_calls) == 1
    await balances_match_ledger(fulmen_db.host)
