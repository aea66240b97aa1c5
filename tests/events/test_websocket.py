"""WebSocket channels: `/api/v1/ws/{key}` and `/api/v1/ws/{payment_hash}`."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from event_helpers import foreign_invoice, serve, ws_url


async def next_json(ws, timeout: float = 5.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def test_wallet_channel_gets_incoming_and_outgoing_in_lnbits_shape(fulmen_db):
    await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=100)
    bob = await fulmen_db.wallet("bob")
    async with serve(fulmen_db.app) as base:
        async with websockets.connect(ws_url(base, bob.readkey)) as bob_ws, \
                websockets.connect(ws_url(base, alice.inkey)) as alice_ws:
            inv = await fulmen_db.invoice(bob, 30, memo="lunch")
            assert (await fulmen_db.pay(alice, inv["bolt11"])).status_code == 201
            got = await next_json(bob_ws)
            assert set(got) == {"wallet_balance", "payment"}
            assert got["wallet_balance"] == 30
            assert got["payment"]["payment_hash"] == inv["payment_hash"]
            assert got["payment"]["amount"] == 30000 and got["payment"]["status"] == "success"
            assert got["payment"]["pending"] is False and got["payment"]["memo"] == "lunch"
            sent = await next_json(alice_ws)
            assert sent["wallet_balance"] == 70 and sent["payment"]["amount"] == -30000
            # a payment that fails is an event too, with the money back
            r = await fulmen_db.pay(alice, await foreign_invoice(5))
            assert r.status_code == 400
            failed = await next_json(alice_ws)
            assert failed["payment"]["status"] == "failed" and failed["wallet_balance"] == 70
            # bob heard nothing of alice's failed payment
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(bob_ws.recv(), 0.3)


async def test_admin_key_works_and_events_of_one_wallet_arrive_in_order(fulmen_db):
    await fulmen_db.start()
    payers = [await fulmen_db.wallet(f"p{i}", sats=100) for i in range(4)]
    bob = await fulmen_db.wallet("bob")
    invoices = [await fulmen_db.invoice(bob, i + 1) for i in range(20)]
    async with serve(fulmen_db.app) as base:
        async with websockets.connect(ws_url(base, bob.adminkey)) as ws:
            await asyncio.gather(*(fulmen_db.pay(payers[i % 4], inv["bolt11"])
                                   for i, inv in enumerate(invoices)))
            got = [await next_json(ws) for _ in invoices]
    # commit order: every event's balance is the previous one plus its amount
    balance = 0
    for message in got:
        balance += message["payment"]["amount"] // 1000
        assert message["wallet_balance"] == balance
    assert balance == sum(range(1, 21))
    assert sorted(m["payment"]["payment_hash"] for m in got) == sorted(i["payment_hash"] for i in invoices)


async def test_payment_hash_channel_says_only_paid_or_not(fulmen_db):
    await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=100)
    bob = await fulmen_db.wallet("bob")
    inv = await fulmen_db.invoice(bob, 10)
    async with serve(fulmen_db.app) as base:
        async with websockets.connect(ws_url(base, inv["payment_hash"])) as ws:
            assert (await fulmen_db.pay(alice, inv["bolt11"])).status_code == 201
            assert await next_json(ws) == {"pending": False, "status": "success"}
        # a checkout page that connects after the payment learns it at once
        async with websockets.connect(ws_url(base, inv["payment_hash"].upper())) as ws:
            assert await next_json(ws) == {"pending": False, "status": "success"}


async def test_invoice_paid_from_outside_reaches_both_channels(fulmen_db):
    await fulmen_db.start()
    bob = await fulmen_db.wallet("bob")
    inv = await fulmen_db.invoice(bob, 21)
    async with serve(fulmen_db.app) as base:
        async with websockets.connect(ws_url(base, bob.inkey)) as wallet_ws, \
                websockets.connect(ws_url(base, inv["payment_hash"])) as hash_ws:
            assert (await fulmen_db.settle_from_outside(inv["payment_hash"])).status_code == 200
            assert (await next_json(wallet_ws))["wallet_balance"] == 21
            assert await next_json(hash_ws) == {"pending": False, "status": "success"}


@pytest.mark.parametrize("channel", ["0" * 32, "not-a-key", "ab" * 32])
async def test_stranger_cannot_subscribe(fulmen, channel):
    await fulmen.start()
    await fulmen.wallet("bob")
    async with serve(fulmen.app) as base:
        async with websockets.connect(ws_url(base, channel)) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd.code == 1008


async def test_nobody_can_publish(fulmen):
    client = await fulmen.start()
    alice = await fulmen.wallet("alice", sats=100)
    bob = await fulmen.wallet("bob")
    inv = await fulmen.invoice(bob, 10)
    # LNbits's publish routes do not exist here
    for channel in (bob.inkey, inv["payment_hash"]):
        r = await client.post(f"/api/v1/ws/{channel}", json={"paid": True})
        assert r.status_code in (404, 405), r.text
        r = await client.get(f"/api/v1/ws/{channel}/paid")
        assert r.status_code in (404, 405), r.text
    async with serve(fulmen.app) as base:
        async with websockets.connect(ws_url(base, inv["payment_hash"])) as checkout, \
                websockets.connect(ws_url(base, inv["payment_hash"])) as attacker, \
                websockets.connect(ws_url(base, bob.inkey)) as bob_ws:
            # what a client sends into a channel goes nowhere
            fake = json.dumps({"pending": False, "status": "success"})
            await attacker.send(fake)
            await bob_ws.send(json.dumps({"wallet_balance": 1_000_000, "payment": {}}))
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(checkout.recv(), 0.5)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(bob_ws.recv(), 0.1)
            # the real payment still comes through
            assert (await fulmen.pay(alice, inv["bolt11"])).status_code == 201
            assert await next_json(checkout) == {"pending": False, "status": "success"}
            assert (await next_json(bob_ws))["wallet_balance"] == 10
