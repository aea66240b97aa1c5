"""Backup and restore time and file size for N payments, on SQLite and PostgreSQL.

    uv run python bench/backup_figures.py [--payments 100000] [--db sqlite,postgres]

For each database: a fresh one with every installed first-party plugin, one
wallet with N settled payments and their ledger entries (bench/seed.py),
then `write_backup` (plain and encrypted) and `restore` into a second fresh
database of the same kind, each timed. Prints one JSON object per database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fulmen import backup as backups  # noqa: E402
from fulmen import db  # noqa: E402
from fulmen.host import Host  # noqa: E402
from fulmen.plugins import discover  # noqa: E402
from fulmen.settings import Settings  # noqa: E402
from fulmen.testing import create_postgres_database, drop_postgres_database  # noqa: E402
from seed import seed_history  # noqa: E402

PASS = "benchmark passphrase"


def make_host(data_dir: Path, url: str) -> Host:
    settings = Settings(data_dir=data_dir, database_url=url, admin_key="bench-admin-key",
                        db_pool_min_size=1)
    return Host(settings, plugins=discover(None))


async def measure(kind: str, n: int, tmp: Path) -> dict[str, Any]:
    if kind == "postgres":
        src_url, dst_url = await create_postgres_database(), await create_postgres_database()
    else:
        src_url, dst_url = f"sqlite:///{tmp / 'src.sqlite3'}", f"sqlite:///{tmp / 'dst.sqlite3'}"
    result: dict[str, Any] = {"database": kind, "payments": n}
    try:
        host = make_host(tmp / "src", src_url)
        await db.open_engine(host.engine, 2, 1)
        try:
            await host.migrate()
            _, _, wallet = await host.wallets.create_account("bench")
            await asyncio.to_thread(seed_history, src_url, wallet.id, n)
            for label, passphrase in (("plain", None), ("encrypted", PASS)):
                path = tmp / f"{kind}-{label}.fulmen"
                t0 = time.perf_counter()
                summary = await backups.write_backup(host, path, passphrase)
                result[f"backup_{label}_seconds"] = round(time.perf_counter() - t0, 1)
                result[f"file_{label}_bytes"] = path.stat().st_size
            result["rows"] = sum(t["rows"] for t in summary.tables.values())
        finally:
            await db.close_engine(host.engine)
        target = make_host(tmp / "dst", dst_url)
        await db.open_engine(target.engine, 2, 1)
        try:
            t0 = time.perf_counter()
            report = await backups.restore(target, tmp / f"{kind}-encrypted.fulmen", PASS)
            result["restore_seconds"] = round(time.perf_counter() - t0, 1)
            result["audit_ok"] = not report.audit_mismatches
        finally:
            await db.close_engine(target.engine)
    finally:
        if kind == "postgres":
            await drop_postgres_database(src_url)
            await drop_postgres_database(dst_url)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument("--db", default="sqlite,postgres")
    args = parser.parse_args()
    for kind in args.db.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(asyncio.run(measure(kind, args.payments, Path(tmp)))), flush=True)


if __name__ == "__main__":
    main()
