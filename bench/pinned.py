"""Pinned runs: the CPU model of a payment checked against a measurement.

    uv run --with aiohttp python bench/pinned.py [--processes 1,2] [--server-cores 0]
                                                 [--db-cores 1] [--client-cores 1] [-n 1500]

For each host process count: start `fulmen serve` process(es) on a fresh
PostgreSQL database (on this machine: its postmaster must be readable in
/proc, and changing its affinity needs root or the postgres user), make the
wallets and invoices, then alternate `--rounds` times:

- c32 internal payments unpinned (calibration: server, database and load
  generator CPU per payment),
- the same pinned: the server processes on --server-cores, PostgreSQL (the
  postmaster and all its children; backends it forks later inherit) on
  --db-cores, the load generator (this process, whose forked clients
  inherit) on --client-cores.

PostgreSQL's affinity is put back as it was after every pinned run, also
on error. Prints, per run, payments/s, CPU ms per payment of each side, and
the throughput the model predicts for the pinning: each set of cores serves
cores * 1000 / (CPU ms per payment of everything pinned to it) payments a
second, the busiest set wins. The prediction is made from the unpinned run's
CPU per payment (a real prediction), from the pinned run's own (whether the
cores were simply full), and from its own on the share of each core that
other work on the machine left (busy time in /proc/stat minus ours). Writes
bench/results/<timestamp>-pinned.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402
from cpu import (  # noqa: E402
    busy_cores,
    database_name,
    pin,
    postgres_pids,
    postmaster_pid,
)


def parse_cores(text: str) -> set[int]:
    return {int(c) for c in text.split(",") if c.strip()}


def per_payment(res: Any) -> dict[str, Any]:
    """A load's figures: payments/s and CPU ms per payment of each side."""
    s = res.summary()
    n = res.ok or 1
    server = getattr(res, "server_cpu_s", None)
    db = getattr(res, "db_cpu_s", None)
    return {
        "ok": res.ok,
        "errors": res.errors,
        "payments_per_s": s["throughput_per_s"],
        "p50_ms": s["p50_ms"],
        "p99_ms": s["p99_ms"],
        "server_ms": round(1000 * server / n, 3) if server is not None else None,
        "db_ms": round(1000 * db / n, 3) if isinstance(db, float) else None,
        "client_ms": round(1000 * res.client_cpu_s / n, 3),
    }


def predict(
    groups: dict[str, set[int]],
    ms: dict[str, Any],
    taken: dict[frozenset[int], float] | None = None,
) -> float | None:
    """Payments/s when every side is CPU-bound on the cores it is pinned to
    (`ms`: "<side>_ms", CPU ms per payment of each side in `groups`).
    Sides pinned to the same cores share them; sides pinned to overlapping
    but different sets are treated as if they had their cores alone.
    `taken`: cores of a set kept busy by other work on the machine."""
    if any(ms.get(f"{side}_ms") is None for side in groups):
        return None
    load: dict[frozenset[int], float] = {}
    for side, cores in groups.items():
        key = frozenset(cores)
        load[key] = load.get(key, 0.0) + float(ms[f"{side}_ms"] or 0.0)
    taken = taken or {}
    return round(
        min(1000 * (len(c) - taken.get(c, 0.0)) / m for c, m in load.items() if m > 0), 1
    )


def measure(name: str, requests: list, groups: dict[str, set[int]], cap: float) -> dict[str, Any]:
    """A c32 load, its per-payment CPU, and how busy each set of cores was with
    other work on the machine meanwhile (busy time from /proc/stat minus ours)."""
    res = run.load(name, requests, 32, 1, ok_status=(201,), max_seconds=cap)
    (ct0, t0), (ct1, t1) = res.probes
    wall = t1 - t0
    out = per_payment(res)
    other: dict[str, float | None] = {}
    for cores in {frozenset(c) for c in groups.values()}:
        busy = busy_cores(ct0, ct1, set(cores))
        ours = sum(
            float(out[f"{side}_ms"] or 0.0) * res.ok / 1000 / wall
            for side, c in groups.items()
            if frozenset(c) == cores
        )
        other[",".join(map(str, sorted(cores)))] = (
            None if busy is None else round(max(0.0, busy - ours), 2)
        )
    out["other_work_cores"] = other
    return out


def taken_cores(f: dict[str, Any]) -> dict[frozenset[int], float]:
    return {
        frozenset(int(c) for c in k.split(",")): v
        for k, v in f.get("other_work_cores", {}).items()
        if v is not None
    }


def run_count(processes: int, args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="fulmen-pinned-"))
    cluster = run.Cluster("postgres", processes, workdir, args.redis_url, args.plugins)
    run.log(f"starting {processes} server process(es) on postgres")
    cluster.start()
    out: dict[str, Any] = {"processes": processes, "runs": []}
    groups = {
        "server": args.server_cores,
        "db": args.db_cores,
        "client": args.client_cores,
    }
    try:
        urls = cluster.urls
        run.SERVER_PIDS[:] = cluster.pids
        postmaster = postmaster_pid(cluster.db_url)
        run.DB_PID[0] = postmaster
        run.DB_NAME[0] = database_name(cluster.db_url)
        if postmaster is None:
            raise SystemExit("PostgreSQL's postmaster is not on this machine or not readable")
        out["postmaster_pid"] = postmaster
        api = run.Api(urls, run.ADMIN_KEY)
        payers = [api.account(f"pinned payer {i}") for i in range(64)]
        payees = [api.account(f"pinned payee {i}") for i in range(64)]
        for p in payers:
            api.fund(p["id"], 10_000_000)
        n = args.n
        invoices = run.make_invoices(urls, payees, 2 * args.rounds * n, 1, "pinned", 1)
        time.sleep(1)
        own = os.sched_getaffinity(0)
        for r in range(args.rounds):
            batch = invoices[2 * r * n : 2 * (r + 1) * n]
            run.log(f"{processes} process(es), round {r + 1}: c32 x {n} unpinned")
            free = measure(
                "c32 unpinned", run.pay_requests(urls, payers, batch[:n]), groups, args.cap
            )
            pg_before = {p: os.sched_getaffinity(p) for p in postgres_pids(postmaster)}
            pg_all = os.sched_getaffinity(postmaster)
            try:
                pin(cluster.pids, args.server_cores)
                pin(postgres_pids(postmaster), args.db_cores)
                os.sched_setaffinity(0, args.client_cores)
                time.sleep(0.5)
                run.log(
                    f"{processes} process(es), round {r + 1}: c32 x {n} pinned "
                    f"(server {sorted(args.server_cores)}, PostgreSQL {sorted(args.db_cores)}, "
                    f"load generator {sorted(args.client_cores)})"
                )
                pinned = measure(
                    "c32 pinned", run.pay_requests(urls, payers, batch[n:]), groups, args.cap
                )
            finally:
                os.sched_setaffinity(0, own)
                pin(cluster.pids, own)
                restored = pin(postgres_pids(postmaster), pg_all)
                run.log(f"PostgreSQL affinity restored to {sorted(pg_all)} ({restored} processes)")
            pinned["predicted_from_unpinned_cpu"] = predict(groups, free)
            pinned["predicted_from_own_cpu"] = predict(groups, pinned)
            pinned["predicted_from_own_cpu_and_other_work"] = predict(
                groups, pinned, taken_cores(pinned)
            )
            pinned["predicted_without_client"] = predict(
                {"server": args.server_cores, "db": args.db_cores}, free
            )
            out["runs"].append({"unpinned": free, "pinned": pinned})
            out["postgres_affinity_before"] = sorted(set().union(*pg_before.values()))
            show(processes, r + 1, free, pinned)
    finally:
        run.SERVER_PIDS[:] = []
        run.DB_PID[0] = None
        cluster.stop()
    return out


def show(processes: int, rnd: int, free: dict[str, Any], pinned: dict[str, Any]) -> None:
    for label, f in (("unpinned", free), ("pinned", pinned)):
        extra = (
            f"  predicted {f['predicted_from_unpinned_cpu']}/s from the unpinned CPU, "
            f"{f['predicted_from_own_cpu']}/s from its own, "
            f"{f['predicted_from_own_cpu_and_other_work']}/s on the cores other work left"
            if label == "pinned"
            else ""
        )
        print(
            f"{processes}p round {rnd} {label:9} {f['payments_per_s']:>7}/s  "
            f"p99 {f['p99_ms']:>6} ms  server {f['server_ms']} ms  db {f['db_ms']} ms  "
            f"load generator {f['client_ms']} ms per payment  errors {f['errors']}  "
            f"other work (cores) {f['other_work_cores']}{extra}",
            flush=True,
        )


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--processes", default="1,2", help="host process counts to run, e.g. 1,2")
    ap.add_argument("--server-cores", type=parse_cores, default={0})
    ap.add_argument("--db-cores", type=parse_cores, default={1})
    ap.add_argument("--client-cores", type=parse_cores, default={1})
    ap.add_argument("-n", type=int, default=1500, help="payments per run")
    ap.add_argument("--rounds", type=int, default=2, help="unpinned/pinned pairs per count")
    ap.add_argument("--cap", type=float, default=30, help="time cap per run, seconds")
    ap.add_argument("--plugins", default="all")
    ap.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    ap.add_argument("--out", default=str(run.BENCH / "results"))
    args = ap.parse_args()
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": run.git_commit(),
        "machine": run.machine(),
        "pinning": {
            "server": sorted(args.server_cores),
            "postgres": sorted(args.db_cores),
            "load_generator": sorted(args.client_cores),
        },
        "counts": [run_count(int(p), args) for p in args.processes.split(",")],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{time.strftime('%Y%m%dT%H%M%S')}-pinned.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(report, default=str))
    run.log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
