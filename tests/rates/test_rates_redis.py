"""Two real host processes share one rate through Redis: the provider is asked once."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from fulmen.testing import ADMIN_KEY, ServerProcess
from rate_fakes import FakeProviders


@pytest.fixture
def fakes() -> Any:
    with FakeProviders() as f:
        yield f


async def test_two_processes_share_the_cached_rate(
    tmp_path: Path, redis_url: str, fakes: FakeProviders
) -> None:
    fakes.price("/shared", 70000)
    prefix = f"fulmen-test:{secrets.token_hex(6)}:rate:"
    base = {
        "REDIS_URL": redis_url, "FULMEN_ADMIN_KEY": ADMIN_KEY, "FULMEN_PLUGINS": "none",
        "FULMEN_ALLOW_PRIVATE_ADDRESSES": "true", "FULMEN_RATES_PROVIDERS": "",
        "FULMEN_RATES_CUSTOM_PROVIDERS": json.dumps([fakes.provider("shared", "/shared")]),
        "FULMEN_RATES_TTL": "30", "FULMEN_RATES_REDIS_PREFIX": prefix,
    }
    servers = [
        ServerProcess({**base, "FULMEN_DATA_DIR": str(tmp_path / f"data{i}"),
                       "DATABASE_URL": f"sqlite:///{tmp_path / f'db{i}.sqlite3'}"},
                      log_path=tmp_path / f"server{i}.log")
        for i in range(2)
    ]
    try:
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
        async with httpx.AsyncClient(timeout=30) as c:
            first = await c.get(servers[0].url + "/api/v1/rate/USD")
            assert first.status_code == 200, first.text
            assert first.json()["price"] == 70000.0
            assert fakes.hits["/shared"] == 1
            fakes.price("/shared", 71000)  # a new price: the other process must not fetch it
            second = await c.get(servers[1].url + "/api/v1/rate/USD")
            assert second.status_code == 200, second.text
            assert second.json()["price"] == 70000.0
            assert fakes.hits["/shared"] == 1
            # Both processes convert with the same rate.
            conv = [(await c.post(s.url + "/api/v1/conversion",
                                  json={"from": "USD", "amount": 7, "to": "sat"})).json()
                    for s in servers]
            assert conv[0] == conv[1] == {"USD": 7.0, "sats": 10000, "msat": 10_000_000,
                                          "BTC": 0.0001}
            assert fakes.hits["/shared"] == 1
            # A cold cache asked in both processes at once: one of them fetches,
            # the other waits for what it stores (a short Redis lease).
            fakes.price("/shared", 72000, delay=0.5)
            answers = await asyncio.gather(*(c.get(servers[i % 2].url + "/api/v1/rate/EUR")
                                             for i in range(8)))
            assert {r.json()["price"] for r in answers} == {72000.0}, [r.text for r in answers]
            assert fakes.hits["/shared"] == 2
    finally:
        for s in servers:
            s.stop()
        import redis.asyncio as aioredis

        client = aioredis.from_url(redis_url)
        await client.delete(prefix + "USD", prefix + "EUR")
        await client.aclose()
