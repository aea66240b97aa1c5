"""Checks of the benchmark's own pieces: the seeded rows keep the books exact
and behave like rows the API wrote, and the statistics are right.

    uv run pytest bench/test_bench.py -q -p no:warnings
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import percentile  # noqa: E402
from run import analyse_profile  # noqa: E402
from seed import seed_history, seed_invoices  # noqa: E402


def test_percentile_nearest_rank():
    values = sorted(float(i) for i in range(1, 101))
    assert percentile(values, 50) == 50.0
    assert percentile(values, 90) == 90.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) == 0.0


def test_profile_summary_counts_self_and_total(tmp_path):
    raw = tmp_path / "stacks.txt"
    raw.write_text(
        "main (fulmen/cli.py:1);pay (fulmen/payments.py:9);_do_execute (asyncpg/connection.py:5) 6\n"
        "main (fulmen/cli.py:1);encode (bolt11/encode.py:3) 4\n"
    )
    summary = analyse_profile(raw)
    assert summary["samples"] == 10
    assert summary["self_by_library_pct"]["asyncpg driver"] == 60.0
    assert summary["self_by_library_pct"]["bolt11 / bitstring (invoice encode/decode)"] == 40.0
    assert summary["stack_touches_library_pct"]["fulmen code"] == 100.0


async def test_seeded_history_keeps_the_books_exact(fulmen_db):
    client = await fulmen_db.start()
    wallet = await fulmen_db.wallet("history", sats=5)
    result = await asyncio.to_thread(seed_history, fulmen_db.database_url, wallet.id, 300, 2000)
    assert result["rows"] == 300
    assert await fulmen_db.balance(wallet) == 5000 + 300 * 2000
    assert await fulmen_db.host.wallets.audit() == []
    r = await client.get("/api/v1/payments?limit=50", headers=wallet.read_headers)
    assert r.status_code == 200, r.text
    page = r.json()
    assert len(page) == 50
    assert all(p["status"] == "success" and p["amount"] == 2000 for p in page)
    # newest first: the seeded rows lie in the past, one a second apart
    times = [p["time"] for p in page]
    assert times == sorted(times, reverse=True)


async def test_seeded_invoices_are_paid_like_issued_ones(fulmen_db):
    await fulmen_db.start()
    payee = await fulmen_db.wallet("payee")
    payer = await fulmen_db.wallet("payer", sats=10)
    bolt11s = await asyncio.to_thread(seed_invoices, fulmen_db.database_url, payee.id, 5, 3000)
    assert await fulmen_db.balance(payee) == 0
    r = await fulmen_db.pay(payer, bolt11s[0])
    assert r.status_code == 201, r.text
    again = await fulmen_db.pay(payer, bolt11s[0])
    assert again.status_code == 400, again.text
    assert await fulmen_db.balance(payee) == 3000
    assert await fulmen_db.balance(payer) == 7000
    await fulmen_db.drain()
    assert await fulmen_db.host.wallets.audit() == []
