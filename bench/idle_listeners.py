"""Database cost of idle payment-hash listeners (`/api/v1/ws/{payment_hash}`).

    uv run python bench/idle_listeners.py [--listeners 2000] [--seconds 20] [--redis]

Starts a host in this process on a fresh PostgreSQL database (the default
`FULMEN_EVENT_POLL_SECONDS` of 5), makes `--listeners` unpaid invoices and
opens one listener on each through the event bus (what each WebSocket does),
then counts the database's committed transactions (`pg_stat_database`) over
`--seconds` while nothing is paid. With `--redis` the host fans events out
through Redis (`FULMEN_TEST_REDIS_URL`); without it, on PostgreSQL, it reads
all listened-to hashes in one batched query per poll interval.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from fulmen.testing import REDIS_URL, Fulmen, fresh_postgres_database


async def committed(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        name = await conn.fetchval("SELECT current_database()")
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        return int(await conn.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def measure(listeners: int, seconds: float, redis: bool) -> dict[str, float]:
    async with fresh_postgres_database() as url:
        with tempfile.TemporaryDirectory() as tmp:
            fulmen = Fulmen(Path(tmp), url)
            extra = {"redis_url": REDIS_URL} if redis else {}
            await fulmen.start(**extra)
            try:
                wallet = await fulmen.wallet("shop")
                hashes = [(await fulmen.invoice(wallet, 1))["payment_hash"] for _ in range(listeners)]
                subs = [await fulmen.host.events.subscribe_hash(h).open() for h in hashes]
                waiting = [asyncio.ensure_future(sub.__anext__()) for sub in subs]
                await asyncio.sleep(1.0)
                before, started = await committed(url), time.monotonic()
                await asyncio.sleep(seconds)
                # pg_stat_database lags by up to half a second (stats flush)
                await asyncio.sleep(1.0)
                after, elapsed = await committed(url), time.monotonic() - started
                for task in waiting:
                    task.cancel()
                for sub in subs:
                    sub.close()
            finally:
                await fulmen.stop()
    return {"listeners": listeners, "seconds": round(elapsed, 1), "redis": redis,
            "transactions_per_s": round((after - before) / elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listeners", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--redis", action="store_true")
    args = parser.parse_args()
    import os

    os.environ.setdefault("FULMEN_EVENT_REDIS_CHANNEL", f"fulmen-bench-{uuid.uuid4().hex}")
    print(json.dumps(asyncio.run(measure(args.listeners, args.seconds, args.redis))))


if __name__ == "__main__":
    main()
