"""The API key cache on PostgreSQL (fulmen/keycache.py): fewer lookups, and
a rotated key or deleted wallet refused at once in this process and in
another one on the same database (NOTIFY), with no Redis involved."""

from __future__ import annotations

import asyncio

from fulmen.testing import Fulmen


def count_key_lookups(monkeypatch) -> list[str]:
    from fulmen import wallets

    seen: list[str] = []
    real_query = wallets.query

    async def query(sql, *args):
        if "FROM fulmen_api_key" in sql and sql.lstrip().startswith("SELECT"):
            seen.append(sql)
        return await real_query(sql, *args)

    monkeypatch.setattr(wallets, "query", query)
    return seen


async def refused_soon(host: Fulmen, headers: dict[str, str], why: str) -> None:
    """Within 2 s (far inside the cache's lifetime in these tests)."""
    for _ in range(100):
        if (await host.client.get("/api/v1/wallet", headers=headers)).status_code == 401:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(why)


async def test_repeated_requests_look_the_key_up_once(pg_fulmen, monkeypatch):
    await pg_fulmen.start()
    w = await pg_fulmen.wallet("w")
    lookups = count_key_lookups(monkeypatch)
    for _ in range(5):
        assert (await pg_fulmen.client.get("/api/v1/wallet", headers=w.read_headers)).status_code == 200
    assert len(lookups) == 1


async def test_no_cache_when_disabled_or_on_sqlite(pg_fulmen, fulmen, monkeypatch):
    await pg_fulmen.start(key_cache_seconds=0)
    await fulmen.start()
    for host in (pg_fulmen, fulmen):
        w = await host.wallet("w")
        lookups = count_key_lookups(monkeypatch)
        for _ in range(3):
            assert (await host.client.get("/api/v1/wallet", headers=w.read_headers)).status_code == 200
        assert len(lookups) == 3


async def test_rotated_keys_are_refused_at_once(pg_fulmen):
    await pg_fulmen.start()
    w = await pg_fulmen.wallet("w", sats=10)
    assert (await pg_fulmen.client.get("/api/v1/wallet", headers=w.admin_headers)).status_code == 200
    r = await pg_fulmen.client.post("/api/v1/wallet/rotate-keys", headers=w.admin_headers)
    assert r.status_code == 200, r.text
    for headers in (w.admin_headers, w.invoice_headers, w.read_headers):
        assert (await pg_fulmen.client.get("/api/v1/wallet", headers=headers)).status_code == 401
    new = await pg_fulmen.client.get("/api/v1/wallet", headers={"X-Api-Key": r.json()["adminkey"]})
    assert new.status_code == 200


async def test_another_process_forgets_a_rotated_key_at_once(tmp_path, postgres_url):
    one, two = Fulmen(tmp_path / "one", postgres_url), Fulmen(tmp_path / "two", postgres_url)
    try:
        await one.start(key_cache_seconds=300)
        await two.start(key_cache_seconds=300)
        w = await one.wallet("w")
        # `two` caches the keys ...
        assert (await two.client.get("/api/v1/wallet", headers=w.admin_headers)).status_code == 200
        assert two.host.key_cache.get(next(iter(two.host.key_cache._entries))) is not None
        # ... `one` rotates them, and `two` hears of it (well inside the 300 s).
        r = await one.client.post("/api/v1/wallet/rotate-keys", headers=w.admin_headers)
        assert r.status_code == 200, r.text
        await refused_soon(two, w.admin_headers, "the other process still honours the rotated key")
        # The same for a deleted wallet.
        w2 = await one.wallet("w2")
        assert (await two.client.get("/api/v1/wallet", headers=w2.read_headers)).status_code == 200
        r = await one.client.delete(f"/api/v1/wallet/{w2.id}",
                                    headers={"Authorization": f"Bearer {w2.account_token}"})
        assert r.status_code in (200, 204), r.text
        await refused_soon(two, w2.read_headers, "the other process still honours the deleted wallet's key")
    finally:
        await two.stop()
        await one.stop()


async def test_nothing_is_cached_while_not_listening(pg_fulmen, monkeypatch):
    await pg_fulmen.start()
    cache = pg_fulmen.host.key_cache
    w = await pg_fulmen.wallet("w")
    await cache.stop()  # the LISTEN connection is gone: invalidations could be missed
    lookups = count_key_lookups(monkeypatch)
    for _ in range(3):
        assert (await pg_fulmen.client.get("/api/v1/wallet", headers=w.read_headers)).status_code == 200
    assert len(lookups) == 3
