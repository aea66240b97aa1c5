"""Fulmen benchmark: one command, fixed workloads, a table and JSON.

    uv run --with aiohttp python bench/run.py [--db sqlite|postgres] [--processes N]
                                              [--url URL] [--quick] [--no-profile]

Starts `fulmen serve` process(es) on loopback itself (or targets --url), runs
the workloads below with a multi-process client, checks the budgets, and
writes everything to bench/results/<timestamp>.json. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import importlib.util
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from cpu import (  # noqa: E402
    busy_cores,
    core_times,
    cpu_snapshot,
    cpu_used,
    database_name,
    postmaster_pid,
)
from loadgen import LoadResult, Req, cpu_count, engine_name, run_load  # noqa: E402
from seed import seed_history, seed_invoices  # noqa: E402

ADMIN_KEY = "bench-admin-key-0123456789abcdef"


# --- sizes ----------------------------------------------------------------------

FULL = {
    "health": 5000,
    "accounts": 300,
    "pay_c1": 300,
    "pay_c8": 1000,
    "pay_c32": 2000,
    "pay_c64": 2000,
    "history_rows": 100_000,
    "history_reads": 300,
    "events": 50,
    "contention_k": 64,
    "soak": 100_000,
    "soak_seconds": 150,
    "profile_payments": 1500,
    "scale_n": 1000,
    "hot": 2000,
    "cap": 30,
}
QUICK = {
    "health": 2000,
    "accounts": 100,
    "pay_c1": 100,
    "pay_c8": 300,
    "pay_c32": 600,
    "pay_c64": 600,
    "history_rows": 100_000,
    "history_reads": 100,
    "events": 20,
    "contention_k": 64,
    "soak": 10_000,
    "soak_seconds": 60,
    "profile_payments": 600,
    "scale_n": 400,
    "hot": 600,
    "cap": 15,
}

# (name, check(results) -> (value, passed) | None)
BUDGETS = [
    ("internal payment p50 <= 5 ms at concurrency 1", "payments c1", "p50_ms", "<=", 5),
    ("internal payments >= 500/s at concurrency 32", "payments c32", "throughput_per_s", ">=", 500),
    ("internal payment p99 <= 100 ms at concurrency 32", "payments c32", "p99_ms", "<=", 100),
    ("invoice creation >= 800/s at concurrency 8", "invoices c8", "throughput_per_s", ">=", 800),
    ("account creation p50 <= 5 ms", "accounts c1", "p50_ms", "<=", 5),
    ("history page (50 of 100k) p50 <= 10 ms", "history c1", "p50_ms", "<=", 10),
]
LIGHT_BUDGETS = [  # the first, lighter budgets
    ("(light) internal payment p50 <= 10 ms at concurrency 1", "payments c1", "p50_ms", "<=", 10),
    (
        "(light) internal payments >= 300/s at concurrency 32",
        "payments c32",
        "throughput_per_s",
        ">=",
        300,
    ),
    ("(light) account creation p50 <= 10 ms", "accounts c1", "p50_ms", "<=", 10),
]
RSS_BUDGET_MB = 150
RSS_GROWTH_MB = 10  # allowed drift over the soak (allocator noise)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- machine and versions -----------------------------------------------------------


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cores": cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["ram_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
        info["loadavg_at_start"] = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        pass
    return info


def git_commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "host", "plugins"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def database_version(db_url: str) -> str:
    if db_url.startswith(("postgres://", "postgresql://")):
        import asyncpg

        async def v():
            conn = await asyncpg.connect(db_url)
            try:
                return await conn.fetchval("SELECT version()")
            finally:
                await conn.close()

        return "PostgreSQL " + asyncio.run(v()).split()[1]
    return f"SQLite {sqlite3.sqlite_version} (WAL)"


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def proc_cpu_s(pid: int) -> float | None:
    """utime+stime of a process, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


# --- servers --------------------------------------------------------------------------


def first_party_plugins() -> list[str]:
    from fulmen.plugins import discover

    return sorted(info.id for info in discover(None))


class Cluster:
    """N `fulmen serve` processes on one database (and Redis when N > 1)."""

    def __init__(
        self, db: str, processes: int, workdir: Path, redis_url: str, plugins: str = "all"
    ) -> None:
        self.db_kind = db
        self.processes = processes
        self.workdir = workdir
        self.redis_url = redis_url
        self.servers: list[Any] = []
        self.db_url = ""
        self.pg_url = ""
        # "all": every installed first-party plugin; "none"; or a comma-separated list
        if plugins == "all":
            self.plugins = first_party_plugins()
        elif plugins == "none":
            self.plugins = []
        else:
            self.plugins = [p.strip() for p in plugins.split(",") if p.strip()]

    def env(self) -> dict[str, str]:
        env = {
            "FULMEN_DATA_DIR": str(self.workdir / "data"),
            "FULMEN_ADMIN_KEY": ADMIN_KEY,
            # an allow-list naming no installed plugin loads none
            "FULMEN_PLUGINS": ",".join(self.plugins) or "none",
            "FULMEN_LOG_LEVEL": "WARNING",
            "DATABASE_URL": self.db_url if self.pg_url else "",
            "REDIS_URL": self.redis_url if self.processes > 1 else "",
        }
        return env

    def start(self) -> None:
        from fulmen.testing import ServerProcess, create_postgres_database

        if self.db_kind == "postgres":
            self.pg_url = asyncio.run(create_postgres_database())
            self.db_url = self.pg_url
        else:
            if self.processes > 1:
                raise SystemExit("more than one process needs --db postgres")
            self.db_url = f"sqlite:///{self.workdir / 'data' / 'fulmen.sqlite3'}"
        env = self.env()
        for i in range(self.processes):
            server = ServerProcess(env, log_path=self.workdir / f"server{i}.log")
            server.start(timeout=60)
            self.servers.append(server)

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    @property
    def pids(self) -> list[int]:
        return [s.proc.pid for s in self.servers]

    def stop(self) -> list[int | None]:
        codes = [s.stop() for s in self.servers]
        if self.pg_url:
            from fulmen.testing import drop_postgres_database

            try:
                asyncio.run(drop_postgres_database(self.pg_url))
            except Exception as exc:  # leave the scratch database, say so
                log(f"could not drop {self.pg_url}: {exc!r}")
        return codes


def audit(db_url: str, data_dir: Path | None) -> dict[str, Any]:
    """`fulmen audit` (the CLI) against the benchmark's database."""
    env = {
        **os.environ,
        "DATABASE_URL": db_url if db_url.startswith("postgres") else "",
        "FULMEN_LOG_LEVEL": "WARNING",
    }
    if data_dir:
        env["FULMEN_DATA_DIR"] = str(data_dir)
    if db_url.startswith("sqlite:///"):
        env["FULMEN_DATA_DIR"] = str(Path(db_url.removeprefix("sqlite:///")).parent)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "fulmen", "audit"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = (proc.stdout + proc.stderr).strip().splitlines()
    return {
        "exit_code": proc.returncode,
        "ok": proc.returncode == 0,
        "output": out[-5:],
        "seconds": round(time.perf_counter() - t0, 1),
    }


# --- the API, for untimed set-up ------------------------------------------------------------


class Api:
    def __init__(self, urls: list[str], admin_key: str) -> None:
        self.urls = urls
        self.admin = {"Authorization": f"Bearer {admin_key}"}
        self.client = httpx.Client(timeout=60)

    def account(self, name: str) -> dict[str, Any]:
        r = self.client.post(self.urls[0] + "/api/v1/account", json={"name": name})
        r.raise_for_status()
        return r.json()

    def fund(self, wallet_id: str, sats: int) -> None:
        r = self.client.put(
            self.urls[0] + "/users/api/v1/balance",
            json={"id": wallet_id, "amount": sats},
            headers=self.admin,
        )
        r.raise_for_status()

    def balance_msat(self, wallet: dict[str, Any]) -> int:
        r = self.client.get(self.urls[0] + "/api/v1/wallet", headers={"X-Api-Key": wallet["inkey"]})
        r.raise_for_status()
        return int(r.json()["balance"])


def invoice_requests(
    urls: list[str], payees: list[dict], n: int, sats: int, memo: str
) -> list[Req]:
    return [
        Req(
            "POST",
            urls[i % len(urls)] + "/api/v1/payments",
            {"X-Api-Key": payees[i % len(payees)]["inkey"]},
            {"out": False, "amount": sats, "memo": f"{memo} {i}"},
        )
        for i in range(n)
    ]


def pay_requests(urls: list[str], payers: list[dict], bolt11s: list[str]) -> list[Req]:
    return [
        Req(
            "POST",
            urls[i % len(urls)] + "/api/v1/payments",
            {"X-Api-Key": payers[i % len(payers)]["adminkey"]},
            {"out": True, "bolt11": b},
        )
        for i, b in enumerate(bolt11s)
    ]


def make_invoices(urls, payees, n, sats, memo, clients) -> list[str]:
    res = run_load(
        "invoices (set-up)",
        invoice_requests(urls, payees, n, sats, memo),
        16,
        clients,
        keep_bodies=True,
    )
    if res.errors:
        raise RuntimeError(f"invoice set-up failed: {res.error_samples}")
    return [r[1]["bolt11"] for r in res.responses if r and r[0] == 201]


# --- ceilings --------------------------------------------------------------------------------


def wrk_available() -> str | None:
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk not found; trying apt-get install -y wrk")
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True, timeout=180)
        return shutil.which("wrk")
    return None


def wrk_health(url: str, seconds: int = 5, connections: int = 32) -> dict[str, Any] | None:
    wrk = wrk_available()
    if not wrk:
        return None
    proc = subprocess.run(
        [wrk, "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency", url + "/health"],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    )
    out = proc.stdout
    result: dict[str, Any] = {"tool": "wrk -t1", "connections": connections, "seconds": seconds}
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Requests/sec:"):
            result["throughput_per_s"] = float(line.split()[1])
        elif line.startswith(("50%", "90%", "99%")):
            p, v = line.split()
            result[f"p{p.rstrip('%')}"] = v
        elif line.startswith("Non-2xx"):
            result["non_2xx"] = int(line.split()[-1])
    return result


def pgbench_ceiling(seconds: int = 10) -> dict[str, Any] | None:
    from fulmen.testing import POSTGRES_URL, create_postgres_database, drop_postgres_database

    pgbench = shutil.which("pgbench")
    if not pgbench:
        return None
    url = asyncio.run(create_postgres_database())
    try:
        init = subprocess.run(
            [pgbench, "-i", "-s", "1", "-q", url], capture_output=True, text=True, timeout=120
        )
        if init.returncode:
            return {"error": init.stderr[-300:]}
        proc = subprocess.run(
            [pgbench, "-c", "32", "-j", "2", "-T", str(seconds), "-N", url],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
        result: dict[str, Any] = {
            "command": f"pgbench -c 32 -j 2 -T {seconds} -N",
            "server": POSTGRES_URL,
        }
        for line in proc.stdout.splitlines():
            if line.startswith("tps ="):
                result["tps"] = float(line.split()[2])
            elif line.startswith("latency average"):
                result["latency_avg_ms"] = float(line.split("=")[1].split()[0])
        return result
    finally:
        asyncio.run(drop_postgres_database(url))


def pg_counters(db_url: str) -> dict[str, int]:
    import asyncpg

    async def q():
        conn = await asyncpg.connect(db_url)
        try:
            row = await conn.fetchrow(
                "SELECT xact_commit, xact_rollback, tup_returned, tup_fetched, tup_inserted, tup_updated "
                "FROM pg_stat_database WHERE datname = current_database()"
            )
            out = dict(row)
            # per table: which ones are scanned sequentially, and how much
            for t in await conn.fetch(
                "SELECT relname, seq_scan, seq_tup_read, idx_scan, idx_tup_fetch "
                "FROM pg_stat_user_tables"
            ):
                for k in ("seq_scan", "seq_tup_read", "idx_scan", "idx_tup_fetch"):
                    out[f"{t['relname']}.{k}"] = int(t[k] or 0)
            return out
        finally:
            await conn.close()

    return asyncio.run(q())


class PgWaitSampler:
    """Samples pg_stat_activity of the benchmark database every 50 ms while a
    workload runs: what the host's sessions are doing or waiting on (a row
    lock, the WAL flush of a commit, the client = the host between two
    statements of a transaction), with the statement they are on."""

    def __init__(self, db_url: str, interval: float = 0.05) -> None:
        self.db_url = db_url
        self.interval = interval
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.db_url)
        try:
            while not self._stop.is_set():
                rows = await conn.fetch(
                    "SELECT state, wait_event_type, wait_event, left(regexp_replace(query, '\\s+', ' ', 'g'), 70) AS q "
                    "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND state <> 'idle'"
                )
                self.samples += 1
                for r in rows:
                    what = f"{r['state']}: {r['wait_event_type'] or 'CPU'}/{r['wait_event'] or '-'}"
                    self.counts[(what, r["q"] or "")] += 1
                await asyncio.sleep(self.interval)
        finally:
            await conn.close()

    def __enter__(self) -> PgWaitSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(10)

    def summary(self, top: int = 12) -> dict[str, Any]:
        """Average number of busy sessions in each state, over the samples."""
        n = max(1, self.samples)
        return {
            "samples": self.samples,
            "busy_sessions_avg": round(sum(self.counts.values()) / n, 2),
            "top": [
                {"state": w, "query": q, "sessions_avg": round(c / n, 2)}
                for (w, q), c in self.counts.most_common(top)
            ],
        }


# --- profiling -----------------------------------------------------------------------------


def py_spy_command() -> list[str] | None:
    for candidate in (shutil.which("py-spy"), str(Path(sys.executable).parent / "py-spy")):
        if candidate and Path(candidate).exists():
            return [candidate]
    if shutil.which("uvx"):
        return ["uvx", "py-spy"]
    return None


CATEGORIES = [  # (label, substring of a frame) - first match from the leaf wins for "self"
    ("bolt11 / bitstring (invoice encode/decode)", ("bolt11", "bitstring")),
    ("asyncpg driver", ("asyncpg",)),
    ("sqlite3 / aiosqlite", ("sqlite3", "aiosqlite")),
    ("piccolo query building / engine", ("piccolo",)),
    ("json / msgspec serialisation", ("json", "msgspec", "serialization")),
    ("litestar routing / DI / middleware", ("litestar",)),
    ("uvicorn / httptools (HTTP server)", ("uvicorn", "httptools", "h11")),
    ("pydantic", ("pydantic",)),
    ("fulmen code", ("fulmen",)),
    ("asyncio / event loop", ("asyncio", "uvloop")),
]


def analyse_profile(raw: Path) -> dict[str, Any]:
    """Summarise py-spy's collapsed stacks: top frames by self and total samples,
    and the share of samples whose stack touches each library."""
    self_counts: collections.Counter[str] = collections.Counter()
    total_counts: collections.Counter[str] = collections.Counter()
    cat_incl: collections.Counter[str] = collections.Counter()
    cat_self: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = stack.split(";")
        self_counts[frames[-1]] += n
        for frame in set(frames):
            total_counts[frame] += n
        for label, needles in CATEGORIES:
            if any(any(s in f for s in needles) for f in frames):
                cat_incl[label] += n
        for frame in reversed(frames):
            hit = next(
                (label for label, needles in CATEGORIES if any(s in frame for s in needles)), None
            )
            if hit:
                cat_self[hit] += n
                break
        else:
            cat_self["other"] += n

    def pct(c: int) -> float:
        return round(100 * c / samples, 1) if samples else 0.0

    return {
        "samples": samples,
        "self_by_library_pct": {k: pct(v) for k, v in cat_self.most_common()},
        "stack_touches_library_pct": {k: pct(v) for k, v in cat_incl.most_common()},
        "top_self": [(f, pct(c)) for f, c in self_counts.most_common(15)],
        "top_total": [
            (f, pct(c))
            for f, c in total_counts.most_common(40)
            if "fulmen" in f or "piccolo" in f or "asyncpg" in f or "bolt11" in f
        ][:20],
    }


def profile_under_load(pid: int, seconds: int, run) -> dict[str, Any]:
    """py-spy on `pid` while `run()` loads it. `--gil` keeps only samples of the
    thread holding the GIL, i.e. Python work: threads waiting on a queue or a
    socket (aiosqlite's worker, the idle loop) are left out."""
    cmd = py_spy_command()
    if not cmd:
        return {"skipped": "py-spy not found (pip install py-spy, or install uv for uvx)"}
    raw = Path(tempfile.gettempdir()) / f"fulmen-bench-{pid}.txt"
    svg = Path(tempfile.gettempdir()) / f"fulmen-bench-{pid}.svg"
    spy = subprocess.Popen(
        cmd
        + [
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(seconds),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(raw),
            "--nonblocking",
            "--gil",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(2.0)  # let py-spy attach (uvx may download it first)
    result = run()
    out, _ = spy.communicate(timeout=seconds + 120)
    if not raw.exists():
        return {"error": (out or "")[-500:], "load": result.summary()}
    summary = analyse_profile(raw)
    summary["raw_stacks"] = str(raw)
    summary["load"] = result.summary()
    # The same stacks as a flame graph, if py-spy can make one quickly.
    summary["note"] = f"collapsed stacks in {raw}; render with flamegraph.pl or speedscope"
    del svg
    return summary


SERVER_PIDS: list[int] = []
# The PostgreSQL postmaster, when on this machine: its CPU and its children's
# is the database's (client backends of other databases left out). "in
# server" for SQLite (the engine runs in the server process), None when not
# measured (a remote database).
DB_PID: list[int | str | None] = [None]
DB_NAME: list[str | None] = [None]


def load(*args: Any, **kwargs: Any) -> LoadResult:
    """`run_load`, plus the CPU the server processes and PostgreSQL used meanwhile."""
    db = DB_PID[0]
    before = [proc_cpu_s(p) for p in SERVER_PIDS]
    db_before = cpu_snapshot(db, DB_NAME[0]) if isinstance(db, int) else None
    kwargs["probe"] = lambda: (core_times(), time.perf_counter())
    res = run_load(*args, **kwargs)
    db_after = cpu_snapshot(db, DB_NAME[0]) if isinstance(db, int) else None
    after = [proc_cpu_s(p) for p in SERVER_PIDS]
    used = [b - a for a, b in zip(before, after) if a is not None and b is not None]
    res.server_cpu_s = sum(used) if used else None  # type: ignore[attr-defined]
    res.db_cpu_s = (  # type: ignore[attr-defined]
        cpu_used(db_before, db_after) if isinstance(db, int) else db
    )
    # how busy the whole machine was while the clients sent (/proc/stat), to
    # tell other work on it from ours: busy cores minus server, database and
    # client CPU per second (theirs include the clients' start, a little)
    res.other_work_cores = None  # type: ignore[attr-defined]
    if len(res.probes) == 2:
        (cores_before, t0), (cores_after, t1) = res.probes
        busy = busy_cores(cores_before, cores_after, set(cores_after))
        sides = (res.server_cpu_s, res.db_cpu_s, res.client_cpu_s)  # type: ignore[attr-defined]
        ours = sum(x for x in sides if isinstance(x, float))
        if busy is not None and t1 > t0:
            res.other_work_cores = round(max(0.0, busy - ours / (t1 - t0)), 2)  # type: ignore[attr-defined]
    return res


def db_cpu_per_request(res: LoadResult) -> float | str | None:
    """Database CPU ms per request of a load, "in server" (SQLite) or None."""
    cpu = getattr(res, "db_cpu_s", None)
    if isinstance(cpu, float) and res.requests:
        return round(1000 * cpu / res.requests, 2)
    return cpu if isinstance(cpu, str) else None


# --- the workloads -----------------------------------------------------------------------------


def contention_check(api: Api, urls: list[str], clients: int, k: int) -> dict[str, Any]:
    """Fund S, fire K concurrent payments that together exceed it."""
    amount, s = 300, 10_000
    payer = api.account("contention payer")
    payee = api.account("contention payee")
    api.fund(payer["id"], s)
    bolt11s = make_invoices(urls, [payee], k, amount, "contention", clients)
    expected = s // amount
    seen: list[int] = []
    stop = threading.Event()

    def poll():
        with httpx.Client(timeout=10) as c:
            while not stop.is_set():
                try:
                    r = c.get(urls[-1] + "/api/v1/wallet", headers={"X-Api-Key": payer["inkey"]})
                    if r.status_code == 200:
                        seen.append(int(r.json()["balance"]))
                except httpx.HTTPError:
                    pass

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    res = load(
        "contention",
        pay_requests(urls, [payer], bolt11s),
        k,
        clients,
        keep_bodies=True,
        ok_status=(201,),
    )
    time.sleep(0.2)
    stop.set()
    poller.join(5)
    statuses = collections.Counter(r[0] for r in res.responses if r)
    refusals = [r[1] for r in res.responses if r and r[0] != 201]
    refusal_texts = collections.Counter(
        (b.get("detail") if isinstance(b, dict) else str(b))[:80] for b in refusals
    )
    final = api.balance_msat(payer)
    expected_final = (s - expected * amount) * 1000
    ok = (
        res.ok == expected
        and final == expected_final
        and all(x >= 0 for x in seen)
        and all(400 <= st < 500 for st in statuses if st != 201)
    )
    return {
        "funded_sats": s,
        "amount_sats": amount,
        "concurrent_payments": k,
        "expected_successes": expected,
        "successes": res.ok,
        "statuses": dict(statuses),
        "refusals": dict(refusal_texts),
        "final_balance_msat": final,
        "expected_final_balance_msat": expected_final,
        "balance_polls": len(seen),
        "min_balance_seen_msat": min(seen) if seen else None,
        "pass": ok,
    }


def history(
    api: Api, urls: list[str], db_url: str, sizes: dict, clients: int, report: dict, record
) -> None:
    """A 50-row history page of a wallet holding `history_rows` payments."""
    hist = api.account("bench history")
    if db_url:
        log(f"seeding {sizes['history_rows']} payments into one wallet (bulk insert)")
        report["history_seed"] = seed_history(db_url, hist["id"], sizes["history_rows"])
    else:
        report["history_seed"] = {"skipped": "no --database-url; history wallet is empty"}
    reqs = [
        Req("GET", urls[i % len(urls)] + "/api/v1/payments?limit=50", {"X-Api-Key": hist["inkey"]})
        for i in range(sizes["history_reads"])
    ]
    res = load("history c1", reqs, 1, 1, keep_bodies=True, max_seconds=sizes["cap"])
    page = res.responses[0][1] if res.responses else None
    record(res)
    report["workloads"]["history c1"]["rows_per_page"] = (
        len(page) if isinstance(page, list) else None
    )
    record(load("history c8", reqs, 8, clients, max_seconds=sizes["cap"]))


def event_latency(urls: list[str], n: int) -> dict[str, Any]:
    path = BENCH / "event_latency.py"
    if not path.exists():
        return {"skipped": "bench/event_latency.py not present"}
    spec = importlib.util.spec_from_file_location("fulmen_bench_event_latency", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        return module.measure_event_latency(urls, ADMIN_KEY, n)
    except Exception as exc:  # report, don't abort the run
        return {"error": repr(exc)[:500]}


def main() -> int:
    global ADMIN_KEY
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument(
        "--processes", type=int, default=1, help="host processes (>1 needs postgres; uses Redis)"
    )
    ap.add_argument(
        "--url", action="append", help="target running server(s) instead of starting them"
    )
    ap.add_argument(
        "--admin-key",
        default=os.environ.get("FULMEN_ADMIN_KEY", "bench-admin-key-0123456789abcdef"),
    )
    ap.add_argument(
        "--database-url",
        default="",
        help="with --url: the server's DATABASE_URL, for "
        "seeding the history wallet, the soak invoices and the audit",
    )
    ap.add_argument(
        "--pid", type=int, action="append", help="with --url: server pid(s) for RSS and profile"
    )
    ap.add_argument("--quick", action="store_true", help="smaller counts (about 2 minutes)")
    ap.add_argument(
        "--clients", type=int, default=None,
        help="client processes (default: 1, and one per core for GET /health; see docs/performance.md)",
    )
    ap.add_argument(
        "--soak", type=int, help="payments in the memory soak (default 100000; quick 10000)"
    )
    ap.add_argument("--soak-seconds", type=int, help="time cap on the soak (default 150; quick 60)")
    ap.add_argument(
        "--plugins", default="all", help="all (installed first-party plugins), none, or a list"
    )
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument(
        "--skip",
        default="",
        help="comma-separated sections to leave out: "
        "health,hot,history,events,contention,scale,profile,soak,audit",
    )
    ap.add_argument("--no-pgbench", action="store_true")
    ap.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    ap.add_argument("--out", default=str(BENCH / "results"))
    args = ap.parse_args()
    skip = {x.strip() for x in args.skip.split(",") if x.strip()} | (
        {"profile"} if args.no_profile else set()
    )
    ADMIN_KEY = args.admin_key

    sizes = dict(QUICK if args.quick else FULL)
    if args.soak is not None:
        sizes["soak"] = args.soak
    if args.soak_seconds is not None:
        sizes["soak_seconds"] = args.soak_seconds
    started = time.time()
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": git_commit(),
        "machine": machine(),
        "mode": "quick" if args.quick else "full",
        "client": {
            "engine": engine_name(),
            "processes": args.clients or 1,
            "processes_for_health": args.clients or max(2, cpu_count()),
        },
        "workloads": {},
    }
    workdir = Path(tempfile.mkdtemp(prefix="fulmen-bench-"))
    cluster: Cluster | None = None
    if args.url:
        urls, pids, db_url = [u.rstrip("/") for u in args.url], args.pid or [], args.database_url
        SERVER_PIDS[:] = pids
        DB_PID[0] = postmaster_pid(db_url) if db_url.startswith("postgres") else None
        DB_NAME[0] = database_name(db_url)
        report["target"] = {"urls": urls, "external": True}
    else:
        cluster = Cluster(args.db, args.processes, workdir, args.redis_url, args.plugins)
        log(
            f"starting {args.processes} server process(es) on {args.db} (plugins: {cluster.plugins or 'none'})"
        )
        cluster.start()
        urls, pids, db_url = cluster.urls, cluster.pids, cluster.db_url
        SERVER_PIDS[:] = pids
        DB_PID[0] = postmaster_pid(db_url) if args.db == "postgres" else "in server"
        DB_NAME[0] = database_name(db_url)
        report["target"] = {
            "urls": urls,
            "processes": args.processes,
            "plugins": cluster.plugins,
            "redis": cluster.redis_url if args.processes > 1 else None,
            "workdir": str(workdir),
        }
    report["database"] = (
        database_version(db_url) if db_url else "unknown (--url without --database-url)"
    )
    report["db_cpu"] = (
        {"postmaster_pid": DB_PID[0], "measured": "/proc: the postmaster, its auxiliary processes and "
            "this database's backends"}
        if isinstance(DB_PID[0], int)
        else {"measured": "in server (SQLite runs in the server process)"}
        if DB_PID[0] == "in server"
        else {"measured": None, "note": "database not on this machine or /proc not readable"}
    )
    if DB_PID[0] is None:
        log("database CPU not measured (database not on this machine or /proc not readable)")
    w = report["workloads"]
    memory: dict[str, Any] = {"pids": pids, "samples": []}
    report["memory"] = memory

    def mem(label: str) -> None:
        memory["samples"].append({"at": label, "rss_mb": [rss_mb(p) for p in pids]})

    def record(res: LoadResult, key: str | None = None) -> dict[str, Any]:
        s = res.summary()
        cpu = getattr(res, "server_cpu_s", None)
        if cpu is not None and res.requests:
            s["server_cpu_ms_per_request"] = round(1000 * cpu / res.requests, 2)
            s["server_cpu_pct_of_core"] = (
                round(100 * cpu / res.elapsed_s, 1) if res.elapsed_s else None
            )
        s["db_cpu_ms_per_request"] = db_cpu_per_request(res)
        s["other_work_cores"] = getattr(res, "other_work_cores", None)
        w[key or res.name] = s
        log(
            f"{res.name}: {s['ok']} ok, {s['errors']} errors, {s['throughput_per_s']}/s, "
            f"p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, client CPU {s['client_cpu_pct_of_core']}% of a core, "
            f"server CPU {s.get('server_cpu_ms_per_request')} ms/request, "
            f"database CPU {s['db_cpu_ms_per_request'] or 'not measured'}"
            f"{' ms/request' if isinstance(s['db_cpu_ms_per_request'], float) else ''}, "
            f"other work on the machine {s['other_work_cores']} cores"
        )
        return s

    # One client process drives the database workloads with a fifth of a core
    # (reported per workload); more would only take CPU from the server and
    # PostgreSQL on a small machine. The /health ceiling needs one per core.
    clients = args.clients or 1
    health_clients = args.clients or max(2, cpu_count())
    try:
        time.sleep(2)
        mem("idle after start")
        api = Api(urls, ADMIN_KEY)

        # 1. ceilings: the no-op endpoint
        report["ceilings"] = {}
        if "health" not in skip:
            log("ceiling: GET /health")
            record(
                load(
                    "health c32",
                    [Req("GET", urls[i % len(urls)] + "/health") for i in range(sizes["health"])],
                    32,
                    health_clients,
                    max_seconds=sizes["cap"],
                )
            )
            report["ceilings"]["health_wrk"] = wrk_health(urls[0])
        if not args.no_pgbench and args.db == "postgres":
            log("ceiling: pgbench -N")
            report["ceilings"]["pgbench"] = pgbench_ceiling()

        # 2. accounts
        log("accounts")
        res = load(
            "accounts c1",
            [
                Req("POST", urls[i % len(urls)] + "/api/v1/account", {}, {"name": f"bench {i}"})
                for i in range(sizes["accounts"])
            ],
            1,
            1,
            keep_bodies=True,
            max_seconds=sizes["cap"],
        )
        record(res)
        made = [r[1] for r in res.responses if r and r[0] == 201]
        while len(made) < 128:
            made.append(api.account("bench extra"))
        payers, payees = made[:64], made[64:128]
        for p in payers:
            api.fund(p["id"], 10_000_000)

        # 3. invoices at concurrency 8 (also the invoices the payment runs use)
        counts = {c: sizes[f"pay_c{c}"] for c in (1, 8, 32, 64)}
        total = sum(counts.values())
        log(f"invoices c8 x {total}")
        res = load(
            "invoices c8",
            invoice_requests(urls, payees, total, 1, "bench"),
            8,
            clients,
            keep_bodies=True,
            max_seconds=sizes["cap"] * 1.5,
        )
        record(res)
        bolt11s = [r[1]["bolt11"] for r in res.responses if r and r[0] == 201]
        if len(bolt11s) < total:  # the time cap hit: fewer payments in each run, same proportions
            counts = {c: max(10, n * len(bolt11s) // total) for c, n in counts.items()}
            short = sum(counts.values()) - len(bolt11s)
            if short > 0:
                bolt11s += make_invoices(urls, payees, short, 1, "bench more", clients)
        mem("after invoices")

        # 4. internal payments at 1, 8, 32, 64
        counters_before = pg_counters(db_url) if db_url.startswith("postgres") else None
        offset = 0
        waits: dict[str, Any] = {}
        for c in (1, 8, 32, 64):
            chunk = bolt11s[offset : offset + counts[c]]
            offset += counts[c]
            log(f"payments c{c} x {len(chunk)}")
            sampler = PgWaitSampler(db_url) if db_url.startswith("postgres") else None
            if sampler:
                sampler.__enter__()
            try:
                record(
                    load(
                        f"payments c{c}",
                        pay_requests(urls, payers, chunk),
                        c,
                        1 if c == 1 else clients,
                        ok_status=(201,),
                        max_seconds=sizes["cap"],
                    )
                )
            finally:
                if sampler:
                    sampler.__exit__()
                    waits[f"c{c}"] = sampler.summary()
        if waits:
            report["pg_sessions_during_payments"] = waits
        if counters_before:
            after = pg_counters(db_url)
            n = sum(w[f"payments c{c}"]["ok"] for c in counts)
            report["db_work_per_payment"] = {
                k: round((after[k] - counters_before.get(k, 0)) / n, 2)
                for k in after
                if "." not in k or after[k] - counters_before.get(k, 0) > 0
            }
            report["db_work_per_payment"]["note"] = (
                "pg_stat_database deltas over the payment runs divided by "
                "payments (includes the key lookup and autocommit reads)"
            )
        mem("after payments")

        # 4b. scale-out: the same c32/c64 load on one process, then spread over all
        if len(urls) > 1 and "scale" not in skip:
            scale: dict[str, Any] = {}
            for c in (32,):
                n = sizes["scale_n"]
                inv = make_invoices(urls, payees, 2 * n, 1, f"scale c{c}", clients)
                log(f"scale: payments c{c} on 1 process, then on {len(urls)}")
                one = load(
                    f"payments c{c} on 1 process",
                    pay_requests(urls[:1], payers, inv[:n]),
                    c,
                    clients,
                    ok_status=(201,),
                    max_seconds=sizes["cap"],
                )
                alln = load(
                    f"payments c{c} on {len(urls)} processes",
                    pay_requests(urls, payers, inv[n:]),
                    c,
                    clients,
                    ok_status=(201,),
                    max_seconds=sizes["cap"],
                )
                scale[f"c{c}"] = {
                    "1": record(one, one.name),
                    str(len(urls)): record(alln, alln.name),
                }
            report["scale_out"] = scale

        # 4c. a hot wallet: every payer pays the same wallet (a shop)
        if "hot" not in skip:
            shop = api.account("hot wallet shop")
            inv = make_invoices(urls, [shop], sizes["hot"], 1, "hot", clients)
            log(f"hot wallet: payments c32 x {len(inv)}, all to one wallet")
            before_msat = api.balance_msat(shop)
            sampler = PgWaitSampler(db_url) if db_url.startswith("postgres") else None
            if sampler:
                sampler.__enter__()
            try:
                hot = load(
                    "hot wallet c32",
                    pay_requests(urls, payers, inv),
                    32,
                    clients,
                    ok_status=(201,),
                    max_seconds=sizes["cap"],
                )
            finally:
                if sampler:
                    sampler.__exit__()
                    report["pg_sessions_during_hot_wallet"] = sampler.summary()
            record(hot)
            credited = api.balance_msat(shop) - before_msat
            report["hot_wallet_credited_ok"] = credited == hot.ok * 1000
            mem("after hot wallet")

        # 5. history page on a wallet with 100k payments
        if "history" not in skip:
            history(api, urls, db_url, sizes, clients, report, record)

        # 6. pay request -> WebSocket event
        if "events" not in skip:
            log("event latency")
            report["event_latency"] = event_latency(urls, sizes["events"])

        # 7. contention
        if "contention" not in skip:
            log("contention check")
            report["contention"] = contention_check(api, urls, clients, sizes["contention_k"])
            log(
                f"contention: {report['contention']['successes']} of "
                f"{report['contention']['concurrent_payments']} succeeded (expected "
                f"{report['contention']['expected_successes']}), pass={report['contention']['pass']}"
            )

        # 8. profile under the c32 payment load (a separate run, so sampling does not skew the figures)
        if "profile" not in skip and pids:
            n = sizes["profile_payments"]
            inv = make_invoices(urls, payees, n, 1, "profile", clients)
            log(f"profiling pid {pids[0]} under payments c32 x {n}")
            cpu0 = proc_cpu_s(pids[0])
            seconds = 12 if args.quick else 20
            report["profile"] = profile_under_load(
                pids[0],
                seconds,
                lambda: load(
                    "payments c32 (profiled)",
                    pay_requests(urls, payers, inv),
                    32,
                    clients,
                    ok_status=(201,),
                    max_seconds=seconds - 2,
                ),
            )
            cpu1 = proc_cpu_s(pids[0])
            if cpu0 is not None and cpu1 is not None:
                paid = report["profile"].get("load", {}).get("ok") or 0
                if paid:
                    report["profile"]["server_cpu_ms_per_payment"] = round(
                        1000 * (cpu1 - cpu0) / paid, 2
                    )

        # 9. memory soak
        if db_url and pids and "soak" not in skip:
            soak_n = sizes["soak"]
            soak_wallet = api.account("bench soak payee")
            log(
                f"soak: seeding {soak_n} invoices, then paying them (cap {sizes['soak_seconds']} s)"
            )
            soak_bolt11s = seed_invoices(db_url, soak_wallet["id"], soak_n)
            done, errors, t0 = 0, 0, time.perf_counter()
            chunk_n = 5000 if not args.quick else 2500
            soak_runs = []
            mem("soak start")
            cpu0 = [proc_cpu_s(p) for p in pids]
            while done < soak_n and time.perf_counter() - t0 < sizes["soak_seconds"]:
                chunk = soak_bolt11s[done : done + chunk_n]
                left = sizes["soak_seconds"] - (time.perf_counter() - t0)
                res = load(
                    "soak",
                    pay_requests(urls, payers, chunk),
                    32,
                    clients,
                    ok_status=(201,),
                    max_seconds=max(1.0, left),
                )
                done += res.requests
                errors += res.errors
                soak_runs.append(res.summary())
                mem(f"soak after {done}")
            elapsed = time.perf_counter() - t0
            cpu1 = [proc_cpu_s(p) for p in pids]
            rss_series = [s["rss_mb"] for s in memory["samples"] if s["at"].startswith("soak")]
            memory["soak"] = {
                "payments": done,
                "errors": errors,
                "seconds": round(elapsed, 1),
                "throughput_per_s": round(done / elapsed, 1) if elapsed else 0,
                "p50_ms_per_chunk": [r["p50_ms"] for r in soak_runs],
                "p99_ms_per_chunk": [r["p99_ms"] for r in soak_runs],
                "server_cpu_ms_per_payment": [
                    round(1000 * (b - a) / done, 2)
                    for a, b in zip(cpu0, cpu1)
                    if a is not None and b is not None
                ],
                "capped_by_time": done < soak_n,
            }
            if len(rss_series) >= 2:
                memory["growth_mb"] = [
                    round(b - a, 1) for a, b in zip(rss_series[0], rss_series[-1])
                ]
        mem("end")

        # 10. audit
        if db_url and "audit" not in skip:
            log("fulmen audit")
            report["audit"] = audit(db_url, workdir / "data")
    finally:
        if cluster:
            report["server_exit_codes"] = cluster.stop()
    report["duration_s"] = round(time.time() - started, 1)
    report["budgets"] = check_budgets(report)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = (
        out_dir
        / f"{time.strftime('%Y%m%dT%H%M%S')}-{args.db}-{len(urls)}p{'-quick' if args.quick else ''}.json"
    )
    path.write_text(json.dumps(report, indent=2, default=str))
    print_table(report)
    print(json.dumps(report, default=str))
    log(f"wrote {path}")
    return 0


def check_budgets(report: dict[str, Any]) -> list[dict[str, Any]]:
    w = report["workloads"]
    out = []
    for name, workload, metric, op, limit in BUDGETS + LIGHT_BUDGETS:
        value = w.get(workload, {}).get(metric)
        passed = None if value is None else (value <= limit if op == "<=" else value >= limit)
        out.append({"budget": name, "value": value, "pass": passed})
    errors = sum(v.get("errors", 0) for k, v in w.items() if k != "contention")
    soak_errors = report.get("memory", {}).get("soak", {}).get("errors", 0)
    out.append(
        {
            "budget": "zero errors (all workloads and soak)",
            "value": errors + soak_errors,
            "pass": errors + soak_errors == 0,
        }
    )
    idle = report["memory"]["samples"][0]["rss_mb"] if report["memory"]["samples"] else []
    idle_max = max([x for x in idle if x is not None], default=None)
    out.append(
        {
            "budget": f"idle RSS < {RSS_BUDGET_MB} MB",
            "value": idle_max,
            "pass": None if idle_max is None else idle_max < RSS_BUDGET_MB,
        }
    )
    growth = report["memory"].get("growth_mb")
    out.append(
        {
            "budget": f"no RSS growth over the soak (< {RSS_GROWTH_MB} MB)",
            "value": growth,
            "pass": None if growth is None else max(growth) < RSS_GROWTH_MB,
        }
    )
    contention = report.get("contention")
    if contention:
        out.append(
            {
                "budget": "contention: successes == floor(S/amount), never negative",
                "value": f"{contention['successes']}/{contention['expected_successes']}",
                "pass": contention["pass"],
            }
        )
    if "audit" in report:
        out.append(
            {
                "budget": "fulmen audit exact",
                "value": report["audit"]["exit_code"],
                "pass": report["audit"]["ok"],
            }
        )
    return out


def print_table(report: dict[str, Any]) -> None:
    m = report["machine"]
    print()
    print(
        f"Fulmen benchmark  commit {report['commit']}  {report['database']}  "
        f"{len(report['target']['urls'])} process(es)  mode {report['mode']}"
    )
    print(
        f"machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('ram_gb')} GB RAM, "
        f"load at start {' '.join(m.get('loadavg_at_start', []))}"
    )
    print()
    cols = [
        "requests",
        "errors",
        "throughput_per_s",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "client_cpu_pct_of_core",
        "server_cpu_ms_per_request",
        "db_cpu_ms_per_request",
    ]
    print(
        f"{'workload':30} {'n':>6} {'err':>4} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
        f"{'client%':>7} {'srv ms/req':>10} {'db ms/req':>10}"
    )
    for name, s in report["workloads"].items():
        v = [s.get(c) for c in cols]
        db = "n/m" if v[8] is None else v[8]
        print(
            f"{name:30} {v[0]:>6} {v[1]:>4} {v[2]:>8} {v[3]:>8} {v[4]:>8} {v[5]:>8} {v[6]:>7} "
            f"{str(v[7]):>10} {str(db):>10}"
        )
    c = report.get("ceilings", {})
    print()
    if c.get("health_wrk"):
        print(f"ceiling GET /health (wrk): {c['health_wrk'].get('throughput_per_s')} req/s")
    if c.get("pgbench"):
        print(f"ceiling pgbench -N: {c['pgbench'].get('tps')} tps")
    if report.get("db_work_per_payment"):
        work = {k: v for k, v in report["db_work_per_payment"].items() if "." not in k}
        print(f"PostgreSQL work per payment: {work}")
        scans = {
            k: v for k, v in report["db_work_per_payment"].items() if k.endswith("seq_tup_read")
        }
        print(f"  rows read by sequential scans per payment: {scans}")
    ev = report.get("event_latency")
    if ev:
        print(f"event latency: {ev}")
    mem = report["memory"]
    if mem["samples"]:
        print(
            f"RSS MB: idle {mem['samples'][0]['rss_mb']}, end {mem['samples'][-1]['rss_mb']}, "
            f"soak {mem.get('soak', {}).get('payments')} payments, growth {mem.get('growth_mb')}"
        )
    prof = report.get("profile")
    if prof and "self_by_library_pct" in prof:
        print(f"profile (self time by library, % of samples): {prof['self_by_library_pct']}")
    print()
    for b in report["budgets"]:
        mark = {True: "PASS", False: "FAIL", None: "n/a "}[b["pass"]]
        print(f"  {mark}  {b['budget']}: {b['value']}")
    print()


if __name__ == "__main__":
    raise SystemExit(main())
