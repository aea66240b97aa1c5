"""Core Lightning funding source against a fake lightningd (clnrest and RPC socket)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
from pathlib import Path

import pytest
from fulmen.funding import BACKENDS, PaymentState, make_funding_source
from fulmen.funding.base import FundingError, FundingSource
from fulmen.funding.cln import ClnFunding
from fulmen.funding.http import NodeAuthError, NodeUnreachable
from fulmen.settings import Settings

from .common import Drain, decode, external_invoice
from .fake_cln import FakeCln, Outcome


@pytest.fixture
def sockdir():
    # unix socket paths must stay short
    with tempfile.TemporaryDirectory(prefix="fcln") as d:
        yield Path(d)


@pytest.fixture
async def fake(sockdir):
    node = FakeCln(sockdir)
    await node.start()
    yield node
    await node.stop()


def make(fake: FakeCln, transport: str, **kw) -> ClnFunding:
    opts = {
        "timeout": 2.0,
        "pay_timeout": 1,
        "wait_timeout": 1,
        "reconnect_initial": 0.05,
        "reconnect_max": 0.2,
    }
    opts.update(kw)
    if transport == "socket":
        return ClnFunding(rpc_socket=fake.socket_path, **opts)
    return ClnFunding(fake.url, opts.pop("rune", fake.rune), **opts)


@pytest.fixture(params=["rest", "socket"])
async def cln(request, fake):
    fs = make(fake, request.param)
    await fs.start()
    yield fs
    await fs.close()


async def test_registered_and_protocol():
    assert BACKENDS["cln"] == "fulmen.funding.cln:from_settings"
    assert isinstance(ClnFunding("http://x", "rune"), FundingSource)
    with pytest.raises(FundingError):
        ClnFunding("http://x", "")


async def test_status_counts_normal_channels(cln):
    st = await cln.status()
    assert st.balance_msat == 70_000_000


async def test_create_invoice_and_settlement(cln, fake):
    inv = await cln.create_invoice(42_000, "tea", None, 600)
    assert hashlib.sha256(bytes.fromhex(inv.preimage)).hexdigest() == inv.payment_hash
    d = decode(inv.bolt11)
    assert d.amount_msat == 42_000 and d.description == "tea"
    method, params = fake.calls[-1]
    assert method == "invoice" and params["amount_msat"] == 42_000 and params["expiry"] == 600
    assert params["label"].startswith("fulmen-")
    assert (await cln.get_invoice_status(inv.checking_id)).state is PaymentState.PENDING
    await fake.settle(inv.payment_hash)
    st = await cln.get_invoice_status(inv.checking_id)
    assert st.state is PaymentState.SUCCESS and st.preimage == inv.preimage


async def test_description_hash_needs_the_description(cln):
    text = '[["text/plain","pay me"]]'
    h = hashlib.sha256(text.encode()).digest()
    inv = await cln.create_invoice(1000, text, h, 600)
    assert decode(inv.bolt11).description_hash == h.hex()
    with pytest.raises(FundingError, match="full description"):
        await cln.create_invoice(1000, "something else", h, 600)


async def test_unknown_invoice_is_an_error(cln):
    with pytest.raises(FundingError):
        await cln.get_invoice_status("00" * 32)


async def test_pay_success(cln, fake):
    ext = external_invoice(200_000)
    fake.outcomes[ext.payment_hash] = Outcome("succeed", fee_msat=2_001, preimage=ext.preimage)
    st = await cln.pay_invoice(ext.bolt11, 3_000)
    assert st.state is PaymentState.SUCCESS and st.fee_msat == 2_001 and st.preimage == ext.preimage
    assert fake.calls[-1] == ("pay", {"bolt11": ext.bolt11, "maxfee": 3_000, "retry_for": 1})
    again = await cln.get_payment_status(ext.payment_hash)
    assert again.state is PaymentState.SUCCESS and again.fee_msat == 2_001


async def test_pay_failure(cln, fake):
    ext = external_invoice()
    fake.outcomes[ext.payment_hash] = Outcome("fail", code=210, message="all attempts failed")
    st = await cln.pay_invoice(ext.bolt11, 3_000)
    assert st.state is PaymentState.FAILED
    assert (await cln.get_payment_status(ext.payment_hash)).state is PaymentState.FAILED


async def test_no_route_before_any_attempt_is_failed(cln, fake):
    ext = external_invoice()  # no outcome: the fake answers 205 without an attempt
    st = await cln.pay_invoice(ext.bolt11, 3_000)
    assert st.state is PaymentState.FAILED and "routes" in st.error


async def test_fee_budget_exceeded_is_failed(cln, fake):
    ext = external_invoice()
    fake.outcomes[ext.payment_hash] = Outcome("succeed", fee_msat=10_000, preimage=ext.preimage)
    st = await cln.pay_invoice(ext.bolt11, 3_000)
    assert st.state is PaymentState.FAILED


async def test_unclassified_error_is_pending(cln, fake):
    ext = external_invoice()
    fake.outcomes[ext.payment_hash] = Outcome("error", code=-1, message="something odd")
    st = await cln.pay_invoice(ext.bolt11, 3_000)
    assert st.state is PaymentState.PENDING


async def test_pending_then_settled(cln, fake):
    ext = external_invoice()
    fake.outcomes[ext.payment_hash] = Outcome("hold")
    st = await cln.pay_invoice(ext.bolt11, 3_000)  # our timeout passes first
    assert st.state is PaymentState.PENDING
    assert (await cln.get_payment_status(ext.payment_hash)).state is PaymentState.PENDING
    fake.resolve(ext.payment_hash, ok=True, fee_msat=5, preimage=ext.preimage)
    done = await cln.get_payment_status(ext.payment_hash)
    assert (
        done.state is PaymentState.SUCCESS and done.fee_msat == 5 and done.preimage == ext.preimage
    )


async def test_unknown_payment_is_pending(cln):
    assert (await cln.get_payment_status("cd" * 32)).state is PaymentState.PENDING


async def test_unparseable_pay_answer_is_pending(fake):
    fs = make(fake, "rest")
    ext = external_invoice()
    fake.outcomes[ext.payment_hash] = Outcome("garbage")
    try:
        assert (await fs.pay_invoice(ext.bolt11, 3_000)).state is PaymentState.PENDING
    finally:
        await fs.close()


async def test_stream_resumes_after_disconnect(cln, fake, caplog):
    old = await cln.create_invoice(1000, "old", None, 600)
    await fake.settle(old.payment_hash)  # paid before the stream starts
    drain = Drain(cln.paid_invoices_stream())
    try:
        a = await cln.create_invoice(1000, "a", None, 600)
        b = await cln.create_invoice(1000, "b", None, 600)
        first = asyncio.ensure_future(drain.next())
        await asyncio.sleep(0.3)
        await fake.settle(a.payment_hash)
        assert await first == a.payment_hash
        await fake.stop()
        await fake.settle(b.payment_hash)
        await asyncio.sleep(0.3)
        await fake.start()
        assert await drain.next() == b.payment_hash
        c = await cln.create_invoice(1000, "c", None, 600)
        await fake.settle(c.payment_hash)
        assert await drain.next() == c.payment_hash
        await asyncio.sleep(0.2)
        assert drain.pending() == []  # nothing reported twice
        assert "Core Lightning invoice wait lost" in caplog.text  # the outage was seen and survived
    finally:
        await drain.close()


async def test_stream_long_poll_timeouts_are_not_errors(cln, fake):
    drain = Drain(cln.paid_invoices_stream())
    try:
        a = await cln.create_invoice(1000, "a", None, 600)
        waiter = asyncio.ensure_future(drain.next())
        await asyncio.sleep(2.5)  # more than two wait_timeout rounds
        await fake.settle(a.payment_hash)
        assert await waiter == a.payment_hash
    finally:
        await drain.close()
    waits = [p for m, p in fake.calls if m == "waitanyinvoice"]
    assert len(waits) >= 3 and all(p["timeout"] == 1 for p in waits)


async def test_bad_rune(fake, caplog):
    fs = ClnFunding(fake.url, "not-the-rune", timeout=2, pay_timeout=1)
    try:
        with pytest.raises(NodeAuthError, match="rune"):
            await fs.start()
        with pytest.raises(FundingError, match="rune"):
            await fs.status()
        with pytest.raises(FundingError):
            await fs.create_invoice(1000, "x", None, 60)
        assert (await fs.pay_invoice(external_invoice().bolt11, 10)).state is PaymentState.FAILED
    finally:
        await fs.close()
    assert fake.rune not in caplog.text


@pytest.mark.parametrize("transport", ["rest", "socket"])
async def test_node_unreachable_at_start_then_recovers(transport, sockdir):
    fake = FakeCln(sockdir)
    fs = make(fake, transport)
    drain = Drain(fs.paid_invoices_stream())
    try:
        await fs.start()
        with pytest.raises(NodeUnreachable):
            await fs.status()
        with pytest.raises(FundingError):
            await fs.create_invoice(1000, "x", None, 60)
        assert (await fs.pay_invoice(external_invoice().bolt11, 10)).state is PaymentState.PENDING
        waiter = asyncio.ensure_future(drain.next())
        await asyncio.sleep(0.3)
        await fake.start()
        inv = await fs.create_invoice(1000, "later", None, 60)
        await asyncio.sleep(0.3)
        await fake.settle(inv.payment_hash)
        assert await waiter == inv.payment_hash
    finally:
        await drain.close()
        await fs.close()
        await fake.stop()


async def test_from_settings_rune_file(fake, monkeypatch, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    rune_file = tmp_path / "rune.json"
    rune_file.write_text(f'{{"rune": "{fake.rune}", "unique_id": "1"}}')
    monkeypatch.setenv("FULMEN_FUNDING_SOURCE", "cln")
    monkeypatch.setenv("FULMEN_CLN_URL", fake.url)
    monkeypatch.setenv("FULMEN_CLN_RUNE_FILE", str(rune_file))
    fs = make_funding_source(Settings())
    try:
        assert isinstance(fs, ClnFunding)
        assert fake.rune not in repr(fs)
        assert (await fs.status()).balance_msat == 70_000_000
    finally:
        await fs.close()
    from fulmen.funding.cln import ClnSettings

    monkeypatch.setenv("FULMEN_CLN_RUNE", fake.rune)
    assert fake.rune not in repr(ClnSettings())
    assert fake.rune not in caplog.text
