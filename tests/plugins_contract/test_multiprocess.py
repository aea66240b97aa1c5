"""Several real host processes on one PostgreSQL, with the probe plugin
(fixtures/probe) recording every hook call in its own table."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from fulmen.testing import ADMIN_KEY, ServerProcess

from .conftest import probe_env

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def servers(tmp_path, probe_site, postgres_url):
    """`servers(n, **env)` starts n hosts on the shared database, in order."""
    started: list[ServerProcess] = []

    def start(n: int = 1, **extra: str) -> list[ServerProcess]:
        env = {"DATABASE_URL": postgres_url, "FULMEN_ADMIN_KEY": ADMIN_KEY,
               "FULMEN_DATA_DIR": str(tmp_path / "data"), **probe_env(probe_site, **extra)}
        new = []
        for _ in range(n):
            s = ServerProcess(env, log_path=tmp_path / f"server{len(started)}.log").start()
            started.append(s)
            new.append(s)
        return new

    yield start
    for s in started:
        if s.proc and s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


async def account(c: httpx.AsyncClient, url: str, name: str, sats: int = 0) -> dict:
    w = (await c.post(url + "/api/v1/account", json={"name": name})).json()
    if sats:
        r = await c.put(url + "/users/api/v1/balance", json={"id": w["id"], "amount": sats}, headers=ADMIN)
        assert r.status_code == 200, r.text
    return w


async def pay_new_invoice(c, payer_url, payee_url, payer, payee, sats=1) -> httpx.Response:
    inv = (await c.post(payee_url + "/api/v1/payments", headers={"X-Api-Key": payee["inkey"]},
                        json={"out": False, "amount": sats})).json()
    return await c.post(payer_url + "/api/v1/payments", headers={"X-Api-Key": payer["adminkey"]},
                        json={"out": True, "bolt11": inv["bolt11"]})


async def wait_all_delivered(c, url, expected: int, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = (await c.get(url + "/admin/api/v1/hook-deliveries?limit=1000", headers=ADMIN)).json()
        if len(rows) >= expected and all(r["status"] == "done" for r in rows):
            return rows
        assert time.monotonic() < deadline, f"not delivered in {timeout}s: {rows}"
        await asyncio.sleep(0.2)


async def test_payment_hooks_run_once_per_payment_across_two_processes(servers):
    a, b = servers(2)
    async with httpx.AsyncClient(timeout=30) as c:
        alice = await account(c, a.url, "alice", sats=1000)
        bob = await account(c, b.url, "bob")
        results = await asyncio.gather(*(
            pay_new_invoice(c, (a, b)[i % 2].url, (b, a)[i % 2].url, alice, bob) for i in range(30)
        ))
        assert all(r.status_code == 201 for r in results), [r.text for r in results]
        rows = await wait_all_delivered(c, a.url, expected=60)
        assert len(rows) == 60  # one on_invoice_paid and one on_payment_sent per payment
        calls = (await c.get(b.url + "/contract_probe/calls")).json()
    paid = [x["payment_id"] for x in calls if x["hook"] == "on_invoice_paid"]
    sent = [x["payment_id"] for x in calls if x["hook"] == "on_payment_sent"]
    assert len(paid) == len(set(paid)) == 30
    assert len(sent) == len(set(sent)) == 30
    assert {x["pid"] for x in calls if x["hook"].startswith("on_")} <= {a.proc.pid, b.proc.pid}


async def test_crash_between_commit_and_delivery_is_delivered_once_by_another_process(
        servers, tmp_path):
    marker = tmp_path / "killed"
    [b] = servers(1)
    [a] = servers(1, CONTRACT_PROBE_KILL_ON_PAID=str(marker))
    async with httpx.AsyncClient(timeout=30) as c:
        alice = await account(c, b.url, "alice", sats=100)
        bob = await account(c, b.url, "bob")
        paid_hashes = []
        for _ in range(10):  # b may deliver first; soon a delivers and dies
            inv = (await c.post(b.url + "/api/v1/payments", headers={"X-Api-Key": bob["inkey"]},
                                json={"out": False, "amount": 1})).json()
            paid_hashes.append(inv["payment_hash"])
            try:
                await c.post(a.url + "/api/v1/payments", headers={"X-Api-Key": alice["adminkey"]},
                             json={"out": True, "bolt11": inv["bolt11"]})
            except httpx.HTTPError:
                pass  # a died while answering: the payment had committed before
            await asyncio.sleep(0.3)
            if marker.exists():
                break
        assert marker.exists(), "the probe never crashed host a"
        a.proc.wait(10)
        assert a.proc.returncode == -9
        crashed_payment = int(marker.read_text())
        # the payment committed: bob was credited for every invoice
        w = (await c.get(b.url + "/api/v1/wallet", headers={"X-Api-Key": bob["inkey"]})).json()
        assert w["balance"] == 1000 * len(paid_hashes)
        started = time.monotonic()
        rows = await wait_all_delivered(c, b.url, expected=2 * len(paid_hashes), timeout=40)
        took = time.monotonic() - started
        calls = (await c.get(b.url + "/contract_probe/calls")).json()
        [row] = [r for r in rows if r["payment_id"] == crashed_payment]
        assert row["attempts"] == 2  # a's claim, then b's delivery after a's lease ran out
        # restarting a (without the crash switch) delivers nothing again
        a2 = ServerProcess({k: v for k, v in a.env.items() if k != "CONTRACT_PROBE_KILL_ON_PAID"},
                           log_path=tmp_path / "server-a2.log").start()
        try:
            await asyncio.sleep(2.5)
            calls_after = (await c.get(a2.url + "/contract_probe/calls")).json()
        finally:
            a2.stop()
    paid = [x for x in calls if x["hook"] == "on_invoice_paid"]
    assert sorted(x["payment_id"] for x in paid) == sorted({x["payment_id"] for x in paid})
    assert len(paid) == len(paid_hashes)
    [crashed_call] = [x for x in paid if x["payment_id"] == crashed_payment]
    assert crashed_call["pid"] == b.proc.pid
    assert [x for x in calls_after if x["hook"].startswith("on_")] == \
        [x for x in calls if x["hook"].startswith("on_")]
    print(f"redelivered by the surviving process {took:.1f}s after the crash was seen")


async def test_enable_disable_reaches_every_process_within_two_seconds(servers):
    a, b = servers(2)
    async with httpx.AsyncClient(timeout=30) as c:
        alice = await account(c, a.url, "alice", sats=100)
        bob = await account(c, a.url, "bob")
        assert (await c.get(b.url + "/contract_probe/pid")).status_code == 200
        calls_before = (await c.get(b.url + "/contract_probe/calls")).json()

        r = await c.put(a.url + "/admin/api/v1/plugins/contract_probe", json={"enabled": False},
                        headers=ADMIN)
        assert r.status_code == 200 and r.json()["state"] == "disabled"
        assert (await c.get(a.url + "/contract_probe/pid")).status_code == 404  # at once here
        t0 = time.monotonic()
        while (await c.get(b.url + "/contract_probe/pid")).status_code != 404:
            assert time.monotonic() - t0 < 2.0, "b still serves the disabled plugin after 2 s"
            await asyncio.sleep(0.05)
        disable_seen = time.monotonic() - t0
        listed = (await c.get(b.url + "/admin/api/v1/plugins", headers=ADMIN)).json()
        assert [p["state"] for p in listed] == ["disabled"]

        # while disabled, payments through either process call no hook
        for url in (a.url, b.url):
            assert (await pay_new_invoice(c, url, url, alice, bob)).status_code == 201
        await asyncio.sleep(1.5)
        assert (await c.get(a.url + "/admin/api/v1/hook-deliveries", headers=ADMIN)).json() == []

        r = await c.put(b.url + "/admin/api/v1/plugins/contract_probe", json={"enabled": True},
                        headers=ADMIN)
        assert r.json()["state"] == "enabled"
        t0 = time.monotonic()
        while (await c.get(a.url + "/contract_probe/pid")).status_code != 200:
            assert time.monotonic() - t0 < 2.0, "a still hides the re-enabled plugin after 2 s"
            await asyncio.sleep(0.05)
        enable_seen = time.monotonic() - t0
        calls = (await c.get(a.url + "/contract_probe/calls")).json()
        # data intact; shutdown ran in both processes on disable, startup again on enable
        assert calls[:len(calls_before)] == calls_before
        later = [x["hook"] for x in calls[len(calls_before):]]
        assert sorted(later) == ["shutdown", "shutdown", "startup", "startup"]
        assert not any(x["hook"].startswith("on_") for x in calls)
        assert (await pay_new_invoice(c, b.url, b.url, alice, bob)).status_code == 201
        await wait_all_delivered(c, a.url, expected=2)
    print(f"disable seen by the other process after {disable_seen:.2f}s, enable after {enable_seen:.2f}s")
