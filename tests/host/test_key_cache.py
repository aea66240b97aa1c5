"""The in-memory API key cache (fulmen/keycache.py): fewer lookups, and a
rotated key or deleted wallet refused at once here and, through Redis, in
another process on the same database."""

from __future__ import annotations

import asyncio

from fulmen.testing import Fulmen


async def count_key_lookups(monkeypatch) -> list[str]:
    from fulmen import wallets

    seen: list[str] = []
    real_query = wallets.query

    async def query(sql, *args):
        if "FROM fulmen_api_key" in sql and sql.lstrip().startswith("SELECT"):
            seen.append(sql)
        return await real_query(sql, *args)

    monkeypatch.setattr(wallets, "query", query)
    return seen


async def test_repeated_requests_look_the_key_up_once(fulmen, monkeypatch):
    await fulmen.start()
    w = await fulmen.wallet("w")
    lookups = await count_key_lookups(monkeypatch)
    for _ in range(5):
        assert (await fulmen.client.get("/api/v1/wallet", headers=w.read_headers)).status_code == 200
    assert len(lookups) == 1


async def test_no_cache_when_disabled(fulmen, monkeypatch):
    await fulmen.start(key_cache_seconds=0)
    w = await fulmen.wallet("w")
    lookups = await count_key_lookups(monkeypatch)
    for _ in range(3):
        assert (await fulmen.client.get("/api/v1/wallet", headers=w.read_headers)).status_code == 200
    assert len(lookups) == 3


async def test_rotated_keys_are_refused_at_once(fulmen):
    await fulmen.start()
    w = await fulmen.wallet("w", sats=10)
    assert (await fulmen.client.get("/api/v1/wallet", headers=w.admin_headers)).status_code == 200
    r = await fulmen.client.post("/api/v1/wallet/rotate-keys", headers=w.admin_headers)
    assert r.status_code == 200, r.text
    for headers in (w.admin_headers, w.invoice_headers, w.read_headers):
        assert (await fulmen.client.get("/api/v1/wallet", headers=headers)).status_code == 401
    new = await fulmen.client.get("/api/v1/wallet", headers={"X-Api-Key": r.json()["adminkey"]})
    assert new.status_code == 200


async def test_another_process_hears_of_a_deleted_wallet_through_redis(tmp_path, postgres_url, redis_url):
    one, two = Fulmen(tmp_path / "one", postgres_url), Fulmen(tmp_path / "two", postgres_url)
    try:
        await one.start(redis_url=redis_url, key_cache_seconds=60)
        await two.start(redis_url=redis_url, key_cache_seconds=60)
        w = await one.wallet("w")
        assert (await two.client.get("/api/v1/wallet", headers=w.read_headers)).status_code == 200
        r = await one.client.delete(f"/api/v1/wallet/{w.id}",
                                    headers={"Authorization": f"Bearer {w.account_token}"})
        assert r.status_code in (200, 204), r.text
        for _ in range(100):  # well inside the 60 s the entry would otherwise live
            if (await two.client.get("/api/v1/wallet", headers=w.read_headers)).status_code == 401:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the other process still honours the deleted wallet's key")
    finally:
        await two.stop()
        await one.stop()
