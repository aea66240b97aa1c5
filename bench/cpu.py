"""CPU accounting from /proc, core pinning, and the CPU model of a payment.

`cpu_snapshot` reads the CPU of a process and its children: for PostgreSQL,
the postmaster and every backend and auxiliary process (WAL writer,
checkpointer, ...) it forked, optionally without the client backends of other
databases; `cpu_used` is the CPU spent between two snapshots.
`postmaster_pid` finds the postmaster of a database on this machine (None
when it is remote or /proc is not readable).

Projection for 2, 4, 8 and 16 cores: `python bench/cpu.py SERVER_MS DB_MS [FANOUT_MS]`.

The model: a payment costs `server_ms` of CPU in the host processes and
`db_ms` in PostgreSQL; a set of cores serves at most cores * 1000 / ms
payments a second, so throughput ~ min(server cores / server_ms,
db cores / db_ms) while both stay CPU-bound.
"""

from __future__ import annotations

import asyncio
import os
import re
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


CLIENT_BACKEND = re.compile(r"\(\d+\)|\[local\]")  # "host(port)" in a client backend's title


def title(pid: int, proc: Path = PROC) -> str:
    try:
        return (proc / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def cpu_snapshot(
    root: int, database: str | None = None, proc: Path = PROC, ticks: int | None = None
) -> dict[int, float] | None:
    """utime+stime in seconds of `root` and each of its children, by pid; None
    when `root` is gone or unreadable. With `database`, client backends of
    other databases (their title names the client's "host(port)" but not
    `database`) are left out: another user's work on a shared server."""
    ticks = ticks or os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for pid in [root, *children(root, proc)]:
        fields = stat_fields(pid, proc)
        if not fields or len(fields) < 13:
            if pid == root:
                return None
            continue
        if pid != root and database is not None:
            name = title(pid, proc)
            if CLIENT_BACKEND.search(name) and f" {database} " not in f" {name} ":
                continue
        try:
            out[pid] = (int(fields[11]) + int(fields[12])) / ticks
        except ValueError:
            continue
    return out


def cpu_used(before: dict[int, float] | None, after: dict[int, float] | None) -> float | None:
    """CPU seconds between two snapshots: what each process present at the end
    used since the start (all of it, for a process started meanwhile). A
    process that exited meanwhile is not counted."""
    if before is None or after is None:
        return None
    return sum(max(0.0, t - before.get(pid, 0.0)) for pid, t in after.items())


def is_local(db_url: str) -> bool:
    host = urlsplit(db_url).hostname or ""
    return host in LOCAL_HOSTS or host.startswith("/")


def database_name(db_url: str) -> str | None:
    return urlsplit(db_url).path.lstrip("/") or None


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
    if not comm.startswith(("postgres", "postmaster")) or cpu_snapshot(parent) is None:
        return None
    return parent


def core_times(proc: Path = PROC) -> dict[int, tuple[int, int]]:
    """Per core, (busy, total) ticks since boot from /proc/stat: busy is
    user+nice+system+irq+softirq+steal, total adds idle and iowait."""
    out: dict[int, tuple[int, int]] = {}
    try:
        lines = (proc / "stat").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in values[:8])
            busy = user + nice + system + irq + softirq + steal
            out[int(name[3:])] = (busy, busy + idle + iowait)
    return out


def busy_cores(
    before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]], cores: set[int]
) -> float | None:
    """How many of `cores` were busy on average between two `core_times`."""
    if not all(c in before and c in after for c in cores):
        return None
    return sum(
        (after[c][0] - before[c][0]) / max(1, after[c][1] - before[c][1]) for c in cores
    )


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


def projection(
    cores: int, server_ms: float, db_ms: float, fanout_ms: float = 0.0
) -> dict[str, Any]:
    """`cores` split between host processes (one per core) and PostgreSQL; the
    load generator runs elsewhere. Without `fanout_ms`: in the ratio of their
    CPU per payment (rounded, at least one core each). With it, every host
    process also spends `fanout_ms` on each payment made by another one (the
    events every process receives through Redis), so a payment costs
    server_ms + fanout_ms * (processes - 1) of host CPU, and the split is the
    one that serves the most payments."""

    def rate(host: int) -> float:
        return predicted_per_s(host, server_ms + fanout_ms * (host - 1), cores - host, db_ms)

    if fanout_ms:
        host = max(range(1, cores), key=rate) if cores > 1 else 1
    else:
        host = max(1, min(cores - 1, round(cores * server_ms / (server_ms + db_ms))))
    db = cores - host
    per_payment = server_ms + fanout_ms * (host - 1)
    return {
        "cores": cores,
        "host_processes": host,
        "db_cores": db,
        "host_ms_per_payment": round(per_payment, 3),
        "payments_per_s": round(rate(host)),
        "bound_by": "host" if host / per_payment <= db / db_ms else "database",
    }


if __name__ == "__main__":  # python bench/cpu.py SERVER_MS DB_MS [FANOUT_MS]: the projection
    import sys

    server, db, *rest = (float(a) for a in sys.argv[1:])
    for n in (2, 4, 8, 16):
        print(projection(n, server, db, rest[0] if rest else 0.0))
