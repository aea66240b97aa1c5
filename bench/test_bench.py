"""Checks of the benchmark's own pieces: the seeded rows keep the books exact
and behave like rows the API wrote, and the statistics are right.

    uv run pytest bench/test_bench.py -q -p no:warnings
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cpu import cpu_snapshot, cpu_used, predicted_per_s, projection  # noqa: E402
from loadgen import percentile  # noqa: E402
from pinned import predict  # noqa: E402
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


def fake_proc(root: Path, pid: int, ppid: int, utime: int, stime: int, title: str) -> None:
    """A /proc/<pid> with a stat line (a command name holding ") (" and
    spaces, as a process title may) and a NUL-separated cmdline."""
    d = root / str(pid)
    d.mkdir(parents=True, exist_ok=True)
    rest = ["S", str(ppid)] + ["0"] * 9 + [str(utime), str(stime), "7", "7"] + ["0"] * 30
    (d / "stat").write_text(f"{pid} (postgres: x) (y) " + " ".join(rest) + "\n")
    (d / "cmdline").write_bytes(title.encode().replace(b" ", b"\0") + b"\0\0")


def test_database_cpu_sums_the_postmaster_and_its_children(tmp_path):
    fake_proc(tmp_path, 100, 1, 10, 5, "/usr/lib/postgresql/15/bin/postgres -D /data")
    fake_proc(tmp_path, 101, 100, 30, 20, "postgres: 15/main: walwriter")
    fake_proc(tmp_path, 102, 100, 200, 100, "postgres: 15/main: postgres bench 127.0.0.1(5000) idle")
    fake_proc(tmp_path, 103, 100, 900, 900, "postgres: 15/main: postgres other 127.0.0.1(5001) idle")
    fake_proc(tmp_path, 104, 1, 999, 999, "python -m fulmen serve")  # not PostgreSQL's
    fake_proc(tmp_path, 105, 102, 999, 999, "postgres: a grandchild")  # not a child
    (tmp_path / "self").mkdir()  # non-numeric entries are skipped
    everything = cpu_snapshot(100, proc=tmp_path, ticks=100)
    assert everything == {100: 0.15, 101: 0.5, 102: 3.0, 103: 18.0}
    ours = cpu_snapshot(100, "bench", proc=tmp_path, ticks=100)
    assert ours == {100: 0.15, 101: 0.5, 102: 3.0}  # the other database's backend left out
    # later: the backend worked 1.5 s more, a new backend started and used 0.25 s,
    # the WAL writer exited (not counted)
    fake_proc(tmp_path, 102, 100, 300, 150, "postgres: 15/main: postgres bench 127.0.0.1(5000) idle")
    fake_proc(tmp_path, 106, 100, 20, 5, "postgres: 15/main: postgres bench [local] idle")
    (tmp_path / "101" / "stat").unlink()
    after = cpu_snapshot(100, "bench", proc=tmp_path, ticks=100)
    assert cpu_used(ours, after) == 1.5 + 0.25
    assert cpu_snapshot(999, proc=tmp_path) is None  # no such postmaster
    assert cpu_used(None, after) is None


def test_projection_splits_cores_in_the_ratio_of_cpu_per_payment():
    # 1 ms of host CPU, 1 ms of database CPU: each core serves 1000/s
    assert predicted_per_s(1, 1.0, 1, 1.0) == 1000
    assert predicted_per_s(1, 0.8, 1, 1.0) == 1000  # the database is the slower side
    assert predicted_per_s(3, 1.0, 1, 0.5) == 2000
    p = projection(8, 1.0, 1.0)
    assert (p["host_processes"], p["db_cores"], p["payments_per_s"]) == (4, 4, 4000)
    p = projection(4, 3.0, 1.0)  # three quarters of the cores to the host
    assert (p["host_processes"], p["db_cores"], p["payments_per_s"]) == (3, 1, 1000)
    assert p["bound_by"] == "host"
    p = projection(16, 0.8, 1.0)  # 16 * 0.8 / 1.8 = 7.1 -> 7 host processes, 9 database cores
    assert (p["host_processes"], p["db_cores"], p["payments_per_s"]) == (7, 9, 8750)
    assert p["bound_by"] == "host"
    p = projection(2, 10.0, 0.1)  # never fewer than one core each side
    assert (p["host_processes"], p["db_cores"]) == (1, 1)


def test_projection_with_the_event_fanout_between_processes():
    # each process spends 0.25 ms on every payment made by another one
    p = projection(8, 1.5, 1.0, fanout_ms=0.25)
    # 4 hosts: 4 / (1.5 + 0.75) = 1778/s, 4 database cores 4000/s; 5 hosts: 5 / 2.5 = 2000/s
    # against 3000/s; 6 hosts: 6 / 2.75 = 2182/s against 2000/s -> 5 hosts
    assert (p["host_processes"], p["db_cores"], p["payments_per_s"]) == (5, 3, 2000)
    assert p["host_ms_per_payment"] == 2.5
    assert p["bound_by"] == "host"
    # the host side can never exceed 1000 / fanout_ms however many cores
    assert projection(64, 1.5, 0.1, fanout_ms=0.25)["payments_per_s"] < 4000


def test_pinned_prediction_adds_up_the_sides_sharing_cores():
    ms = {"server_ms": 0.8, "db_ms": 1.0, "client_ms": 0.25}
    # load generator beside PostgreSQL: core 1 carries 1.25 ms per payment
    assert predict({"server": {0}, "db": {1}, "client": {1}}, ms) == 800.0
    # beside the server: core 0 carries 1.05 ms, core 1 1.0 ms
    assert predict({"server": {0}, "db": {1}, "client": {0}}, ms) == 952.4
    assert predict({"server": {0}, "db": {1}}, ms) == 1000.0
    assert predict({"server": {0}, "db": {1}}, {"server_ms": 0.8, "db_ms": None}) is None


async def test_seeded_history_keeps_the_books_exact(fulmen_db):
    client = await fulmen_db.start()
    # unfunded: an admin top-up is a payment too, and would be the newest row
    wallet = await fulmen_db.wallet("history")
    result = await asyncio.to_thread(seed_history, fulmen_db.database_url, wallet.id, 300, 2000)
    assert result["rows"] == 300
    assert await fulmen_db.balance(wallet) == 300 * 2000
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
