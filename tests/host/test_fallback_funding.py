"""A secondary funding source takes new invoices while the primary is down."""

from fulmen.funding import FundingError, NodeStatus, PaymentState, PaymentStatus
from fulmen.funding.fake import FakeWallet
from fulmen.funding.fallback import FallbackFunding


class Primary(FakeWallet):
    def __init__(self):
        super().__init__("44" * 32)
        self.down = False
        self.asked = []

    async def status(self):
        if self.down:
            raise FundingError("connection refused")
        return NodeStatus(5_000)

    async def create_invoice(self, *args):
        if self.down:
            raise FundingError("connection refused")
        return await super().create_invoice(*args)

    async def pay_invoice(self, bolt11, fee_limit_msat):
        return PaymentStatus(PaymentState.PENDING)

    async def get_payment_status(self, payment_hash):
        self.asked.append(payment_hash)
        return PaymentStatus(PaymentState.PENDING)


class Secondary(FakeWallet):
    def __init__(self):
        super().__init__("55" * 32)
        self.asked = []

    async def get_payment_status(self, payment_hash):
        self.asked.append(payment_hash)
        return PaymentStatus(PaymentState.FAILED, error="never heard of it")


async def test_invoices_fall_back_payments_never_do(fulmen):
    primary, secondary = Primary(), Secondary()
    client = await fulmen.start(funding=FallbackFunding(primary, secondary))
    bob = await fulmen.wallet("bob", sats=100)
    assert (await client.get("/ready")).json()["status"] == "ready"

    primary.down = True
    r = await client.get("/ready")
    assert r.status_code == 200 and r.json()["status"] == "degraded" and "primary down" in r.json()["degraded"]
    inv = await fulmen.invoice(bob, 10)
    import bolt11

    assert bolt11.decode(inv["bolt11"]).signature.verify(secondary.pubkey)  # made by the secondary

    # an external payment stays with the primary, which says pending:
    # the secondary's "failed" must never refund it
    external = (await FakeWallet("66" * 32).create_invoice(20_000, "x", None, 600)).bolt11
    r = await fulmen.pay(bob, external)
    assert r.json()["status"] == "pending"
    await fulmen.host.payments.reconcile()
    assert primary.asked and not secondary.asked
    assert await fulmen.balance(bob) == 100_000 - 20_000 - 2_000


async def test_ready_is_503_when_both_are_down(fulmen):
    primary, secondary = Primary(), Secondary()

    async def broken():
        return NodeStatus(0, error="down too")

    secondary.status = broken
    client = await fulmen.start(funding=FallbackFunding(primary, secondary))
    primary.down = True
    r = await client.get("/ready")
    assert r.status_code == 503 and "secondary: down too" in r.json()["checks"]["funding_source"]


def test_fallback_is_built_from_settings(tmp_path):
    import pytest
    from fulmen.funding import make_funding_source
    from fulmen.settings import Settings

    with pytest.raises(ValueError, match="must differ"):
        make_funding_source(Settings(data_dir=tmp_path, funding_fallback="fake"))
    with pytest.raises(ValueError, match="Unknown funding source 'nope'"):
        make_funding_source(Settings(data_dir=tmp_path, funding_source="nope"))
