"""Review: what the host records when the node's answer is out of the ordinary."""

from fulmen.db import query
from fulmen.funding import PaymentState, PaymentStatus
from fulmen.funding.fake import FakeWallet


class AnsweringNode(FakeWallet):
    """FakeWallet that reports external payments as succeeded with a given fee."""

    def __init__(self, fee_msat: int):
        super().__init__("44" * 32)
        self.fee_msat = fee_msat

    async def pay_invoice(self, bolt11, fee_limit_msat):
        return PaymentStatus(PaymentState.SUCCESS, fee_msat=self.fee_msat, preimage="bb" * 32)


async def external_invoice(sats: int) -> str:
    return (await FakeWallet("55" * 32).create_invoice(sats * 1000, "elsewhere", None, 600)).bolt11


async def test_review_recorded_fee_equals_what_the_wallet_was_charged(fulmen_db):
    """The LNbits funding source has no fee limit, so a node may report a fee
    above the reserve. The payment's amount + fee must still be what left the
    wallet (history, CSV and the chart are built from it)."""
    await fulmen_db.start(funding=AnsweringNode(fee_msat=5_000))  # reserve is 2,000
    alice = await fulmen_db.wallet("alice", sats=1000)
    r = await fulmen_db.pay(alice, await external_invoice(100))
    assert r.status_code == 201, r.text
    charged = 1_000_000 - await fulmen_db.balance(alice)
    assert -(r.json()["amount"] + r.json()["fee"]) == charged


async def test_review_negative_fee_from_the_node_never_credits_the_wallet(fulmen_db):
    await fulmen_db.start(funding=AnsweringNode(fee_msat=-50_000))
    alice = await fulmen_db.wallet("alice", sats=1000)
    r = await fulmen_db.pay(alice, await external_invoice(100))
    assert r.status_code in (201, 400), r.text
    assert 1_000_000 - await fulmen_db.balance(alice) >= 100_000
    rows = await query(
        "SELECT SUM(amount_msat) AS s FROM fulmen_ledger WHERE wallet_id = {} AND kind = 'refund'",
        alice.id,
    )
    assert int(rows[0]["s"] or 0) <= 2_000


async def test_review_failed_payment_with_idempotency_key_is_not_a_201(fulmen_db):
    """FakeWallet cannot pay external invoices: the answer is a 4xx, with or
    without an Idempotency-Key (clients look at the status code)."""
    client = await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=1000)
    bolt11 = await external_invoice(100)
    r = await client.post(
        "/api/v1/payments",
        headers={**alice.admin_headers, "Idempotency-Key": "once"},
        json={"out": True, "bolt11": bolt11},
    )
    assert r.status_code == 400, (r.status_code, r.text[:200])
    assert await fulmen_db.balance(alice) == 1_000_000
