"""Upstream LNbits funding source against a fake LNbits wallet API."""

from __future__ import annotations

import asyncio
import hashlib
import logging

import pytest
from fulmen.funding import BACKENDS, PaymentState, make_funding_source
from fulmen.funding.base import FundingError, FundingSource
from fulmen.funding.http import NodeAuthError, NodeUnreachable
from fulmen.funding.lnbits import LnbitsFunding
from fulmen.settings import Settings

from .common import Drain, decode, external_invoice
from .fake_lnbits import FakeLnbits, Outcome


def make(fake: FakeLnbits, **kw) -> LnbitsFunding:
    opts = {
        "timeout": 2.0,
        "pay_timeout": 1,
        "poll_interval": 0.05,
        "reconnect_initial": 0.05,
        "reconnect_max": 0.2,
    }
    opts.update(kw)
    return LnbitsFunding(fake.url, opts.pop("key", fake.admin_key), **opts)


@pytest.fixture
async def fake():
    node = FakeLnbits()
    await node.start()
    yield node
    await node.stop()


@pytest.fixture
async def lnbits(fake):
    fs = make(fake)
    await fs.start()
    yield fs
    await fs.close()


async def test_registered_and_protocol():
    assert BACKENDS["lnbits"] == "fulmen.funding.lnbits:from_settings"
    assert isinstance(LnbitsFunding("http://x", "k"), FundingSource)


async def test_status_is_wallet_balance(lnbits):
    assert (await lnbits.status()).balance_msat == 9_876_000


async def test_create_invoice_and_settlement(lnbits, fake):
    inv = await lnbits.create_invoice(5_000, "pie", None, 300)
    assert inv.checking_id == inv.payment_hash
    d = decode(inv.bolt11)
    assert d.amount_msat == 5_000 and d.description == "pie"
    assert fake.calls[-1][1] == {"out": False, "amount": 5, "memo": "pie", "expiry": 300}
    assert (await lnbits.get_invoice_status(inv.checking_id)).state is PaymentState.PENDING
    fake.settle(inv.payment_hash)
    assert (await lnbits.get_invoice_status(inv.checking_id)).state is PaymentState.SUCCESS


async def test_description_hash_and_whole_sats(lnbits, fake):
    text = "metadata"
    h = hashlib.sha256(text.encode()).digest()
    inv = await lnbits.create_invoice(2_000, text, h, 300)
    assert decode(inv.bolt11).description_hash == h.hex()
    sent = fake.calls[-1][1]
    assert (
        sent["description_hash"] == h.hex() and sent["unhashed_description"] == text.encode().hex()
    )
    with pytest.raises(FundingError, match="whole satoshis"):
        await lnbits.create_invoice(1_500, "x", None, 300)


async def test_unknown_invoice_is_an_error(lnbits):
    with pytest.raises(FundingError):
        await lnbits.get_invoice_status("00" * 32)


async def test_pay_success(lnbits, fake):
    ext = external_invoice(10_000)
    fake.outcomes[ext.payment_hash] = Outcome("succeed", fee_msat=1_000, preimage=ext.preimage)
    st = await lnbits.pay_invoice(ext.bolt11, 2_000)
    assert st.state is PaymentState.SUCCESS and st.fee_msat == 1_000 and st.preimage == ext.preimage
    assert fake.calls[-1][1] == {"out": True, "bolt11": ext.bolt11}


async def test_pay_failure(lnbits, fake):
    ext = external_invoice()
    fake.outcomes[ext.payment_hash] = Outcome("fail")
    st = await lnbits.pay_invoice(ext.bolt11, 2_000)
    assert st.state is PaymentState.FAILED and "no route" in st.error
    assert (await lnbits.get_payment_status(ext.payment_hash)).state is PaymentState.FAILED


async def test_refused_before_any_record_is_failed(lnbits, fake):
    ext = external_invoice()
    fake.outcomes[ext.payment_hash] = Outcome("insufficient")
    st = await lnbits.pay_invoice(ext.bolt11, 2_000)
    assert st.state is PaymentState.FAILED and "Insufficient" in st.error


async def test_server_error_without_record_is_pending(lnbits, fake):
    ext = external_invoice()
    fake.outcomes[ext.payment_hash] = Outcome("server_error")
    assert (await lnbits.pay_invoice(ext.bolt11, 2_000)).state is PaymentState.PENDING


async def test_request_timeout_without_record_is_pending(lnbits, fake):
    """408 from a proxy in front: the server may record and pay it a moment later."""
    ext = external_invoice()
    fake.outcomes[ext.payment_hash] = Outcome("request_timeout")
    st = await lnbits.pay_invoice(ext.bolt11, 2_000)
    assert st.state is PaymentState.PENDING, st
    await asyncio.sleep(0.5)
    assert (await lnbits.get_payment_status(ext.payment_hash)).state is PaymentState.PENDING


async def test_pending_then_settled(lnbits, fake):
    ext = external_invoice()
    fake.outcomes[ext.payment_hash] = Outcome("hold")
    st = await lnbits.pay_invoice(ext.bolt11, 2_000)
    assert st.state is PaymentState.PENDING
    assert (await lnbits.get_payment_status(ext.payment_hash)).state is PaymentState.PENDING
    fake.resolve(ext.payment_hash, ok=True, fee_msat=3, preimage=ext.preimage)
    done = await lnbits.get_payment_status(ext.payment_hash)
    assert (
        done.state is PaymentState.SUCCESS and done.fee_msat == 3 and done.preimage == ext.preimage
    )


async def test_unknown_payment_is_pending(lnbits):
    assert (await lnbits.get_payment_status("cd" * 32)).state is PaymentState.PENDING


async def test_stream_finds_payments_made_while_disconnected(lnbits, fake, caplog):
    drain = Drain(lnbits.paid_invoices_stream())
    try:
        a = await lnbits.create_invoice(1000, "a", None, 600)
        b = await lnbits.create_invoice(1000, "b", None, 600)
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
        assert lnbits.watcher.watched == set()
    finally:
        await drain.close()


async def test_invoice_key_cannot_pay(fake):
    fs = make(fake, key=fake.invoice_key)
    try:
        st = await fs.pay_invoice(external_invoice().bolt11, 10)
        assert st.state is PaymentState.FAILED
    finally:
        await fs.close()


async def test_bad_key(fake, caplog):
    fs = make(fake, key="0" * 32)
    try:
        with pytest.raises(NodeAuthError, match="admin key"):
            await fs.start()
        with pytest.raises(NodeAuthError):
            await fs.status()
        with pytest.raises(FundingError):
            await fs.create_invoice(1000, "x", None, 60)
        assert (await fs.pay_invoice(external_invoice().bolt11, 10)).state is PaymentState.FAILED
    finally:
        await fs.close()
    assert fake.admin_key not in caplog.text


async def test_node_unreachable_at_start_then_recovers():
    fake = FakeLnbits()
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


async def test_from_settings_and_secrets(fake, monkeypatch, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    keyfile = tmp_path / "key"
    keyfile.write_text(fake.admin_key)
    monkeypatch.setenv("FULMEN_FUNDING_SOURCE", "lnbits")
    monkeypatch.setenv("FULMEN_LNBITS_URL", fake.url)
    monkeypatch.setenv("FULMEN_LNBITS_ADMIN_KEY_FILE", str(keyfile))
    fs = make_funding_source(Settings())
    try:
        assert isinstance(fs, LnbitsFunding)
        assert fake.admin_key not in repr(fs)
        assert (await fs.status()).balance_msat == 9_876_000
    finally:
        await fs.close()
    from fulmen.funding.lnbits import LnbitsSettings

    monkeypatch.setenv("FULMEN_LNBITS_ADMIN_KEY", fake.admin_key)
    assert fake.admin_key not in repr(LnbitsSettings())
    assert fake.admin_key not in caplog.text


async def test_one_odd_answer_does_not_stop_the_stream(lnbits, fake):
    drain = Drain(lnbits.paid_invoices_stream())
    try:
        a = await lnbits.create_invoice(1000, "a", None, 600)
        b = await lnbits.create_invoice(1000, "b", None, 600)
        fake.broken.add(a.payment_hash)  # the server fails on this one only
        fake.settle(b.payment_hash)
        assert await drain.next() == b.payment_hash
        assert a.payment_hash in lnbits.watcher.watched
        fake.broken.clear()
        fake.settle(a.payment_hash)
        assert await drain.next() == a.payment_hash
    finally:
        await drain.close()
