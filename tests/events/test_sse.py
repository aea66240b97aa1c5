"""Server-Sent Events: `/api/v1/events`, with resumption by Last-Event-ID."""

from __future__ import annotations

import json

import httpx
from event_helpers import SSE, serve
from fulmen.db import now_ms, query


async def test_sse_resumes_without_gaps(fulmen_db):
    await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=1000)
    bob = await fulmen_db.wallet("bob")

    async def pay_bob(sats: int) -> str:
        inv = await fulmen_db.invoice(bob, sats)
        assert (await fulmen_db.pay(alice, inv["bolt11"])).status_code == 201
        return inv["payment_hash"]

    async with serve(fulmen_db.app) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        hashes = []
        async with http.stream("GET", "/api/v1/events", headers=bob.read_headers) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            sse = SSE(r)
            for sats in (1, 2, 3):
                hashes.append(await pay_bob(sats))
            seen = [await sse.next() for _ in range(3)]
        assert [e["id"] for e in seen] == ["1", "2", "3"]
        assert all(e["event"] == "payment.received" for e in seen)
        assert [json.loads(e["data"])["wallet_balance"] for e in seen] == [1, 3, 6]
        # disconnected: four more payments happen
        for sats in (4, 5, 6, 7):
            hashes.append(await pay_bob(sats))
        headers = {**bob.read_headers, "Last-Event-ID": seen[-1]["id"]}
        async with http.stream("GET", "/api/v1/events", headers=headers) as r:
            sse = SSE(r)
            replayed = [await sse.next() for _ in range(4)]
            hashes.append(await pay_bob(8))  # and live again after the replay
            live = await sse.next()
        got = seen + replayed + [live]
        assert [e["id"] for e in got] == [str(i) for i in range(1, 9)]
        assert [json.loads(e["data"])["payment"]["payment_hash"] for e in got] == hashes
        assert json.loads(live["data"])["wallet_balance"] == sum(range(1, 9))


async def test_sse_needs_a_key_and_a_sane_last_event_id(fulmen):
    client = await fulmen.start()
    bob = await fulmen.wallet("bob")
    r = await client.get("/api/v1/events")
    assert r.status_code == 401
    r = await client.get("/api/v1/events", headers={"X-Api-Key": "f" * 32})
    assert r.status_code == 401
    r = await client.get("/api/v1/events", headers={**bob.read_headers, "Last-Event-ID": "yesterday"})
    assert r.status_code == 400 and "Last-Event-ID" in r.json()["detail"]


async def test_sse_reports_events_pruned_from_the_log(fulmen, monkeypatch):
    monkeypatch.setenv("FULMEN_EVENT_RETENTION_HOURS", "1")
    monkeypatch.setenv("FULMEN_EVENT_RETENTION_COUNT", "2")
    await fulmen.start()
    bob = await fulmen.wallet("bob")
    for sats in range(1, 6):
        inv = await fulmen.invoice(bob, sats)
        await fulmen.settle_from_outside(inv["payment_hash"])
    # age every event past the retention time; the last two stay by count
    await query("UPDATE fulmen_event SET created_at = {}", now_ms() - 2 * 3_600_000)
    await fulmen.host.events.prune()
    rows = await query("SELECT seq FROM fulmen_event WHERE wallet_id = {} ORDER BY seq", bob.id)
    assert [r["seq"] for r in rows] == [4, 5]
    async with serve(fulmen.app) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        headers = {**bob.read_headers, "Last-Event-ID": "1"}
        async with http.stream("GET", "/api/v1/events", headers=headers) as r:
            sse = SSE(r)
            gap = await sse.next()
            assert gap["event"] == "gap"
            assert json.loads(gap["data"]) == {"missed_from": 2, "missed_to": 3}
            assert [(await sse.next())["id"] for _ in range(2)] == ["4", "5"]


async def test_logged_event_is_the_event_delivered_live(fulmen_db):
    """The event row written in the payment's transaction holds exactly what
    subscribers were handed live (both sides of the payment)."""
    await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=1000)
    bob = await fulmen_db.wallet("bob")
    bus = fulmen_db.host.events
    inv = await fulmen_db.invoice(bob, 21, memo='quote " and \u00e9')
    async with bus.subscribe_wallet(bob.id) as bob_sub, bus.subscribe_wallet(alice.id) as alice_sub:
        r = await fulmen_db.pay(alice, inv["bolt11"])
        assert r.status_code == 201, r.text
        live = {bob.id: await bob_sub.next(5), alice.id: await alice_sub.next(5)}
    for wallet, balance in ((bob, 21), (alice, 979)):
        [logged] = await bus.replay(wallet.id, 0)
        assert live[wallet.id] is not None and live[wallet.id].data == logged.data
        assert logged.data["wallet_balance"] == balance
        assert logged.data["payment"]["payment_hash"] == inv["payment_hash"]
        assert logged.data["payment"]["memo"] == 'quote " and \u00e9'
