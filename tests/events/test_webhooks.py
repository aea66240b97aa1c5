"""Webhooks: endpoints, signatures, retries, delivery log, per-invoice webhook."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

from event_helpers import foreign_invoice
from fulmen.webhooks import SIGNATURE_HEADER, verify_signature


async def fast_webhooks(monkeypatch, **extra: str) -> None:
    monkeypatch.setenv("FULMEN_WEBHOOK_BACKOFF_BASE_SECONDS", "0.05")
    monkeypatch.setenv("FULMEN_WEBHOOK_POLL_SECONDS", "0.05")
    for name, value in extra.items():
        monkeypatch.setenv(name, value)


async def create_endpoint(client, wallet, url, events=None) -> dict:
    payload = {"url": url, **({"events": events} if events is not None else {})}
    r = await client.post("/api/v1/webhooks", json=payload, headers=wallet.admin_headers)
    assert r.status_code == 201, r.text
    return r.json()


async def wait_delivery(client, wallet, endpoint_id, status: str, timeout: float = 10) -> list[dict]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        r = await client.get(f"/api/v1/webhooks/{endpoint_id}/deliveries", headers=wallet.invoice_headers)
        assert r.status_code == 200, r.text
        rows = r.json()
        if rows and all(d["status"] == status for d in rows):
            return rows
        assert asyncio.get_running_loop().time() < deadline, f"deliveries still {rows}"
        await asyncio.sleep(0.05)


def check_signature(call, secret: str) -> int:
    header = call.headers[SIGNATURE_HEADER.lower()]
    parts = dict(p.split("=", 1) for p in header.split(","))
    # computed here from the documented format, not with the host's own helper
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + call.body, hashlib.sha256)
    assert parts["v1"] == expected.hexdigest()
    assert abs(int(parts["t"]) - time.time()) < 60
    assert verify_signature(secret, header, call.body)
    assert not verify_signature(secret, header, call.body + b" ")
    assert not verify_signature("whsec_wrong", header, call.body)
    return int(parts["t"])


async def test_failing_receiver_is_retried_until_it_accepts(fulmen_db, receiver, monkeypatch):
    await fast_webhooks(monkeypatch)
    client = await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=100)
    bob = await fulmen_db.wallet("bob")
    endpoint = await create_endpoint(client, bob, receiver.url)
    assert endpoint["secret"].startswith("whsec_") and endpoint["events"] == [
        "payment.received", "payment.sent", "payment.failed"]
    receiver.statuses = [500, 503]
    inv = await fulmen_db.invoice(bob, 42)
    assert (await fulmen_db.pay(alice, inv["bolt11"])).status_code == 201
    calls = await receiver.wait_for(3)
    [delivery] = await wait_delivery(client, bob, endpoint["id"], "success")
    assert delivery["attempts"] == 3 and delivery["last_status_code"] == 200
    assert delivery["last_error"] is None and delivery["event_type"] == "payment.received"
    assert len(receiver.calls) == 3  # and nothing more after the success
    assert len({c.body for c in calls}) == 1  # the same event each time
    for call in calls:
        check_signature(call, endpoint["secret"])
        assert call.headers["fulmen-event"] == "payment.received"
        assert call.headers["fulmen-delivery"] == str(delivery["id"])
    event = calls[0].json()
    assert event["type"] == "payment.received" and event["wallet_id"] == bob.id
    assert event["id"] == delivery["event_id"] and event["seq"] == 1
    assert event["data"]["wallet_balance"] == 42
    assert event["data"]["payment"]["payment_hash"] == inv["payment_hash"]


async def test_timeouts_are_retried_and_recorded(fulmen, receiver, monkeypatch):
    await fast_webhooks(monkeypatch, FULMEN_WEBHOOK_TIMEOUT_SECONDS="0.3")
    client = await fulmen.start()
    bob = await fulmen.wallet("bob")
    endpoint = await create_endpoint(client, bob, receiver.url)
    receiver.delays = [2.0]
    inv = await fulmen.invoice(bob, 5)
    await fulmen.settle_from_outside(inv["payment_hash"])
    await receiver.wait_for(2)
    [delivery] = await wait_delivery(client, bob, endpoint["id"], "success")
    assert delivery["attempts"] == 2


async def test_event_filters_and_failed_payments(fulmen, receiver, monkeypatch):
    await fast_webhooks(monkeypatch)
    client = await fulmen.start()
    alice = await fulmen.wallet("alice", sats=100)
    bob = await fulmen.wallet("bob")
    only_failed = await create_endpoint(client, alice, receiver.url + "/failed", ["payment.failed"])
    only_sent = await create_endpoint(client, alice, receiver.url + "/sent", ["payment.sent"])
    inv = await fulmen.invoice(bob, 10)
    assert (await fulmen.pay(alice, inv["bolt11"])).status_code == 201
    assert (await fulmen.pay(alice, await foreign_invoice(3))).status_code == 400
    calls = await receiver.wait_for(2)
    await asyncio.sleep(0.3)
    by_path = {c.path: c.json() for c in calls}
    assert len(receiver.calls) == 2
    assert by_path["/hook/sent"]["type"] == "payment.sent"
    assert by_path["/hook/sent"]["data"]["payment"]["amount"] == -10000
    assert by_path["/hook/failed"]["type"] == "payment.failed"
    assert by_path["/hook/failed"]["data"]["payment"]["status"] == "failed"
    for endpoint in (only_failed, only_sent):
        assert len(await wait_delivery(client, alice, endpoint["id"], "success")) == 1


async def test_invoice_webhook_is_called_signed_when_paid(fulmen_db, receiver, monkeypatch):
    await fast_webhooks(monkeypatch)
    client = await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=100)
    bob = await fulmen_db.wallet("bob")
    receiver.statuses = [502]
    inv = await fulmen_db.invoice(bob, 7, webhook=receiver.url + "/invoice")
    assert inv["webhook"] == receiver.url + "/invoice"
    await asyncio.sleep(0.2)
    assert receiver.calls == []  # not before it is paid
    assert (await fulmen_db.pay(alice, inv["bolt11"])).status_code == 201
    calls = await receiver.wait_for(2)
    body = calls[-1].json()
    assert body["payment_hash"] == inv["payment_hash"] and body["status"] == "success"
    assert body["amount"] == 7000
    r = await client.get("/api/v1/webhooks/invoice-secret", headers=bob.admin_headers)
    assert r.status_code == 200
    check_signature(calls[-1], r.json()["secret"])
    r = await client.get("/api/v1/webhooks/invoice-secret", headers=bob.invoice_headers)
    assert r.status_code == 403


async def test_redeliver_sends_again(fulmen, receiver, monkeypatch):
    await fast_webhooks(monkeypatch)
    client = await fulmen.start()
    bob = await fulmen.wallet("bob")
    endpoint = await create_endpoint(client, bob, receiver.url)
    inv = await fulmen.invoice(bob, 5)
    await fulmen.settle_from_outside(inv["payment_hash"])
    [delivery] = await wait_delivery(client, bob, endpoint["id"], "success")
    path = f"/api/v1/webhooks/{endpoint['id']}/deliveries/{delivery['id']}/redeliver"
    r = await client.post(path, headers=bob.invoice_headers)
    assert r.status_code == 403
    r = await client.post(path, headers=bob.admin_headers)
    assert r.status_code == 200 and r.json()["status"] == "pending"
    calls = await receiver.wait_for(2)
    assert calls[0].body == calls[1].body
    [again] = await wait_delivery(client, bob, endpoint["id"], "success")
    assert again["attempts"] == 2
    r = await client.post(f"/api/v1/webhooks/{endpoint['id']}/deliveries/999999/redeliver",
                          headers=bob.admin_headers)
    assert r.status_code == 404


async def test_endpoint_management_and_validation(fulmen, receiver):
    client = await fulmen.start(allow_private_addresses=False)
    bob = await fulmen.wallet("bob")
    eve = await fulmen.wallet("eve")
    bad = [
        ({}, "url is required"),
        ({"url": "ftp://example.com/x"}, "https"),
        ({"url": "http://example.com/x"}, "https"),
        ({"url": "https:///nohost"}, "no host"),
        ({"url": "https://127.0.0.1/hook"}, "internal address"),
        ({"url": "https://10.1.2.3/hook"}, "internal address"),
        ({"url": "https://example.com/" + "x" * 3000}, "longer"),
        ({"url": "https://example.com/", "events": ["payment.stolen"]}, "unknown event type"),
        ({"url": "https://example.com/", "events": []}, "non-empty"),
        ({"url": "https://example.com/", "events": "payment.sent"}, "non-empty"),
    ]
    for payload, words in bad:
        r = await client.post("/api/v1/webhooks", json=payload, headers=bob.admin_headers)
        assert r.status_code == 400, (payload, r.text)
        assert words in r.json()["detail"], (payload, r.json())
    r = await client.post("/api/v1/webhooks", json={"url": "https://93.184.215.14/hook"},
                          headers=bob.invoice_headers)
    assert r.status_code == 403
    r = await client.post("/api/v1/webhooks", json={"url": "https://93.184.215.14/hook",
                                                    "events": ["payment.sent"], "description": "shop"},
                          headers=bob.admin_headers)
    assert r.status_code == 201, r.text
    created = r.json()
    r = await client.get("/api/v1/webhooks", headers=bob.invoice_headers)
    assert r.status_code == 200
    [listed] = r.json()
    assert "secret" not in listed and listed["id"] == created["id"] and listed["events"] == ["payment.sent"]
    assert (await client.get("/api/v1/webhooks", headers=bob.read_headers)).status_code == 403
    # another wallet sees nothing and cannot touch it
    assert (await client.get("/api/v1/webhooks", headers=eve.invoice_headers)).json() == []
    r = await client.delete(f"/api/v1/webhooks/{created['id']}", headers=eve.admin_headers)
    assert r.status_code == 404
    r = await client.get(f"/api/v1/webhooks/{created['id']}/deliveries", headers=eve.invoice_headers)
    assert r.status_code == 404
    r = await client.get(f"/api/v1/webhooks/{created['id']}/deliveries?status=lost",
                         headers=bob.invoice_headers)
    assert r.status_code == 400
    r = await client.delete(f"/api/v1/webhooks/{created['id']}", headers=bob.invoice_headers)
    assert r.status_code == 403
    r = await client.delete(f"/api/v1/webhooks/{created['id']}", headers=bob.admin_headers)
    assert r.status_code == 200
    assert (await client.get("/api/v1/webhooks", headers=bob.invoice_headers)).json() == []
    r = await client.delete(f"/api/v1/webhooks/{created['id']}", headers=bob.admin_headers)
    assert r.status_code == 404


async def test_several_workers_send_each_delivery_once(fulmen_db, receiver, monkeypatch):
    """Many claimants at once (as with several processes): one POST per delivery."""
    await fast_webhooks(monkeypatch)
    client = await fulmen_db.start()
    bob = await fulmen_db.wallet("bob")
    endpoint = await create_endpoint(client, bob, receiver.url)
    service = fulmen_db.host.webhooks
    invoices = [await fulmen_db.invoice(bob, i + 1) for i in range(10)]
    for inv in invoices:
        await fulmen_db.host.payments.settle_incoming(inv["payment_hash"])
    await asyncio.gather(*(service.deliver_due() for _ in range(6)))
    await wait_delivery(client, bob, endpoint["id"], "success")
    await asyncio.sleep(0.3)
    ids = [json.loads(c.body)["id"] for c in receiver.calls]
    assert len(ids) == 10 and len(set(ids)) == 10
