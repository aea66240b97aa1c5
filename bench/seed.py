"""Bulk rows written straight into the database, for set-up the benchmark
does not time.

`seed_history` gives a wallet N settled incoming payments, each with its
ledger entry, and raises the wallet's balance by their sum in the same
transaction, so `fulmen audit` stays exact. `seed_invoices` writes N pending
incoming invoices (no balance change) for the memory soak; their bolt11 text
is a unique placeholder, not a signed invoice: the host recognises its own
invoices by the hash of their text and never decodes them, so paying one runs
the same internal-payment path as a signed invoice (signing 100k real ones
would take minutes of CPU; see docs/performance.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import sqlite3
import time
from typing import Any

PAYMENT_COLUMNS = (
    "wallet_id",
    "out",
    "status",
    "payment_hash",
    "checking_id",
    "bolt11",
    "bolt11_hash",
    "amount_msat",
    "fee_msat",
    "fee_reserve_msat",
    "memo",
    "preimage",
    "expires_at",
    "webhook",
    "extra",
    "tag",
    "internal",
    "idempotency_key",
    "error",
    "created_at",
    "updated_at",
)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _rows(
    wallet_id: str, n: int, amount_msat: int, status: str, memo: str, prefix: str, spread_ms: int
) -> tuple[list[tuple], list[str]]:
    now = int(time.time() * 1000)
    tag = secrets.token_hex(4)
    rows, bolt11s = [], []
    for i in range(n):
        preimage = secrets.token_hex(32)
        payment_hash = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
        bolt11 = f"{prefix}{tag}{i:08d}"
        created = now - (n - i) * spread_ms
        rows.append(
            (
                wallet_id,
                False,
                status,
                payment_hash,
                payment_hash,
                bolt11,
                _sha(bolt11.lower()),
                amount_msat,
                0,
                0,
                memo,
                preimage,
                now + 7_200_000,
                None,
                "{}",
                None,
                False,
                None,
                None,
                created,
                created,
            )
        )
        bolt11s.append(bolt11)
    return rows, bolt11s


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://"))


async def _pg_seed(
    url: str, wallet_id: str, rows: list[tuple], credit_msat: int, memo: str
) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.copy_records_to_table(
                "fulmen_payment", records=rows, columns=PAYMENT_COLUMNS
            )
            if credit_msat:
                await conn.execute(
                    "INSERT INTO fulmen_ledger (wallet_id, amount_msat, kind, payment_id, reason, created_at) "
                    "SELECT wallet_id, amount_msat, 'payment', id, '', created_at FROM fulmen_payment "
                    "WHERE wallet_id = $1 AND memo = $2 AND NOT out",
                    wallet_id,
                    memo,
                )
                await conn.execute(
                    "UPDATE fulmen_wallet SET balance_msat = balance_msat + $1 WHERE id = $2",
                    credit_msat,
                    wallet_id,
                )
        await conn.execute("ANALYZE fulmen_payment")
    finally:
        await conn.close()


def _sqlite_seed(path: str, wallet_id: str, rows: list[tuple], credit_msat: int, memo: str) -> None:
    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            f"INSERT INTO fulmen_payment ({', '.join(PAYMENT_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in PAYMENT_COLUMNS)})",
            rows,
        )
        if credit_msat:
            conn.execute(
                "INSERT INTO fulmen_ledger (wallet_id, amount_msat, kind, payment_id, reason, created_at) "
                "SELECT wallet_id, amount_msat, 'payment', id, '', created_at FROM fulmen_payment "
                "WHERE wallet_id = ? AND memo = ? AND NOT out",
                (wallet_id, memo),
            )
            conn.execute(
                "UPDATE fulmen_wallet SET balance_msat = balance_msat + ? WHERE id = ?",
                (credit_msat, wallet_id),
            )
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    finally:
        conn.close()


def _seed(db: str, wallet_id: str, rows: list[tuple], credit_msat: int, memo: str) -> None:
    if _is_postgres(db):
        asyncio.run(_pg_seed(db, wallet_id, rows, credit_msat, memo))
    else:
        _sqlite_seed(db.removeprefix("sqlite:///"), wallet_id, rows, credit_msat, memo)


def seed_history(db: str, wallet_id: str, n: int, amount_msat: int = 1000) -> dict[str, Any]:
    """N settled incoming payments (one a second into the past) with ledger entries."""
    t0 = time.perf_counter()
    memo = f"bench history {secrets.token_hex(3)}"
    rows, _ = _rows(wallet_id, n, amount_msat, "success", memo, "lnbchist", 1000)
    _seed(db, wallet_id, rows, n * amount_msat, memo)
    return {"rows": n, "seconds": round(time.perf_counter() - t0, 2), "method": "bulk insert"}


def seed_invoices(db: str, wallet_id: str, n: int, amount_msat: int = 1000) -> list[str]:
    """N pending incoming invoices of `wallet_id`; returns their bolt11 text."""
    memo = f"bench soak {secrets.token_hex(3)}"
    rows, bolt11s = _rows(wallet_id, n, amount_msat, "pending", memo, "lnbcsoak", 0)
    _seed(db, wallet_id, rows, 0, memo)
    return bolt11s
