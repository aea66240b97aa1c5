"""Eclair funding source against a fake Eclair API."""

from __future__ import annotations

import asyncio
import hashlib
import logging

import pytest
from fulmen.funding import BACKENDS, PaymentState, make_funding_source
from fulmen.funding.base import FundingError, FundingSource
from fulmen.funding.eclair import EclairFunding
from fulmen.funding.http import NodeAuthError, NodeUnreachable
from fulmen.settings import Settings

from .common import Drain, decode, external_invoice
from .fake_eclair import FakeEclair, Outcome


def make(fake: FakeEclair, **kw) -> EclairFunding:
    opts = {
        "timeout": 2.0,
        "pay_timeout": 1,
        "poll_interval": 0.05,
        "reconnect_initial": 0.05,
        "reconnect_max": 0.2,
    }
    opts.update(kw)
    return EclairFunding(fake.url, opts.pop("password", fake.password), **opts)


@pytest.fixture
async def fake():
    node = FakeEclair()
    await node.start()
    yield node
    await node.stop()


@pytest.fixture
async def eclair(fake):
    fs = make(fake)
    await fs.start()
    yield fs
    await fs.close()


async def test_registered_and_protocol():
    assert BACKENDS["eclair"] == "fulmen.funding.eclair:from_settings"
    assert isinstance(EclairFunding("http://x", "pw"), FundingSource)


async def test_status_sums_usable_balances(eclair):
    assert (await eclair.status()).balance_msat == 30_012_345


async def test_create_invoice_and_settlement(eclair, fake):
    inv = await eclair.create_invoice(33_000, "cake", None, 900)
    assert hashlib.sha256(bytes.fromhex(inv.preimage)).hexdigest() == inv.payment_hash
    d = decode(inv.bolt11)
    assert d.amount_msat == 33_000 and d.description == "cake"
    method, form = fake.calls[-1]
    assert method == "createinvoice"
    assert form["amountMsat"] == "33000" and form["expireIn"] == "900"
    assert form["description"] == "cake"
    assert (await eclair.get_invoice_status(inv.checking_id)).state is PaymentState.PENDING
    fake.settle(inv.payment_hash)
    st = await eclair.get_invoice_status(inv.checking_id)
    assert st.state is PaymentState.SUCCESS and st.preimage == inv.preimage


async def test_description_hash_invoice(eclair, fake):
    h = hashlib.sha256(b"metadata").digest()
    inv = await eclair.create_invoice(1000, "ignored", h, 900)
    assert decode(inv.bolt11).description_hash == h.hex()
    assert fake.calls[-1][1]["descriptionHash"] == h.hex()
    assert "description" not in fake.calls[-1][1]


async def test_unknown_invoice_is_an_error(eclair):
    with pytest.raises(FundingError):
        await eclair.get_invoice_status("00" * 32)


async def test_pay_success(eclair, fake):
    ext = external_invoice(80_000)
    fake.outcomes[ext.payment_hash] = Outcome("succeed", fee_msat=3_000, preimage=ext.preimage)
    st = await eclair.pay_invoice(ext.bolt11, 4_500)
    assert st.state is PaymentState.SUCCESS and st.fee_msat == 3_000 and st.preimage == ext.preimage
    form = fake.calls[-1][1]
    assert form["blocking"] == "true" and form["maxFeeFlatSat"] == "4" and form["maxFeePct"] == "0"
    again = await eclair.get_payment_status(ext.payment_hash)
    assert again.state is PaymentState.SUCCESS and again.fee_msat == 3_000


async def test_pay_failure(eclair, fake):
    ext = external_invoice()
    fake.outcomes[ext.payment_hash] = Outcome("fail")
    st = await eclair.pay_invoice(ext.bolt11, 4_000)
    assert st.state is PaymentState.FAILED
    assert (await eclair.get_payment_status(ext.payment_hash)).state is PaymentState.FAILED


async def test_fee_limit_is_passed_to_node(eclair, fake):
    ext = external_invoice()
    fake.outcomes[ext.payment_hash] = Outcome("succeed", fee_msat=5_000, preimage=ext.preimage)
    assert (await eclair.pay_invoice(ext.bolt11, 4_999)).state is PaymentState.FAILED


async def test_refused_invoice_is_failed(eclair, fake):
    ext = external_invoice(expiry=60, date=1_600_000_000)
    st = await eclair.pay_invoice(ext.bolt11, 1_000)
    assert st.state is PaymentState.FAILED and "expired" in st.error


async def test_server_error_while_paying_is_pending(eclair, fake):
    ext = external_invoice()
    fake.outcomes[ext.payment_hash] = Outcome("server_error")
    assert (await eclair.pay_invoice(ext.bolt11, 1_000)).state is PaymentState.PENDING


async def test_request_timeout_while_paying_is_pending(eclair, fake):
    """408: Eclair's API stopped waiting; the payment may still go out."""
    ext = external_invoice()
    fake.outcomes[ext.payment_hash] = Outcome("request_timeout")
    st = await eclair.pay_invoice(ext.bolt11, 1_000)
    assert st.state is PaymentState.PENDING, st
    await asyncio.sleep(0.5)
    assert (await eclair.get_payment_status(ext.payment_hash)).state is PaymentState.PENDING


async def test_pending_then_settled(eclair, fake):
    ext = external_invoice()
    fake.outcomes[ext.payment_hash] = Outcome("hold")
    st = await eclair.pay_invoice(ext.bolt11, 5_000)
    assert st.state is PaymentState.PENDING
    assert (await eclair.get_payment_status(ext.payment_hash)).state is PaymentState.PENDING
    fake.resolve(ext.payment_hash, ok=True, fee_msat=9, preimage=ext.preimage)
    done = await eclair.get_payment_status(ext.payment_hash)
    assert (
        done.state is PaymentState.SUCCESS and done.fee_msat == 9 and done.preimage == ext.preimage
    )


async def test_unknown_payment_is_pending(eclair):
    assert (await eclair.get_payment_status("cd" * 32)).state is PaymentState.PENDING


async def test_stream_finds_payments_made_while_disconnected(eclair, fake, caplog):
    drain = Drain(eclair.paid_invoices_stream())
    try:
        a = await eclair.create_invoice(1000, "a", None, 600)
        b = await eclair.create_invoice(1000, "b", None, 600)
        first = asyncio.ensure_future(drain.next())
        await asyncio.sleep(0.2)
        fake.settle(a.payment_hash)
        assert await first == a.payment_hash
        await fake.stop()
        fake.settle(b.payment_hash)
        await asyncio.sleep(0.5)
        await fake.start()
        assert await drain.next() == b.payment_hash
        await asyncio.sleep(0.2)
        assert drain.pending() == []  # nothing reported twice
        assert "cannot poll invoices" in caplog.text  # the outage was seen and survived
    finally:
        await drain.close()


async def test_watch_reports_invoices_from_before_a_restart(fake):
    first = make(fake)
    inv = await first.create_invoice(1000, "x", None, 600)
    await first.close()
    second = make(fake)  # a new process knows nothing of inv ...
    second.watch(inv.checking_id)  # ... until the host hands over its pending invoices
    drain = Drain(second.paid_invoices_stream())
    try:
        fake.settle(inv.payment_hash)
        assert await drain.next() == inv.payment_hash
    finally:
        await drain.close()
        await second.close()


async def test_bad_password(fake, caplog):
    fs = make(fake, password="wrong")
    try:
        with pytest.raises(NodeAuthError, match="password"):
            await fs.start()
        with pytest.raises(NodeAuthError):
            await fs.status()
        with pytest.raises(FundingError):
            await fs.create_invoice(1000, "x", None, 60)
        assert (await fs.pay_invoice(external_invoice().bolt11, 10)).state is PaymentState.FAILED
    finally:
        await fs.close()
    assert fake.password not in caplog.text


async def test_node_unreachable_at_start_then_recovers():
    fake = FakeEclair()
    fs = make(fake)
    drain = Drain(fs.paid_invoices_stream())
    try:
        await fs.start()
        with pytest.raises(NodeUnreachable):
            await fs.status()
        with pytest.raises(FundingError):
            await fs.create_invoice(1000, "x", None, 60)
        assert (await fs.pay_invoice(external_invoice().bolt11, 10)).state is PaymentState.PENDING
        await fake.start()
        inv = await fs.create_invoice(1000, "later", None, 60)
        waiter = asyncio.ensure_future(drain.next())
        await asyncio.sleep(0.2)
        fake.settle(inv.payment_hash)
        assert await waiter == inv.payment_hash
    finally:
        await drain.close()
        await fs.close()
        await fake.stop()


async def test_from_settings_password_file(fake, monkeypatch, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    pw = tmp_path / "eclair-password"
    pw.write_text(fake.password + "\n")
    monkeypatch.setenv("FULMEN_FUNDING_SOURCE", "eclair")
    monkeypatch.setenv("FULMEN_ECLAIR_URL", fake.url)
    monkeypatch.setenv("FULMEN_ECLAIR_PASSWORD_FILE", str(pw))
    fs = make_funding_source(Settings())
    try:
        assert isinstance(fs, EclairFunding)
        assert fake.password not in repr(fs)
        assert (await fs.status()).balance_msat == 30_012_345
    finally:
        await fs.close()
    from fulmen.funding.eclair import EclairSettings

    monkeypatch.setenv("FULMEN_ECLAIR_PASSWORD", fake.password)
    assert fake.password not in repr(EclairSettings())
    assert fake.password not in caplog.text
