"""Two real host processes sharing one PostgreSQL: no double spend."""

import asyncio

import httpx
import pytest
from fulmen.testing import ADMIN_KEY, ServerProcess


@pytest.fixture
async def two_hosts(tmp_path, postgres_url):
    url = postgres_url
    env = {"DATABASE_URL": url, "FULMEN_ADMIN_KEY": ADMIN_KEY, "FULMEN_DATA_DIR": str(tmp_path / "data"),
           "FULMEN_PLUGINS": "none"}
    servers = [ServerProcess(env, log_path=tmp_path / f"server{i}.log") for i in range(2)]
    try:
        # start one after the other: both run migrations, serialised by the advisory lock
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
        yield servers, url
    finally:
        for s in servers:
            s.stop()


async def test_concurrent_spends_across_two_processes_never_overdraw(two_hosts):
    servers, url = two_hosts
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(timeout=30) as c:
        a = (await c.post(servers[0].url + "/api/v1/account", json={"name": "alice"})).json()
        b = (await c.post(servers[1].url + "/api/v1/account", json={"name": "bob"})).json()
        await c.put(servers[0].url + "/users/api/v1/balance", json={"id": a["id"], "amount": 100}, headers=admin)
        invoices = []
        for i in range(60):
            r = await c.post(servers[i % 2].url + "/api/v1/payments", headers={"X-Api-Key": b["inkey"]},
                             json={"out": False, "amount": 3})
            invoices.append(r.json()["bolt11"])
        results = await asyncio.gather(*(
            c.post(servers[i % 2].url + "/api/v1/payments", headers={"X-Api-Key": a["adminkey"]},
                   json={"out": True, "bolt11": bolt11})
            for i, bolt11 in enumerate(invoices)
        ))
        codes = [r.status_code for r in results]
        assert codes.count(201) == 100 // 3, codes
        assert all(code == 400 for code in codes if code != 201)
        balance = (await c.get(servers[1].url + "/api/v1/wallet", headers={"X-Api-Key": a["inkey"]})).json()
        assert balance["balance"] == 100_000 - 33 * 3000
        audit = (await c.get(servers[0].url + "/admin/api/v1/audit", headers=admin)).json()
        assert audit["ok"] is True and audit["mismatches"] == [] and audit["wallets"] == 2


async def test_sigterm_drains_and_exits_quickly(two_hosts):
    import time

    servers, _ = two_hosts
    start = time.monotonic()
    code = servers[0].stop()
    assert time.monotonic() - start < 10
    # uvicorn re-raises SIGTERM after a clean shutdown, so -15 is a graceful exit
    assert code in (0, -15)
    log = servers[0].log_path.read_text()
    assert "Application shutdown complete" in log
