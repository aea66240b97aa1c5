"""Two host processes on one PostgreSQL database, joined by Redis."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from pathlib import Path

import httpx
import pytest
import websockets
from event_helpers import SSE, http_wallet, ws_url
from fulmen.testing import ADMIN_KEY, ServerProcess
from fulmen.webhooks import verify_signature


class Cluster:
    def __init__(self, tmp_path: Path, database_url: str, redis_url: str, **env: str) -> None:
        self.tmp_path = tmp_path
        self.env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "FULMEN_ADMIN_KEY": ADMIN_KEY,
            "FULMEN_ALLOW_PRIVATE_ADDRESSES": "true",
            "FULMEN_FAKE_NODE_KEY": secrets.token_hex(32),
            "FULMEN_EVENT_REDIS_CHANNEL": f"fulmen-test-{uuid.uuid4().hex}",
            "FULMEN_RECONCILE_INTERVAL": "3600",
            "FULMEN_PLUGINS": "no-plugins-in-these-tests",
            **env,
        }
        self.procs: list[ServerProcess] = []

    async def start(self, index: int) -> ServerProcess:
        env = {**self.env, "FULMEN_DATA_DIR": str(self.tmp_path / f"data{index}")}
        proc = ServerProcess(env, log_path=self.tmp_path / f"server{index}.log")
        try:
            await asyncio.to_thread(proc.start, 120)
        except RuntimeError as exc:
            log = proc.log_path.read_text()[-3000:] if proc.log_path and proc.log_path.exists() else ""
            raise RuntimeError(f"{exc}\n{log}") from None
        self.procs.append(proc)
        return proc

    async def start_many(self, *indexes: int) -> list[ServerProcess]:
        return list(await asyncio.gather(*(self.start(i) for i in indexes)))

    async def stop(self, proc: ServerProcess, kill: bool = False) -> None:
        if kill and proc.proc is not None:
            proc.proc.kill()
            await asyncio.to_thread(proc.proc.wait)
        else:
            await asyncio.to_thread(proc.stop)
        self.procs.remove(proc)

    async def close(self) -> None:
        for proc in list(self.procs):
            await self.stop(proc)


@pytest.fixture
async def cluster_factory(tmp_path, postgres_url, redis_url):
    clusters: list[Cluster] = []

    def make(**env: str) -> Cluster:
        cluster = Cluster(tmp_path, postgres_url, redis_url, **env)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        await cluster.close()


async def invoice(client: httpx.AsyncClient, wallet: dict, sats: int, **extra) -> dict:
    r = await client.post("/api/v1/payments", json={"out": False, "amount": sats, **extra},
                          headers={"X-Api-Key": wallet["inkey"]})
    assert r.status_code == 201, r.text
    return r.json()


async def pay(client: httpx.AsyncClient, wallet: dict, bolt11: str) -> None:
    r = await client.post("/api/v1/payments", json={"out": True, "bolt11": bolt11},
                          headers={"X-Api-Key": wallet["adminkey"]})
    assert r.status_code == 201, r.text


async def test_payment_on_one_process_reaches_a_subscriber_on_the_other(cluster_factory):
    # A long log poll: only the Redis fan-out can bring the event in time.
    cluster = cluster_factory(FULMEN_EVENT_POLL_SECONDS="60")
    a, b = await cluster.start_many(1, 2)
    async with httpx.AsyncClient(base_url=a.url, timeout=10) as ca, \
            httpx.AsyncClient(base_url=b.url, timeout=10) as cb:
        alice = await http_wallet(ca, ADMIN_KEY, "alice", sats=100)
        bob = await http_wallet(ca, ADMIN_KEY, "bob")
        inv = await invoice(ca, bob, 25)
        async with websockets.connect(ws_url(a.url, bob["inkey"])) as wallet_ws, \
                websockets.connect(ws_url(a.url, inv["payment_hash"])) as hash_ws:
            await pay(cb, alice, inv["bolt11"])
            got = json.loads(await asyncio.wait_for(wallet_ws.recv(), 3))
            assert got["wallet_balance"] == 25 and got["payment"]["payment_hash"] == inv["payment_hash"]
            status = json.loads(await asyncio.wait_for(hash_ws.recv(), 3))
            assert status == {"pending": False, "status": "success"}


async def test_without_redis_the_event_log_still_carries_events_between_processes(cluster_factory):
    cluster = cluster_factory(REDIS_URL="", FULMEN_EVENT_POLL_SECONDS="0.5")
    a, b = await cluster.start_many(1, 2)
    async with httpx.AsyncClient(base_url=a.url, timeout=10) as ca, \
            httpx.AsyncClient(base_url=b.url, timeout=10) as cb:
        alice = await http_wallet(ca, ADMIN_KEY, "alice", sats=100)
        bob = await http_wallet(ca, ADMIN_KEY, "bob")
        invoices = [await invoice(ca, bob, sats) for sats in (1, 2, 3)]
        async with websockets.connect(ws_url(a.url, bob["inkey"])) as ws:
            for inv in invoices:
                await pay(cb, alice, inv["bolt11"])
            got = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in invoices]
    assert [m["wallet_balance"] for m in got] == [1, 3, 6]
    assert [m["payment"]["payment_hash"] for m in got] == [i["payment_hash"] for i in invoices]


async def test_many_events_for_one_wallet_arrive_in_order_on_both_processes(cluster_factory):
    cluster = cluster_factory(FULMEN_EVENT_POLL_SECONDS="60")
    a, b = await cluster.start_many(1, 2)
    n = 40
    async with httpx.AsyncClient(base_url=a.url, timeout=20) as ca, \
            httpx.AsyncClient(base_url=b.url, timeout=20) as cb:
        payers = [await http_wallet(ca, ADMIN_KEY, f"p{i}", sats=1000) for i in range(4)]
        bob = await http_wallet(ca, ADMIN_KEY, "bob")
        invoices = [await invoice(ca, bob, i + 1) for i in range(n)]
        async with websockets.connect(ws_url(a.url, bob["readkey"])) as ws, \
                cb.stream("GET", "/api/v1/events", headers={"X-Api-Key": bob["readkey"]}) as stream:
            sse = SSE(stream)
            clients = [ca, cb]
            await asyncio.gather(*(pay(clients[i % 2], payers[i % 4], inv["bolt11"])
                                   for i, inv in enumerate(invoices)))
            ws_got = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(n)]
            sse_got = [await sse.next(10) for _ in range(n)]
    assert [e["id"] for e in sse_got] == [str(i) for i in range(1, n + 1)]
    for messages in (ws_got, [json.loads(e["data"]) for e in sse_got]):
        balance = 0
        for m in messages:
            balance += m["payment"]["amount"] // 1000
            assert m["wallet_balance"] == balance
        assert balance == n * (n + 1) // 2
    assert ws_got == [json.loads(e["data"]) for e in sse_got]


async def test_sse_resume_across_processes(cluster_factory):
    cluster = cluster_factory()
    a, b = await cluster.start_many(1, 2)
    async with httpx.AsyncClient(base_url=a.url, timeout=10) as ca, \
            httpx.AsyncClient(base_url=b.url, timeout=10) as cb:
        alice = await http_wallet(ca, ADMIN_KEY, "alice", sats=100)
        bob = await http_wallet(ca, ADMIN_KEY, "bob")
        for sats in (1, 2):
            await pay(cb, alice, (await invoice(ca, bob, sats))["bolt11"])
        async with ca.stream("GET", "/api/v1/events", headers={"X-Api-Key": bob["inkey"],
                                                               "Last-Event-ID": "0"}) as s:
            first = [await SSE(s).next() for _ in range(1)]
        for sats in (3, 4):
            await pay(ca, alice, (await invoice(cb, bob, sats))["bolt11"])
        async with cb.stream("GET", "/api/v1/events", headers={"X-Api-Key": bob["inkey"],
                                                               "Last-Event-ID": first[-1]["id"]}) as s:
            sse = SSE(s)
            rest = [await sse.next() for _ in range(3)]
    got = first + rest
    assert [e["id"] for e in got] == ["1", "2", "3", "4"]
    assert [json.loads(e["data"])["wallet_balance"] for e in got] == [1, 3, 6, 10]


async def test_webhook_retries_survive_a_restart_and_are_sent_once(cluster_factory, receiver):
    cluster = cluster_factory(FULMEN_WEBHOOK_BACKOFF_BASE_SECONDS="1.5", FULMEN_WEBHOOK_POLL_SECONDS="0.2")
    a, b = await cluster.start_many(1, 2)
    async with httpx.AsyncClient(base_url=a.url, timeout=10) as ca:
        bob = await http_wallet(ca, ADMIN_KEY, "bob")
        alice = await http_wallet(ca, ADMIN_KEY, "alice", sats=100)
        r = await ca.post("/api/v1/webhooks", json={"url": receiver.url, "events": ["payment.received"]},
                          headers={"X-Api-Key": bob["adminkey"]})
        assert r.status_code == 201, r.text
        endpoint = r.json()
        receiver.statuses = [500, 500]
        inv = await invoice(ca, bob, 9)
        await pay(ca, alice, inv["bolt11"])
        await receiver.wait_for(1)
        log_path = f"/api/v1/webhooks/{endpoint['id']}/deliveries"
        for _ in range(100):  # the failure is recorded...
            [d] = (await ca.get(log_path, headers={"X-Api-Key": bob["inkey"]})).json()
            if d["attempts"] == 1 and d["last_error"]:
                break
            await asyncio.sleep(0.02)
        assert d["status"] == "pending" and d["last_status_code"] == 500
    # ...then every process dies before the retry is due
    await cluster.stop(a, kill=True)
    await cluster.stop(b, kill=True)
    await asyncio.sleep(2)
    assert len(receiver.calls) == 1
    a = await cluster.start(3)
    async with httpx.AsyncClient(base_url=a.url, timeout=10) as ca:
        calls = await receiver.wait_for(3, timeout=20)
        for _ in range(100):
            [d] = (await ca.get(log_path, headers={"X-Api-Key": bob["inkey"]})).json()
            if d["status"] != "pending":
                break
            await asyncio.sleep(0.05)
        assert d["status"] == "success" and d["attempts"] == 3 and d["last_status_code"] == 200
        for call in calls:
            assert verify_signature(endpoint["secret"], call.headers["fulmen-signature"], call.body)
        assert len({c.body for c in calls}) == 1

        # With two processes running, each delivery is still sent once.
        b = await cluster.start(4)
        async with httpx.AsyncClient(base_url=b.url, timeout=10) as cb:
            receiver.calls.clear()
            for i in range(12):
                await pay([ca, cb][i % 2], alice, (await invoice(ca, bob, 1))["bolt11"])
            await receiver.wait_for(12)
            for _ in range(100):
                rows = (await ca.get(log_path, headers={"X-Api-Key": bob["inkey"]})).json()
                if all(r["status"] == "success" for r in rows):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
    ids = [json.loads(c.body)["id"] for c in receiver.calls]
    assert len(ids) == 12 and len(set(ids)) == 12
    assert len(rows) == 13 and all(r["status"] == "success" and r["attempts"] == 1 for r in rows[:12])
