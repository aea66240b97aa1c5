"""Review findings on events and webhooks: each test failed before its fix."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest
from event_helpers import SSE, serve
from fulmen.db import now_ms, query
from fulmen.outbox import Outcome
from fulmen.webhooks import MAX_ENDPOINTS_PER_WALLET, signature_header, verify_signature


def test_verify_signature_refuses_non_ascii_signature_without_raising():
    body = b'{"id":"evt_1"}'
    header = signature_header("whsec_x", body)
    t = header.split(",")[0]
    # a header value decoded as latin-1 may hold any character
    assert verify_signature("whsec_x", f"{t},v1=\u00e9\u00e9", body) is False
    assert verify_signature("whsec_x", f"{t},v1=\u2615", body) is False
    assert verify_signature("whsec_x", header, body) is True


async def _pending_delivery(fulmen, wallet, url: str) -> int:
    """A delivery row that the worker will not pick up by itself (due in an hour)."""
    now = now_ms()
    rows = await query(
        "INSERT INTO fulmen_webhook_delivery (wallet_id, endpoint_id, event_id, event_type, url, body, "
        "status, attempts, next_attempt_at, locked_until, give_up_at, created_at, updated_at) "
        "VALUES ({}, NULL, 1, 'payment.received', {}, {}, 'pending', 0, {}, 0, {}, {}, {}) RETURNING id",
        wallet.id, url, "{}", now + 3_600_000, now + 86_400_000, now, now,
    )
    return int(rows[0]["id"])


async def _claim(delivery_id: int, until: int) -> dict:
    rows = await query(
        "UPDATE fulmen_webhook_delivery SET locked_until = {}, attempts = attempts + 1 "
        "WHERE id = {} RETURNING *",
        until, delivery_id,
    )
    return rows[0]


async def test_a_late_claimant_cannot_release_a_newer_claim(fulmen_db, receiver):
    """Worker A's claim expires, worker B claims and is sending; A's late
    failure must not reset B's claim (a third worker would send it again)."""
    await fulmen_db.start()
    bob = await fulmen_db.wallet("bob")
    service = fulmen_db.host.webhooks
    delivery = await _pending_delivery(fulmen_db, bob, receiver.url)
    row_a = await _claim(delivery, now_ms() - 1)  # A's claim, already expired
    row_b = await _claim(delivery, now_ms() + 60_000)  # B holds it now
    outbox = service.outbox  # the one outbox (fulmen/outbox.py) records every outcome
    await outbox._record(row_a, int(row_a["locked_until"]),
                         Outcome(error="HTTP 500: late", columns={"last_status_code": 500}))
    row = (await query("SELECT * FROM fulmen_webhook_delivery WHERE id = {}", delivery))[0]
    assert int(row["locked_until"]) == int(row_b["locked_until"])
    assert row["status"] == "pending" and int(row["attempts"]) == 2
    # B's outcome is recorded; a late success of A would count too
    await outbox._record(row_b, int(row_b["locked_until"]),
                         Outcome(columns={"last_status_code": 200, "delivered_at": now_ms()}))
    row = (await query("SELECT * FROM fulmen_webhook_delivery WHERE id = {}", delivery))[0]
    assert row["status"] == "success" and int(row["locked_until"]) == 0


async def test_endpoint_limit_holds_under_concurrent_creates(fulmen_db, receiver):
    client = await fulmen_db.start()
    bob = await fulmen_db.wallet("bob")
    results = await asyncio.gather(*(
        client.post("/api/v1/webhooks", json={"url": receiver.url}, headers=bob.admin_headers)
        for _ in range(MAX_ENDPOINTS_PER_WALLET + 6)
    ))
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == MAX_ENDPOINTS_PER_WALLET, codes
    assert set(codes) == {201, 400}
    listed = (await client.get("/api/v1/webhooks", headers=bob.invoice_headers)).json()
    assert len(listed) == MAX_ENDPOINTS_PER_WALLET
    row = (await query("SELECT webhook_endpoints FROM fulmen_wallet WHERE id = {}", bob.id))[0]
    assert int(row["webhook_endpoints"]) == MAX_ENDPOINTS_PER_WALLET


async def test_out_of_range_delivery_id_is_a_404_not_a_500(fulmen_db, receiver):
    client = await fulmen_db.start()
    bob = await fulmen_db.wallet("bob")
    r = await client.post("/api/v1/webhooks", json={"url": receiver.url}, headers=bob.admin_headers)
    endpoint = r.json()["id"]
    for delivery_id in ("99999999999999999999999", "-99999999999999999999999", "9223372036854775808"):
        r = await client.post(f"/api/v1/webhooks/{endpoint}/deliveries/{delivery_id}/redeliver",
                              headers=bob.admin_headers)
        assert r.status_code == 404, (delivery_id, r.status_code, r.text)


async def test_sse_reports_a_gap_when_every_missed_event_was_pruned(fulmen, monkeypatch):
    monkeypatch.setenv("FULMEN_EVENT_RETENTION_HOURS", "1")
    monkeypatch.setenv("FULMEN_EVENT_RETENTION_COUNT", "0")
    await fulmen.start()
    bob = await fulmen.wallet("bob")
    for sats in range(1, 4):
        inv = await fulmen.invoice(bob, sats)
        await fulmen.settle_from_outside(inv["payment_hash"])
    await query("UPDATE fulmen_event SET created_at = {}", now_ms() - 2 * 3_600_000)
    await fulmen.host.events.prune()
    assert await query("SELECT seq FROM fulmen_event WHERE wallet_id = {}", bob.id) == []
    async with serve(fulmen.app) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        headers = {**bob.read_headers, "Last-Event-ID": "1"}
        async with http.stream("GET", "/api/v1/events", headers=headers) as r:
            gap = await SSE(r).next()
            assert gap["event"] == "gap"
            assert json.loads(gap["data"]) == {"missed_from": 2, "missed_to": 3}


async def test_give_up_log_does_not_show_credentials_in_the_url(fulmen, receiver):
    await fulmen.start()
    bob = await fulmen.wallet("bob")
    service = fulmen.host.webhooks
    url = receiver.url.replace("http://", "http://user:hunter2@") + "?token=s3cr3t"
    delivery = await _pending_delivery(fulmen, bob, url)
    row = await _claim(delivery, now_ms() + 60_000)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("fulmen.outbox")
    logger.addHandler(handler)
    try:
        await service.outbox._record(row, int(row["locked_until"]),
                                     Outcome(error="refused", permanent=True))
    finally:
        logger.removeHandler(handler)
    text = "\n".join(r.getMessage() for r in records)
    assert "gave up" in text
    assert "hunter2" not in text and "s3cr3t" not in text


async def test_streams_opened_with_a_rotated_key_get_no_more_events(fulmen):
    """A key that leaked is rotated: a WebSocket or SSE stream opened with it
    before must not go on receiving the wallet's payments."""
    import websockets
    from event_helpers import ws_url

    client = await fulmen.start()
    bob = await fulmen.wallet("bob")
    async with serve(fulmen.app) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        async with websockets.connect(ws_url(base, bob.readkey)) as ws, \
                http.stream("GET", "/api/v1/events", headers=bob.read_headers) as r:
            sse = SSE(r)
            inv = await fulmen.invoice(bob, 1)
            await fulmen.settle_from_outside(inv["payment_hash"])
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["payment"]["amount"] == 1000
            assert (await sse.next())["event"] == "payment.received"
            r2 = await client.post("/api/v1/wallet/rotate-keys", headers=bob.admin_headers)
            assert r2.status_code == 200, r2.text
            await asyncio.sleep(1.1)
            rows = await query("SELECT COUNT(*) AS n FROM fulmen_api_key WHERE wallet_id = {}", bob.id)
            assert int(rows[0]["n"]) == 3
            new_admin = r2.json()["adminkey"]
            created = await client.post("/api/v1/payments", json={"out": False, "amount": 2, "memo": "x"},
                                        headers={"X-Api-Key": new_admin})
            assert created.status_code == 201, created.text
            await fulmen.settle_from_outside(created.json()["payment_hash"])
            with pytest.raises((websockets.ConnectionClosed, asyncio.TimeoutError)):
                message = await asyncio.wait_for(ws.recv(), 2)
                raise AssertionError(f"old key still hears payments: {message}")
            with pytest.raises((EOFError, asyncio.TimeoutError, httpx.HTTPError)):
                event = await sse.next(2)
                raise AssertionError(f"old key still hears payments: {event}")
