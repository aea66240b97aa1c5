"""Uncertain or wrong node answers never freeze or lose money.

- A single 404 from the invoice lookup (a proxy hiccup, an upstream restart)
  does not make the Eclair or LNbits watcher drop the invoice: a later
  payment is still reported, and the host credits it.
- An invoice whose BOLT11 does not match the payment hash (or amount) the
  node reports is refused; an upstream LNbits that omits `payment_hash` is
  fine, the hash is read from the BOLT11.
- LND invoices ask for route hints for private channels (`private`).
"""

from __future__ import annotations

import asyncio

import pytest
from fulmen.funding import PaymentState
from fulmen.funding.eclair import EclairFunding
from fulmen.funding.lnbits import LnbitsFunding
from fulmen.funding.lnd import LndRestFunding
from fulmen.funding.lnd import from_settings as lnd_from_settings

from .common import Drain, decode
from .fake_eclair import FakeEclair
from .fake_lnbits import FakeLnbits
from .fake_lnd import FakeLnd

FAST = {"timeout": 2.0, "pay_timeout": 1, "poll_interval": 0.05, "reconnect_initial": 0.05,
        "reconnect_max": 0.2}


@pytest.fixture
async def eclair_node():
    node = FakeEclair()
    await node.start()
    yield node
    await node.stop()


@pytest.fixture
async def lnbits_node():
    node = FakeLnbits()
    await node.start()
    yield node
    await node.stop()


def eclair_for(node: FakeEclair) -> EclairFunding:
    return EclairFunding(node.url, node.password, **FAST)


def lnbits_for(node: FakeLnbits) -> LnbitsFunding:
    return LnbitsFunding(node.url, node.admin_key, **FAST)


async def wait_until_lost_answered(node: FakeEclair | FakeLnbits, payment_hash: str) -> None:
    for _ in range(200):
        if payment_hash not in node.lost_once:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the watcher never asked about the invoice")


@pytest.mark.parametrize("kind", ["eclair", "lnbits"])
async def test_watcher_keeps_an_invoice_after_a_404(kind, eclair_node, lnbits_node):
    node = eclair_node if kind == "eclair" else lnbits_node
    funding = eclair_for(eclair_node) if kind == "eclair" else lnbits_for(lnbits_node)
    await funding.start()
    inv = await funding.create_invoice(5000, "coffee", None, 600)
    node.lost_once.add(inv.payment_hash)  # the next lookup answers 404
    drain = Drain(funding.paid_invoices_stream())
    try:
        await wait_until_lost_answered(node, inv.payment_hash)
        await asyncio.sleep(0.2)  # several more polls after the 404
        assert inv.checking_id in funding.watcher.watched
        node.settle(inv.payment_hash)
        assert await drain.next(timeout=10) == inv.checking_id
    finally:
        await drain.close()
        await funding.close()


async def test_watcher_drops_an_invoice_only_after_expiry_and_grace(eclair_node):
    funding = eclair_for(eclair_node)
    funding.watcher.grace = 0.3
    inv = await funding.create_invoice(5000, "short", None, 1)
    drain = Drain(funding.paid_invoices_stream())
    try:
        await asyncio.sleep(0.6)
        assert inv.checking_id in funding.watcher.watched  # expired, within the grace period
        await asyncio.sleep(1.2)
        assert inv.checking_id not in funding.watcher.watched
    finally:
        await drain.close()
        await funding.close()


@pytest.mark.parametrize("kind", ["eclair", "lnbits"])
async def test_host_credits_an_invoice_paid_after_a_404(kind, fulmen_db, eclair_node, lnbits_node):
    """Through the host: the lookup 404s once, the payer pays later, the
    wallet is credited (watcher) and the periodic check agrees."""
    node = eclair_node if kind == "eclair" else lnbits_node
    funding = eclair_for(eclair_node) if kind == "eclair" else lnbits_for(lnbits_node)
    await fulmen_db.start(funding=funding, network="bcrt", invoice_check_interval=0.5)
    alice = await fulmen_db.wallet("alice")
    other = await fulmen_db.wallet("other")
    invoice = await fulmen_db.invoice(alice, 7)
    untouched = await fulmen_db.invoice(other, 3)
    node.lost_once.add(invoice["payment_hash"])
    await wait_until_lost_answered(node, invoice["payment_hash"])
    await asyncio.sleep(0.3)
    node.settle(invoice["payment_hash"])
    for _ in range(300):
        if await fulmen_db.balance(alice) == 7000:
            break
        await asyncio.sleep(0.05)
    assert await fulmen_db.balance(alice) == 7000
    assert await fulmen_db.balance(other) == 0
    r = await fulmen_db.client.get(f"/api/v1/payments/{untouched['payment_hash']}",
                                   headers=other.read_headers)
    assert r.json()["paid"] is False
    audit = (await fulmen_db.client.get("/admin/api/v1/audit",
                                        headers=fulmen_db.admin_headers)).json()
    assert audit["ok"] is True, audit


async def test_periodic_check_credits_what_no_watcher_saw(fulmen_db, lnbits_node):
    """A process whose watcher lost the invoice (here: forgotten outright)
    still credits it through the periodic check of pending invoices."""
    funding = lnbits_for(lnbits_node)
    await fulmen_db.start(funding=funding, network="bcrt", invoice_check_interval=0.3)
    alice = await fulmen_db.wallet("alice")
    invoice = await fulmen_db.invoice(alice, 9)
    funding.watcher._watched.clear()  # the stream will never report it
    lnbits_node.settle(invoice["payment_hash"])
    for _ in range(200):
        if await fulmen_db.balance(alice) == 9000:
            break
        await asyncio.sleep(0.05)
    assert await fulmen_db.balance(alice) == 9000


async def test_invoice_with_another_payment_hash_is_refused(fulmen_db, lnbits_node):
    lnbits_node.wrong_payment_hash = True
    client = await fulmen_db.start(funding=lnbits_for(lnbits_node), network="bcrt")
    alice = await fulmen_db.wallet("alice")
    r = await client.post("/api/v1/payments", headers=alice.invoice_headers,
                          json={"out": False, "amount": 5, "memo": "x"})
    assert r.status_code == 502, r.text
    assert "payment hash" in r.json()["detail"]
    r = await client.get("/api/v1/payments", headers=alice.read_headers)
    assert r.json() == []


async def test_upstream_lnbits_without_payment_hash(fulmen_db, lnbits_node):
    lnbits_node.omit_payment_hash = True
    client = await fulmen_db.start(funding=lnbits_for(lnbits_node), network="bcrt")
    alice = await fulmen_db.wallet("alice")
    r = await client.post("/api/v1/payments", headers=alice.invoice_headers,
                          json={"out": False, "amount": 5, "memo": "x"})
    assert r.status_code == 201, r.text
    assert r.json()["payment_hash"] == decode(r.json()["bolt11"]).payment_hash


class WrongAmountNode(FakeLnbits):
    """An upstream that issues an invoice for more than it was asked."""

    def create(self, body: dict) -> object:
        return super().create({**body, "amount": int(body["amount"]) + 1})


async def test_invoice_for_another_amount_is_refused(fulmen_db):
    node = WrongAmountNode()
    await node.start()
    try:
        client = await fulmen_db.start(funding=lnbits_for(node), network="bcrt")
        alice = await fulmen_db.wallet("alice")
        r = await client.post("/api/v1/payments", headers=alice.invoice_headers,
                              json={"out": False, "amount": 5, "memo": "x"})
        assert r.status_code == 502, r.text
        assert "6000 msat" in r.json()["detail"] and "5000 msat" in r.json()["detail"]
    finally:
        await node.stop()


async def test_invoice_for_another_network_from_the_node_is_refused(fulmen_db, lnbits_node):
    # the node issues regtest invoices; this host is set up for mainnet
    client = await fulmen_db.start(funding=lnbits_for(lnbits_node), network="bc")
    alice = await fulmen_db.wallet("alice")
    r = await client.post("/api/v1/payments", headers=alice.invoice_headers,
                          json={"out": False, "amount": 5, "memo": "x"})
    assert r.status_code == 502, r.text
    assert "regtest" in r.json()["detail"]


# --- LND: invoices with route hints for private channels ------------------------------


@pytest.fixture
async def lnd_node(certs):
    cert, key = certs["node"]
    node = FakeLnd(cert, key)
    await node.start()
    yield node
    await node.stop()


async def test_lnd_invoices_are_private_by_default(lnd_node, certs):
    lnd = LndRestFunding(lnd_node.url, lnd_node.macaroon, certs["node"][0], timeout=2.0)
    try:
        await lnd.create_invoice(1000, "hint me", None, 600)
        _, path, body = lnd_node.requests[-1]
        assert path == "/v1/invoices" and body["private"] is True
    finally:
        await lnd.close()


async def test_lnd_private_invoices_can_be_turned_off(lnd_node, certs, monkeypatch):
    monkeypatch.setenv("FULMEN_LND_URL", lnd_node.url)
    monkeypatch.setenv("FULMEN_LND_MACAROON", lnd_node.macaroon)
    monkeypatch.setenv("FULMEN_LND_CERT_FILE", str(certs["node"][0]))
    monkeypatch.setenv("FULMEN_LND_PRIVATE_INVOICES", "false")
    lnd = lnd_from_settings()
    try:
        inv = await lnd.create_invoice(1000, "public", None, 600)
        _, _, body = lnd_node.requests[-1]
        assert "private" not in body
        assert (await lnd.get_invoice_status(inv.checking_id)).state is PaymentState.PENDING
    finally:
        await lnd.close()
