"""LND REST funding source against a fake LND gateway (TLS, pinned)."""

from __future__ import annotations

import asyncio
import hashlib
import logging

import pytest
from fulmen.funding import BACKENDS, PaymentState, make_funding_source
from fulmen.funding.base import FundingError, FundingSource
from fulmen.funding.http import NodeAuthError, NodeUnreachable
from fulmen.funding.lnd import LndRestFunding
from fulmen.settings import Settings

from .common import Drain, decode, external_invoice
from .fake_lnd import FakeLnd, Outcome


def backend(fake: FakeLnd, cert, **kw) -> LndRestFunding:
    opts = {"timeout": 2.0, "pay_timeout": 1, "reconnect_initial": 0.05, "reconnect_max": 0.2}
    opts.update(kw)
    return LndRestFunding(
        fake.url,
        kw.pop("macaroon", fake.macaroon),
        cert,
        **{k: v for k, v in opts.items() if k != "macaroon"},
    )


@pytest.fixture
async def fake(certs):
    cert, key = certs["node"]
    node = FakeLnd(cert, key)
    await node.start()
    yield node
    await node.stop()


@pytest.fixture
async def lnd(fake, certs):
    fs = backend(fake, certs["node"][0])
    await fs.start()
    yield fs
    await fs.close()


async def test_registered_and_protocol():
    assert BACKENDS["lnd"] == "fulmen.funding.lnd:from_settings"
    assert isinstance(LndRestFunding("https://x", "00"), FundingSource)


async def test_status_reports_channel_balance(lnd, fake):
    st = await lnd.status()
    assert st.balance_msat == 123_456_000
    assert st.error is None


async def test_create_invoice_and_settlement(lnd, fake):
    inv = await lnd.create_invoice(21_000, "coffee", None, 600)
    assert inv.checking_id == inv.payment_hash
    assert hashlib.sha256(bytes.fromhex(inv.preimage)).hexdigest() == inv.payment_hash
    d = decode(inv.bolt11)
    assert d.payment_hash == inv.payment_hash
    assert d.amount_msat == 21_000
    assert d.description == "coffee"
    # what went over the wire: msat as a string, preimage as base64
    _, _, body = fake.requests[-1]
    assert body["value_msat"] == "21000" and body["expiry"] == "600"
    assert (await lnd.get_invoice_status(inv.checking_id)).state is PaymentState.PENDING
    fake.settle(inv.payment_hash)
    st = await lnd.get_invoice_status(inv.checking_id)
    assert st.state is PaymentState.SUCCESS
    assert st.preimage == inv.preimage


async def test_description_hash_invoice(lnd, fake):
    h = hashlib.sha256(b'[["text/plain","lnurl"]]').digest()
    inv = await lnd.create_invoice(1000, "ignored", h, 600)
    d = decode(inv.bolt11)
    assert d.description_hash == h.hex()
    assert "memo" not in fake.requests[-1][2]


async def test_unknown_invoice_is_an_error(lnd):
    with pytest.raises(FundingError):
        await lnd.get_invoice_status("00" * 32)


async def test_pay_success_returns_fee_and_preimage(lnd, fake):
    ext = external_invoice(100_000)
    fake.outcomes[ext.payment_hash] = Outcome("succeed", fee_msat=1_234, preimage=ext.preimage)
    st = await lnd.pay_invoice(ext.bolt11, 5_000)
    assert st.state is PaymentState.SUCCESS
    assert st.fee_msat == 1_234
    assert st.preimage == ext.preimage
    sent = fake.requests[-1][2]
    assert sent["fee_limit_msat"] == "5000" and sent["payment_request"] == ext.bolt11
    again = await lnd.get_payment_status(ext.payment_hash)
    assert again.state is PaymentState.SUCCESS and again.fee_msat == 1_234


async def test_pay_failure_is_failed(lnd, fake):
    ext = external_invoice()
    fake.outcomes[ext.payment_hash] = Outcome(
        "fail", reason="FAILURE_REASON_INCORRECT_PAYMENT_DETAILS"
    )
    st = await lnd.pay_invoice(ext.bolt11, 5_000)
    assert st.state is PaymentState.FAILED
    assert "rejected" in st.error
    assert (await lnd.get_payment_status(ext.payment_hash)).state is PaymentState.FAILED


async def test_fee_limit_is_enforced_by_node(lnd, fake):
    ext = external_invoice()
    fake.outcomes[ext.payment_hash] = Outcome("succeed", fee_msat=9_000, preimage=ext.preimage)
    st = await lnd.pay_invoice(ext.bolt11, 1_000)
    assert st.state is PaymentState.FAILED


async def test_expired_invoice_fails_definitely(lnd):
    ext = external_invoice(expiry=60, date=1_600_000_000)
    st = await lnd.pay_invoice(ext.bolt11, 1_000)
    assert st.state is PaymentState.FAILED and "expired" in st.error


async def test_pending_then_settled(lnd, fake):
    ext = external_invoice()
    fake.outcomes[ext.payment_hash] = Outcome("hold")
    st = await lnd.pay_invoice(ext.bolt11, 5_000)  # pay_timeout elapses, still in flight
    assert st.state is PaymentState.PENDING
    assert (await lnd.get_payment_status(ext.payment_hash)).state is PaymentState.PENDING
    # a second attempt on the same hash is not a failure of the first
    again = await lnd.pay_invoice(ext.bolt11, 5_000)
    assert again.state is PaymentState.PENDING
    fake.resolve(ext.payment_hash, ok=True, fee_msat=77, preimage=ext.preimage)
    done = await lnd.get_payment_status(ext.payment_hash)
    assert (
        done.state is PaymentState.SUCCESS and done.fee_msat == 77 and done.preimage == ext.preimage
    )


async def test_stream_cut_during_payment_is_pending(lnd, fake):
    ext = external_invoice()
    fake.outcomes[ext.payment_hash] = Outcome("drop")
    task = asyncio.create_task(lnd.pay_invoice(ext.bolt11, 5_000))
    await asyncio.sleep(0.3)
    fake.drop_streams()
    st = await task
    assert st.state is PaymentState.PENDING


async def test_unparseable_answer_while_paying_is_pending(lnd, fake):
    ext = external_invoice()
    fake.outcomes[ext.payment_hash] = Outcome("garbage")
    st = await lnd.pay_invoice(ext.bolt11, 5_000)
    assert st.state is PaymentState.PENDING


async def test_unknown_payment_is_pending_not_failed(lnd):
    st = await lnd.get_payment_status("ab" * 32)
    assert st.state is PaymentState.PENDING


async def test_stream_yields_and_resumes_after_disconnect(lnd, fake, caplog):
    old = await lnd.create_invoice(1000, "before start", None, 600)
    fake.settle(old.payment_hash)  # settled before the stream: not re-reported
    drain = Drain(lnd.paid_invoices_stream())
    try:
        a = await lnd.create_invoice(1000, "a", None, 600)
        b = await lnd.create_invoice(1000, "b", None, 600)
        first = asyncio.ensure_future(drain.next())
        await asyncio.sleep(0.3)  # let it subscribe
        fake.settle(a.payment_hash)
        assert await first == a.payment_hash
        # the node goes away; b is paid while we are disconnected
        await fake.stop()
        fake.settle(b.payment_hash)
        await asyncio.sleep(0.3)  # a few failed reconnects
        await fake.start()
        assert await drain.next() == b.payment_hash
        # and live events still arrive after the reconnect
        c = await lnd.create_invoice(1000, "c", None, 600)
        fake.settle(c.payment_hash)
        assert await drain.next() == c.payment_hash
        await asyncio.sleep(0.2)
        assert drain.pending() == []  # nothing reported twice
        assert "LND invoice stream lost" in caplog.text  # the outage was seen and survived
    finally:
        await drain.close()


async def test_stream_survives_server_closing_it(lnd, fake):
    drain = Drain(lnd.paid_invoices_stream())
    try:
        a = await lnd.create_invoice(1000, "a", None, 600)
        b = await lnd.create_invoice(1000, "b", None, 600)
        waiter = asyncio.ensure_future(drain.take(2))
        await asyncio.sleep(0.3)
        fake.settle(a.payment_hash)
        await asyncio.sleep(0.1)
        fake.drop_streams()  # the gateway ends the subscription
        fake.settle(b.payment_hash)  # nobody subscribed at this moment
        assert await waiter == [a.payment_hash, b.payment_hash]
    finally:
        await drain.close()


async def test_bad_macaroon_is_a_clear_error(fake, certs, caplog):
    fs = LndRestFunding(fake.url, "00" * 40, certs["node"][0], timeout=2, pay_timeout=1)
    try:
        with pytest.raises(NodeAuthError, match="macaroon"):
            await fs.start()
        with pytest.raises(FundingError, match="macaroon"):
            await fs.status()
        with pytest.raises(FundingError):
            await fs.create_invoice(1000, "x", None, 60)
        st = await fs.pay_invoice(external_invoice().bolt11, 1000)
        assert st.state is PaymentState.FAILED  # refused outright: nothing sent
    finally:
        await fs.close()
    assert fake.macaroon not in caplog.text


async def test_tls_pin_mismatch_refuses(fake, certs):
    fs = LndRestFunding(fake.url, fake.macaroon, certs["other"][0], timeout=2, pay_timeout=1)
    try:
        await fs.start()  # logs, does not raise: could be a node restarting
        with pytest.raises(NodeUnreachable, match="pinned certificate"):
            await fs.status()
        with pytest.raises(FundingError):
            await fs.create_invoice(1000, "x", None, 60)
        st = await fs.pay_invoice(external_invoice().bolt11, 1000)
        assert st.state is PaymentState.PENDING
    finally:
        await fs.close()
    # no request reached the node
    assert fake.requests == []


async def test_unpinned_self_signed_cert_is_refused(fake):
    fs = LndRestFunding(fake.url, fake.macaroon, None, timeout=2)
    try:
        with pytest.raises(NodeUnreachable):
            await fs.status()
    finally:
        await fs.close()


async def test_node_unreachable_at_start_then_recovers(certs):
    cert, key = certs["node"]
    fake = FakeLnd(cert, key)  # not started
    fs = backend(fake, cert)
    drain = Drain(fs.paid_invoices_stream())
    try:
        await fs.start()
        with pytest.raises(NodeUnreachable):
            await fs.status()
        with pytest.raises(FundingError):
            await fs.create_invoice(1000, "x", None, 60)
        st = await fs.pay_invoice(external_invoice().bolt11, 1000)
        assert st.state is PaymentState.PENDING
        waiter = asyncio.ensure_future(drain.next())
        await asyncio.sleep(0.3)
        await fake.start()
        inv = await fs.create_invoice(1000, "later", None, 60)
        await asyncio.sleep(0.5)
        fake.settle(inv.payment_hash)
        assert await waiter == inv.payment_hash
    finally:
        await drain.close()
        await fs.close()
        await fake.stop()


async def test_from_settings_reads_env_and_hides_secrets(fake, certs, monkeypatch, tmp_path):
    mac_file = tmp_path / "admin.macaroon"
    mac_file.write_bytes(bytes.fromhex(fake.macaroon))
    monkeypatch.setenv("FULMEN_FUNDING_SOURCE", "lnd")
    monkeypatch.setenv("FULMEN_LND_URL", fake.url)
    monkeypatch.setenv("FULMEN_LND_MACAROON_FILE", str(mac_file))
    monkeypatch.setenv("FULMEN_LND_CERT_FILE", str(certs["node"][0]))
    fs = make_funding_source(Settings())
    try:
        assert isinstance(fs, LndRestFunding)
        assert fake.macaroon not in repr(fs) and fake.macaroon not in repr(fs.http)
        assert (await fs.status()).balance_msat == fake.balance_msat
    finally:
        await fs.close()
    from fulmen.funding.lnd import LndSettings

    monkeypatch.setenv("FULMEN_LND_MACAROON", fake.macaroon)
    assert fake.macaroon not in repr(LndSettings())
    assert fake.macaroon not in str(LndSettings().model_dump())


async def test_secrets_never_logged(fake, certs, caplog):
    caplog.set_level(logging.DEBUG)
    fs = backend(fake, certs["node"][0])
    await fs.start()
    await fs.status()
    await fs.pay_invoice(external_invoice().bolt11, 1000)
    await fs.close()
    assert fake.macaroon not in caplog.text
