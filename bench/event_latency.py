"""Event latency: from the start of a pay request to the event at a WebSocket subscriber.

    uv run python bench/event_latency.py [--n 200]

Standalone, it starts two `fulmen serve` processes on loopback sharing a fresh
PostgreSQL database and Redis (or one SQLite process when those are not
reachable), then pays `n` invoices one at a time:

- same process:  subscriber and payment on process A;
- cross process: subscriber on A, payment through B (Redis carries the event).

It prints the median and p99 for each. `measure_event_latency(base_urls,
admin_key, n)` does the measuring against servers that are already running
(bench/run.py calls it); it makes its own wallets through the API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import websockets


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))
    return ordered[index]


def summary(latencies_ms: list[float], responses_ms: list[float]) -> dict[str, Any]:
    """Event latency figures, with the pay request's own response time beside them."""
    return {
        "payments": len(latencies_ms),
        "median_ms": round(statistics.median(latencies_ms), 2) if latencies_ms else None,
        "p99_ms": round(percentile(latencies_ms, 0.99), 2) if latencies_ms else None,
        "max_ms": round(max(latencies_ms), 2) if latencies_ms else None,
        "pay_response_median_ms": round(statistics.median(responses_ms), 2) if responses_ms else None,
    }


async def _wallet(client: httpx.AsyncClient, admin_key: str, name: str, sats: int = 0) -> dict:
    r = await client.post("/api/v1/account", json={"name": name})
    r.raise_for_status()
    wallet = r.json()
    if sats:
        r = await client.put("/users/api/v1/balance", json={"id": wallet["id"], "amount": sats},
                             headers={"Authorization": f"Bearer {admin_key}"})
        r.raise_for_status()
    return wallet


async def _run(payer_url: str, subscriber_url: str, admin_key: str, n: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=subscriber_url, timeout=30) as sub_http, \
            httpx.AsyncClient(base_url=payer_url, timeout=30) as pay_http:
        payer = await _wallet(sub_http, admin_key, "bench-payer", sats=n + 10)
        payee = await _wallet(sub_http, admin_key, "bench-payee")
        ws_url = subscriber_url.replace("http://", "ws://", 1) + f"/api/v1/ws/{payee['inkey']}"
        latencies: list[float] = []
        responses: list[float] = []
        async with websockets.connect(ws_url, max_queue=None) as ws:
            for _ in range(n):
                r = await sub_http.post("/api/v1/payments", json={"out": False, "amount": 1},
                                        headers={"X-Api-Key": payee["inkey"]})
                r.raise_for_status()
                invoice = r.json()
                started = time.perf_counter()
                r = await pay_http.post("/api/v1/payments", json={"out": True, "bolt11": invoice["bolt11"]},
                                        headers={"X-Api-Key": payer["adminkey"]})
                r.raise_for_status()
                responses.append((time.perf_counter() - started) * 1000)
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    if message["payment"]["payment_hash"] == invoice["payment_hash"]:
                        break
                latencies.append((time.perf_counter() - started) * 1000)
        return summary(latencies, responses)


async def _measure(base_urls: list[str], admin_key: str, n: int) -> dict[str, Any]:
    result: dict[str, Any] = {"n": n, "processes": len(base_urls)}
    result["same_process"] = await _run(base_urls[0], base_urls[0], admin_key, n)
    if len(base_urls) > 1:
        result["cross_process"] = await _run(base_urls[1], base_urls[0], admin_key, n)
    return result


def measure_event_latency(base_urls: list[str], admin_key: str, n: int) -> dict:
    """Pay `n` one-sat invoices one after another and time each from the pay
    request's start to its event at a WebSocket subscriber on base_urls[0].
    Same process: paid through base_urls[0]; cross process (with a second
    URL): paid through base_urls[1]."""
    if not base_urls:
        raise ValueError("base_urls is empty")
    return asyncio.run(_measure(base_urls, admin_key, n))


# --- standalone -----------------------------------------------------------------------


def _reachable(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="payments per measurement (default 200)")
    args = ap.parse_args()

    from fulmen.testing import (
        POSTGRES_URL,
        REDIS_URL,
        ServerProcess,
        create_postgres_database,
        drop_postgres_database,
    )

    admin_key = secrets.token_hex(16)
    work = Path(tempfile.mkdtemp(prefix="fulmen-bench-events-"))
    env = {
        "FULMEN_ADMIN_KEY": admin_key,
        "FULMEN_FAKE_NODE_KEY": secrets.token_hex(32),
        "FULMEN_LOG_LEVEL": "WARNING",
        "FULMEN_EVENT_REDIS_CHANNEL": f"fulmen-bench-{uuid.uuid4().hex}",
    }
    database_url = None
    with_services = _reachable("127.0.0.1", 5432) and _reachable("127.0.0.1", 6379)
    if with_services:
        database_url = asyncio.run(create_postgres_database())
        env.update({"DATABASE_URL": database_url, "REDIS_URL": REDIS_URL})
        count = 2
    else:
        print(f"PostgreSQL ({POSTGRES_URL}) or Redis not reachable: one SQLite process only")
        env["DATABASE_URL"] = f"sqlite:///{work / 'fulmen.sqlite3'}"
        count = 1
    servers = []
    try:
        for i in range(count):
            server = ServerProcess({**env, "FULMEN_DATA_DIR": str(work / f"data{i}")},
                                   log_path=work / f"server{i}.log")
            servers.append(server)
        # The first start runs the migrations; then the rest.
        servers[0].start(timeout=120)
        for server in servers[1:]:
            server.start(timeout=120)
        result = measure_event_latency([s.url for s in servers], admin_key, args.n)
    finally:
        for server in servers:
            server.stop()
        if database_url:
            asyncio.run(drop_postgres_database(database_url))
    backend = "PostgreSQL + Redis" if with_services else "SQLite"
    print(f"event latency, pay request start -> WebSocket event ({backend}, {args.n} payments each)")
    for label in ("same_process", "cross_process"):
        if label in result:
            s = result[label]
            print(f"  {label.replace('_', ' '):14s} median {s['median_ms']:8.2f} ms   "
                  f"p99 {s['p99_ms']:8.2f} ms   max {s['max_ms']:8.2f} ms   "
                  f"(pay response median {s['pay_response_median_ms']:.2f} ms)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
