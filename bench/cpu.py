"""CPU accounting from /proc, core pinning, and the CPU model of a payment.

`tree_cpu_s` sums the CPU of a process and its children: for PostgreSQL, the
postmaster and every backend and auxiliary process it forked, plus what
children that already exited used (the kernel adds a reaped child's time to
its parent's cutime/cstime). `postmaster_pid` finds the postmaster of a
database on this machine (None when it is remote or /proc is not readable).

The model: a payment costs `server_ms` of CPU in the host processes and
`db_ms` in PostgreSQL; a set of cores serves at most cores * 1000 / ms
payments a second, so throughput ~ min(server cores / server_ms,
db cores / db_ms) while both stay CPU-bound.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PROC = Path("/proc")
LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}


def stat_fields(pid: int, proc: Path = PROC) -> list[str] | None:
    """/proc/<pid>/stat after the command name: fields[0] is the state, [1]
    the parent pid, [11]/[12] utime/stime, [13]/[14] cutime/cstime (ticks)."""
    try:
        return (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def children(pid: int, proc: Path = PROC) -> list[int]:
    """Pids whose parent is `pid` (a scan of /proc)."""
    out = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            fields = stat_fields(int(entry.name), proc)
            if fields and len(fields) > 1 and fields[1] == str(pid):
                out.append(int(entry.name))
    return out


def tree_cpu_s(root: int, proc: Path = PROC, ticks: int | None = None) -> float | None:
    """utime+stime+cutime+cstime of `root` plus utime+stime of its live
    children, in seconds; None when `root` is gone or unreadable."""
    ticks = ticks or os.sysconf("SC_CLK_TCK")
    fields = stat_fields(root, proc)
    if not fields or len(fields) < 15:
        return None
    try:
        total = sum(int(fields[i]) for i in (11, 12, 13, 14))
        for child in children(root, proc):
            f = stat_fields(child, proc)
            if f and len(f) > 12:
                total += int(f[11]) + int(f[12])
    except ValueError:
        return None
    return total / ticks


def is_local(db_url: str) -> bool:
    host = urlsplit(db_url).hostname or ""
    return host in LOCAL_HOSTS or host.startswith("/")


def postmaster_pid(db_url: str) -> int | None:
    """The postmaster serving `db_url`, when it runs on this machine and its
    /proc entry is readable: the parent of this connection's backend."""
    if not db_url.startswith(("postgres://", "postgresql://")) or not is_local(db_url):
        return None
    import asyncpg

    async def parent_of_backend() -> int | None:
        conn = await asyncpg.connect(db_url)
        try:  # read while the backend lives
            fields = stat_fields(int(await conn.fetchval("SELECT pg_backend_pid()")))
            return int(fields[1]) if fields else None
        finally:
            await conn.close()

    try:
        parent = asyncio.run(parent_of_backend())
    except Exception:
        return None
    if parent is None:
        return None
    try:
        comm = (PROC / str(parent) / "comm").read_text().strip()
    except OSError:
        return None
    if not comm.startswith(("postgres", "postmaster")) or tree_cpu_s(parent) is None:
        return None
    return parent


# --- pinning -------------------------------------------------------------------------------


def threads(pid: int, proc: Path = PROC) -> list[int]:
    try:
        return [int(t.name) for t in (proc / str(pid) / "task").iterdir()]
    except OSError:
        return []


def pin(pids: list[int], cores: set[int]) -> int:
    """Set the affinity of every thread of `pids`; returns how many were set
    (a process that exited meanwhile is skipped). New threads and forked
    children inherit the affinity."""
    n = 0
    for pid in pids:
        for tid in threads(pid) or [pid]:
            try:
                os.sched_setaffinity(tid, cores)
                n += 1
            except (ProcessLookupError, PermissionError):
                pass
    return n


def postgres_pids(postmaster: int) -> list[int]:
    return [postmaster, *children(postmaster)]


# --- the model -------------------------------------------------------------------------------


def predicted_per_s(
    server_cores: float, server_ms: float, db_cores: float, db_ms: float
) -> float:
    """Payments per second when both sides are CPU-bound: the slower side wins."""
    return min(1000 * server_cores / server_ms, 1000 * db_cores / db_ms)


def projection(cores: int, server_ms: float, db_ms: float) -> dict[str, Any]:
    """`cores` split between host processes (one per core) and PostgreSQL in the
    ratio of their CPU per payment (rounded, at least one each); the load
    generator runs elsewhere."""
    host = max(1, min(cores - 1, round(cores * server_ms / (server_ms + db_ms))))
    db = cores - host
    return {
        "cores": cores,
        "host_processes": host,
        "db_cores": db,
        "payments_per_s": round(predicted_per_s(host, server_ms, db, db_ms)),
        "bound_by": "host" if host / server_ms <= db / db_ms else "database",
    }
