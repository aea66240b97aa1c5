"""Turn a result file of bench/run.py into the Markdown used in docs/performance.md.

uv run python bench/markdown.py bench/results/<file>.json [...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def db_cell(s: dict) -> str:
    """The database's CPU per request: a figure, "in server" (SQLite), or
    "not measured" (a remote database, or a result file from before)."""
    v = s.get("db_cpu_ms_per_request")
    return "not measured" if v is None else str(v)


def render(path: Path) -> str:
    r = json.loads(path.read_text())
    m = r["machine"]
    t = r["target"]
    lines = [
        f"**{r['database']}, {len(t['urls'])} process(es)**, plugins {', '.join(t.get('plugins') or []) or 'none'}; "
        f"commit `{r['commit']}`, {r['started']}, {r['mode']} run ({r['duration_s']} s); "
        f"{m.get('cpu')} {m.get('cores')} cores, {m.get('ram_gb')} GB RAM, "
        f"load average at start {' '.join(m.get('loadavg_at_start', []))}; "
        f"client {r['client']['engine']} in {r['client']['processes']} processes.",
        "",
        "| workload | sent | errors | req/s | p50 ms | p90 ms | p99 ms | client CPU % of a core | server CPU ms/req | database CPU ms/req |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in r["workloads"].items():
        lines.append(
            f"| {name} | {s['requests']} | {s['errors']} | {s['throughput_per_s']} | {s['p50_ms']} | "
            f"{s['p90_ms']} | {s['p99_ms']} | {s['client_cpu_pct_of_core']} | "
            f"{s.get('server_cpu_ms_per_request', '')} | {db_cell(s)} |"
        )
    lines.append("")
    c = r.get("ceilings", {})
    if c.get("health_wrk"):
        lines.append(
            f"- Ceiling `GET /health` with wrk: {c['health_wrk'].get('throughput_per_s')} req/s"
        )
    if c.get("pgbench"):
        lines.append(
            f"- Ceiling `pgbench -c 32 -j 2 -T 10 -N`: {round(c['pgbench'].get('tps', 0))} tps "
            f"(average latency {c['pgbench'].get('latency_avg_ms')} ms)"
        )
    if r.get("db_work_per_payment"):
        w = r["db_work_per_payment"]
        lines.append(
            f"- PostgreSQL per payment: {w.get('xact_commit')} transactions, "
            f"{w.get('tup_inserted')} rows inserted, {w.get('tup_updated')} updated, "
            f"{w.get('tup_returned')} rows returned by scans"
        )
    ev = r.get("event_latency")
    if ev:
        lines.append(f"- Event latency (pay request → WebSocket event): `{json.dumps(ev)}`")
    ct = r.get("contention")
    if ct:
        lines.append(
            f"- Contention: {ct['successes']} of {ct['concurrent_payments']} succeeded "
            f"(expected {ct['expected_successes']}), statuses {ct['statuses']}, "
            f"lowest balance seen {ct['min_balance_seen_msat']} msat over {ct['balance_polls']} polls: "
            f"{'pass' if ct['pass'] else 'FAIL'}"
        )
    mem = r.get("memory", {})
    if mem.get("samples"):
        soak = mem.get("soak", {})
        lines.append(
            f"- RSS: idle {mem['samples'][0]['rss_mb']} MB, end {mem['samples'][-1]['rss_mb']} MB; "
            f"soak {soak.get('payments')} payments in {soak.get('seconds')} s "
            f"({soak.get('throughput_per_s')}/s, {soak.get('errors')} errors"
            f"{', stopped by the time cap' if soak.get('capped_by_time') else ''}), "
            f"growth over the soak {mem.get('growth_mb')} MB"
        )
    if r.get("audit"):
        lines.append(f"- `fulmen audit`: {'exact' if r['audit']['ok'] else 'MISMATCH'}")
    lines.append("")
    lines.append("| budget | value | result |")
    lines.append("|---|---|---|")
    for b in r["budgets"]:
        lines.append(
            f"| {b['budget']} | {b['value']} | {({True: 'PASS', False: 'FAIL', None: 'n/a'})[b['pass']]} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print("\n\n".join(render(Path(p)) for p in sys.argv[1:]))
