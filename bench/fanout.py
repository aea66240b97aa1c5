"""What an idle host process pays for payments made on another one.

    uv run --with aiohttp python bench/fanout.py [--processes 2] [-n 2000] [--rounds 2]

Starts `--processes` `fulmen serve` processes on a fresh PostgreSQL database
joined by Redis (no plugins unless `--plugins`), makes the wallets and
invoices through the first process, then per round sends c32 internal
payments to the first process only and reads each process's CPU
(`/proc/<pid>/stat`) before and after. No process has event listeners, so
whatever the others spend beyond their quiet-time CPU (measured over an
equal time just after the load) is the cost of the event fan-out. Prints,
per round, payments/s, the loaded process's CPU ms per payment and each
idle process's (with and without its quiet-time CPU). With `--listen`, each
idle process has a WebSocket open for every payee wallet (so it hears every
payment's incoming event, as every process did when all events went on one
channel).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402


def cpu(pids: list[int]) -> list[float]:
    return [run.proc_cpu_s(p) or 0.0 for p in pids]


def listen(urls: list[str], keys: list[str], counts: list[int]) -> threading.Event:
    """Open a WebSocket per key on each URL, in a thread, counting messages;
    returns an event to set to close them."""
    import websockets

    stop = threading.Event()
    ready = threading.Event()

    async def one(url: str, key: str, i: int) -> None:
        async with websockets.connect(url.replace("http://", "ws://") + f"/api/v1/ws/{key}") as ws:
            opened.append(1)
            if len(opened) == len(urls) * len(keys):
                ready.set()
            while not stop.is_set():
                try:
                    await asyncio.wait_for(ws.recv(), 0.5)
                    counts[i] += 1
                except TimeoutError:
                    pass
                except websockets.ConnectionClosed:
                    return

    opened: list[int] = []

    async def all_of_them() -> None:
        await asyncio.gather(*(one(u, k, i) for i, u in enumerate(urls) for k in keys))

    threading.Thread(target=asyncio.run, args=(all_of_them(),), daemon=True).start()
    if not ready.wait(60):
        raise SystemExit("the listeners did not open")
    return stop


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("-n", type=int, default=2000, help="payments per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--plugins", default="none", help='"all", "none" or a comma-separated list')
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--listen", action="store_true", help="a WebSocket per payee on each idle process")
    args = ap.parse_args()
    if args.processes < 2:
        raise SystemExit("needs two or more processes")

    workdir = Path(tempfile.mkdtemp(prefix="fulmen-fanout-"))
    cluster = run.Cluster("postgres", args.processes, workdir, args.redis_url, args.plugins)
    run.log(f"starting {args.processes} server processes on postgres")
    cluster.start()
    try:
        urls, pids = cluster.urls, cluster.pids
        api = run.Api(urls, run.ADMIN_KEY)
        payers = [api.account(f"fanout payer {i}") for i in range(64)]
        payees = [api.account(f"fanout payee {i}") for i in range(64)]
        for p in payers:
            api.fund(p["id"], 10_000_000)
        invoices = run.make_invoices(urls[:1], payees, args.rounds * args.n, 1, "fanout", 1)
        heard: list[Any] = [0] * (len(urls) - 1)
        stop = listen(urls[1:], [p["inkey"] for p in payees], heard) if args.listen else None
        time.sleep(2)
        for r in range(args.rounds):
            batch = invoices[r * args.n:(r + 1) * args.n]
            res = run.run_load("c32 on process 1", run.pay_requests(urls[:1], payers, batch), 32, 1,
                               ok_status=(201,), probe=lambda: (cpu(pids), time.perf_counter()))
            (c0, t0), (c1, t1) = res.probes
            wall = t1 - t0
            quiet0 = cpu(pids)
            time.sleep(wall)  # the same time without load: each process's background CPU
            quiet1 = cpu(pids)
            used = [b - a for a, b in zip(c0, c1)]
            idle = [b - a for a, b in zip(quiet0, quiet1)]
            ok = res.ok or 1
            line = (f"round {r + 1}: {res.ok} payments in {wall:.1f} s = {res.ok / wall:.0f}/s; "
                    f"loaded process {used[0] * 1000 / ok:.2f} ms/payment")
            for i in range(1, len(pids)):
                line += (f"; idle process {i + 1} {used[i] * 1000 / ok:.3f} ms/payment "
                         f"({(used[i] - idle[i]) * 1000 / ok:.3f} beyond its quiet-time CPU)")
            if stop is not None:
                line += f"; listeners heard {heard} messages so far"
            run.log(line)
            if res.errors:
                run.log(f"errors: {res.errors} {res.error_samples[:3]}")
        if stop is not None:
            stop.set()
            time.sleep(1)
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
