"""Load generation in several client processes.

A Python HTTP client spends a fair share of a millisecond of CPU per request,
so one client process would cap what we measure. `run_load` splits a fixed
list of requests over several processes (forked), each with its own event loop
and keep-alive HTTP client (aiohttp when installed, else httpx), runs them at
a fixed total concurrency, and returns every latency, every status, and the
CPU the client processes used, so a report can show the client was not the
bottleneck.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing as mp
import os
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Req:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # JSON-serialisable, or None

    def encoded(self) -> tuple[str, str, dict[str, str], bytes | None]:
        headers = dict(self.headers)
        data = None
        if self.body is not None:
            data = json.dumps(self.body).encode()
            headers["Content-Type"] = "application/json"
        return self.method, self.url, headers, data


@dataclass
class LoadResult:
    name: str
    concurrency: int
    requests: int
    unsent: int
    ok: int
    errors: int
    error_samples: list[str]
    elapsed_s: float
    latencies_ms: list[float]
    client_cpu_s: float
    client_processes: int
    engine: str
    responses: list[Any] = field(default_factory=list, repr=False)
    probes: list[Any] = field(default_factory=list, repr=False)

    @property
    def throughput(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        return {
            "name": self.name,
            "concurrency": self.concurrency,
            "requests": self.requests,
            "unsent_time_cap": self.unsent,
            "ok": self.ok,
            "errors": self.errors,
            "error_samples": self.error_samples[:5],
            "elapsed_s": round(self.elapsed_s, 3),
            "throughput_per_s": round(self.throughput, 1),
            "p50_ms": round(percentile(lat, 50), 2),
            "p90_ms": round(percentile(lat, 90), 2),
            "p99_ms": round(percentile(lat, 99), 2),
            "max_ms": round(lat[-1], 2) if lat else 0.0,
            "mean_ms": round(statistics.fmean(lat), 2) if lat else 0.0,
            "client_cpu_s": round(self.client_cpu_s, 2),
            # share of one core the client processes used while the load ran
            "client_cpu_pct_of_core": round(100 * self.client_cpu_s / self.elapsed_s, 1)
            if self.elapsed_s
            else 0.0,
            "client_processes": self.client_processes,
            "client_engine": self.engine,
        }


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def engine_name() -> str:
    try:
        import aiohttp  # noqa: F401

        return "aiohttp"
    except ImportError:
        return "httpx"


async def _drive(
    chunk: list[tuple], concurrency: int, start_at: float, keep: bool, max_seconds: float | None
) -> dict[str, Any]:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        pass
    engine = engine_name()
    results: list[tuple[float, float, int, Any]] = [None] * len(chunk)  # type: ignore[list-item]
    next_index = 0

    if engine == "aiohttp":
        import aiohttp

        connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
        session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=60)
        )

        async def send(method, url, headers, data):
            async with session.request(method, url, headers=headers, data=data) as resp:
                body = await resp.read()
                return resp.status, body

        async def close():
            await session.close()
    else:
        import httpx

        client = httpx.AsyncClient(
            timeout=60,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )

        async def send(method, url, headers, data):
            resp = await client.request(method, url, headers=headers, content=data)
            return resp.status_code, resp.content

        async def close():
            await client.aclose()

    async def worker() -> None:
        nonlocal next_index
        while next_index < len(chunk):
            if deadline is not None and time.perf_counter() > deadline:
                return  # time cap: the rest is not sent (counted as unsent, not as errors)
            i = next_index
            next_index += 1
            method, url, headers, data = chunk[i]
            t0 = time.perf_counter()
            try:
                status, body = await send(method, url, headers, data)
            except Exception as exc:  # a transport error is an error, not a crash of the run
                status, body = 0, repr(exc).encode()
            t1 = time.perf_counter()
            results[i] = (t0, t1, status, body if (keep or status >= 300 or status == 0) else None)

    # Open the keep-alive connections before the clock starts (as a load
    # balancer's pool would have them): connection set-up is not what the
    # workloads measure, and it would land on the first burst of requests.
    if chunk:
        await asyncio.gather(
            *(_warm(send, chunk[0][1]) for _ in range(max(1, min(concurrency, len(chunk)))))
        )
    delay = start_at - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.perf_counter()
    deadline = wall0 + max_seconds if max_seconds else None
    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(chunk))))))
    wall1 = time.perf_counter()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    await close()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    out = []
    for item in results:
        if item is None:
            out.append(None)
            continue
        t0, t1, status, body = item
        if isinstance(body, bytes):
            body = body.decode(errors="replace")
        out.append(((t1 - t0) * 1000, status, body))
    return {"wall": wall1 - wall0, "cpu": cpu, "results": out, "engine": engine}


async def _warm(send, url: str) -> None:
    """One `GET /health` on a fresh connection (failures are left to the run)."""
    parts = urlsplit(url)
    try:
        await send("GET", f"{parts.scheme}://{parts.netloc}/health", {}, None)
    except Exception:
        pass


def _child(args: tuple) -> dict[str, Any]:
    try:
        import uvloop

        return uvloop.run(_drive(*args))
    except ImportError:
        return asyncio.run(_drive(*args))


def run_load(
    name: str,
    requests: list[Req],
    concurrency: int,
    processes: int = 2,
    keep_bodies: bool = False,
    ok_status: tuple[int, ...] = (200, 201),
    max_seconds: float | None = None,
    probe: Callable[[], Any] | None = None,
) -> LoadResult:
    """Send every request once, `concurrency` in flight in total, spread over
    up to `processes` client processes. Responses are returned in request order
    when `keep_bodies` (parsed JSON where possible). With `max_seconds`, no
    request starts after that time; requests not sent are left out (`unsent`)
    and their responses are None. `probe` is called when the clients start
    sending and again when they are done (results in `probes`), e.g. to read
    the machine's CPU counters over just that time."""
    processes = max(1, min(processes, concurrency, len(requests)))
    encoded = [r.encoded() for r in requests]
    # Request i goes to process i % processes; concurrency split as evenly as possible.
    chunks = [encoded[p::processes] for p in range(processes)]
    conc = [
        concurrency // processes + (1 if p < concurrency % processes else 0)
        for p in range(processes)
    ]
    start_at = time.time() + 0.5 + 0.05 * processes
    ctx = mp.get_context("fork")
    probes: list[Any] = []
    with ctx.Pool(processes) as pool:
        pending = pool.map_async(
            _child,
            [(chunks[p], conc[p], start_at, keep_bodies, max_seconds) for p in range(processes)],
        )
        if probe is not None:
            pending.wait(max(0.0, start_at - time.time()))
            probes.append(probe())
        parts = pending.get()
        if probe is not None:
            probes.append(probe())
    latencies: list[float] = []
    errors = 0
    samples: list[str] = []
    responses: list[Any] = [None] * len(requests)
    unsent = 0
    for p, part in enumerate(parts):
        for j, item in enumerate(part["results"]):
            if item is None:
                unsent += 1
                continue
            ms, status, body = item
            if status in ok_status:
                latencies.append(ms)
            else:
                errors += 1
                if len(samples) < 5:
                    samples.append(f"{status}: {str(body)[:200]}")
            if keep_bodies:
                try:
                    body = json.loads(body) if body else None
                except ValueError:
                    pass
                responses[p + j * processes] = (status, body)
    return LoadResult(
        name=name,
        concurrency=concurrency,
        requests=len(requests) - unsent,
        unsent=unsent,
        ok=len(latencies),
        errors=errors,
        error_samples=samples,
        elapsed_s=max(part["wall"] for part in parts),
        latencies_ms=latencies,
        client_cpu_s=sum(part["cpu"] for part in parts),
        client_processes=processes,
        engine=parts[0]["engine"],
        responses=responses,
        probes=probes,
    )


def cpu_count() -> int:
    return os.cpu_count() or 1
