"""`fulmen audit` and `GET /admin/api/v1/audit`: does every balance add up?

Two checks per wallet, read from the database in one pass:

- the balance equals the sum of the wallet's ledger entries, and
- the balance equals the sum of its payment history: settled payments
  (amount minus fee) plus what pending outgoing payments hold (amount plus
  fee reserve). Admin top-ups and debits are payments too.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .db import query
from .settings import Settings

HISTORY_SUM = (
    "SUM(CASE WHEN status = 'success' THEN amount_msat - fee_msat "
    "WHEN status = 'pending' AND out THEN amount_msat - fee_reserve_msat ELSE 0 END)"
)


def database_name(settings: Settings) -> str:
    """Which database was read, without its password."""
    if settings.uses_postgres:
        parts = urlsplit(settings.database_url)
        host = parts.hostname or ""
        netloc = f"{parts.username}@{host}" if parts.username else host
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    if settings.database_url.startswith("sqlite"):
        return settings.database_url
    return f"sqlite:///{settings.sqlite_path}"


async def _sums_in_sql() -> list[dict[str, Any]]:
    return await query(
        "SELECT w.id, w.balance_msat, COALESCE(l.total, 0) AS ledger_msat, "
        "COALESCE(p.total, 0) AS history_msat FROM fulmen_wallet w "
        "LEFT JOIN (SELECT wallet_id, SUM(amount_msat) AS total FROM fulmen_ledger "
        "GROUP BY wallet_id) l ON l.wallet_id = w.id "
        f"LEFT JOIN (SELECT wallet_id, {HISTORY_SUM} AS total FROM fulmen_payment "
        "GROUP BY wallet_id) p ON p.wallet_id = w.id ORDER BY w.id"
    )


async def _sums_in_python() -> list[dict[str, Any]]:
    """The same sums with Python's exact integers, for a database whose SQL
    sum overflows (SQLite raises "integer overflow" past 2^63)."""
    ledger: dict[str, int] = {}
    for row in await query("SELECT wallet_id, amount_msat FROM fulmen_ledger"):
        ledger[row["wallet_id"]] = ledger.get(row["wallet_id"], 0) + int(row["amount_msat"])
    history: dict[str, int] = {}
    for row in await query(
        "SELECT wallet_id, out, status, amount_msat, fee_msat, fee_reserve_msat FROM fulmen_payment"
    ):
        if row["status"] == "success":
            delta = int(row["amount_msat"]) - int(row["fee_msat"])
        elif row["status"] == "pending" and row["out"]:
            delta = int(row["amount_msat"]) - int(row["fee_reserve_msat"])
        else:
            continue
        history[row["wallet_id"]] = history.get(row["wallet_id"], 0) + delta
    wallets = await query("SELECT id, balance_msat FROM fulmen_wallet ORDER BY id")
    return [
        {"id": w["id"], "balance_msat": w["balance_msat"], "ledger_msat": ledger.get(w["id"], 0),
         "history_msat": history.get(w["id"], 0)}
        for w in wallets
    ]


async def run_audit(settings: Settings) -> dict[str, Any]:
    try:
        rows = await _sums_in_sql()
    except Exception:  # noqa: BLE001 - an overflowing sum (the error type is the driver's)
        rows = await _sums_in_python()
    counts = await query(
        "SELECT (SELECT COUNT(*) FROM fulmen_ledger) AS ledger, "
        "(SELECT COUNT(*) FROM fulmen_payment) AS payments"
    )
    mismatches = []
    for row in rows:
        values = [_exact(row[k]) for k in ("balance_msat", "ledger_msat", "history_msat")]
        if any(v is None for v in values) or len(set(values)) != 1:
            mismatches.append({
                "id": row["id"],
                **{k: (v if v is not None else str(row[k]))
                   for k, v in zip(("balance_msat", "ledger_msat", "history_msat"), values)},
            })
    return {
        "ok": not mismatches,
        "database": database_name(settings),
        "wallets": len(rows),
        "ledger_entries": int(counts[0]["ledger"]),
        "payments": int(counts[0]["payments"]),
        "mismatches": mismatches,
    }


def _exact(value: Any) -> int | None:
    """An exact integer (PostgreSQL's SUM gives a Decimal), or None for a
    value that is not one (a balance that overflowed into a float on SQLite)."""
    if isinstance(value, (bool, float)):
        return None
    if isinstance(value, int):
        return value
    try:
        as_int = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return as_int if as_int == value else None
