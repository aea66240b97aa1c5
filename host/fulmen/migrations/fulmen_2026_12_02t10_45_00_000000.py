"""Money never frozen: a balance ceiling the database enforces, the last
reconciliation error of each payment, and admin top-ups as payments.

- `fulmen_wallet.balance_msat` may not exceed 21 million bitcoin
  (2.1e18 msat): a CHECK constraint on PostgreSQL, triggers on SQLite (which
  cannot add a constraint to an existing table). On SQLite the triggers also
  refuse a balance that is no longer an integer (an overflow turns it into a
  float).
- `fulmen_payment.check_error`: why the last attempt to settle or check the
  payment failed (shown in the admin pending list), NULL when fine.
- Every admin top-up or debit recorded before this migration only in the
  ledger gets its payment row ("Admin credit" / "Admin debit"), so a wallet's
  balance equals the sum of its history.
"""

from __future__ import annotations

import json
import secrets

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from fulmen import db

ID = "2026-12-02T10:45:00:000000"
VERSION = "1.0"
DESCRIPTION = "balance ceiling, payment check errors, admin top-ups as payments"

MAX_BALANCE_MSAT = 2_100_000_000_000_000_000

SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER fulmen_wallet_balance_max_update
BEFORE UPDATE OF balance_msat ON fulmen_wallet
WHEN typeof(NEW.balance_msat) <> 'integer' OR NEW.balance_msat > {MAX_BALANCE_MSAT}
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: fulmen_wallet_balance_max'); END""",
    f"""CREATE TRIGGER fulmen_wallet_balance_max_insert
BEFORE INSERT ON fulmen_wallet
WHEN typeof(NEW.balance_msat) <> 'integer' OR NEW.balance_msat > {MAX_BALANCE_MSAT}
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: fulmen_wallet_balance_max'); END""",
]


async def _backfill_admin_payments() -> None:
    rows = await db.query(
        "SELECT id, wallet_id, amount_msat, reason, created_at FROM fulmen_ledger "
        "WHERE kind = 'admin' AND payment_id IS NULL ORDER BY id"
    )
    for row in rows:
        amount = int(row["amount_msat"])
        payment_hash = secrets.token_hex(32)
        inserted = await db.query(
            "INSERT INTO fulmen_payment (wallet_id, out, status, payment_hash, checking_id, "
            "bolt11, amount_msat, fee_msat, fee_reserve_msat, memo, expires_at, extra, tag, "
            "internal, "
            "created_at, updated_at) VALUES ({}, {}, 'success', {}, {}, '', {}, 0, 0, {}, {}, {}, "
            "NULL, {}, {}, {}) RETURNING id",
            row["wallet_id"], amount < 0, payment_hash, f"admin_{payment_hash}", amount,
            "Admin credit" if amount > 0 else "Admin debit", int(row["created_at"]),
            json.dumps({"reason": row["reason"] or ""}), True, int(row["created_at"]),
            int(row["created_at"]),
        )
        await db.query(
            "UPDATE fulmen_ledger SET payment_id = {} WHERE id = {}", inserted[0]["id"], row["id"]
        )


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="fulmen", description=DESCRIPTION)

    async def run() -> None:
        await db.run_ddl("ALTER TABLE fulmen_payment ADD COLUMN check_error TEXT")
        if db.is_postgres():
            # NOT VALID: enforced from now on without failing on an old row.
            await db.run_ddl(
                "ALTER TABLE fulmen_wallet ADD CONSTRAINT fulmen_wallet_balance_max "
                f"CHECK (balance_msat <= {MAX_BALANCE_MSAT}) NOT VALID"
            )
        else:
            engine = db.piccolo_conf.DB
            assert engine is not None
            for trigger in SQLITE_TRIGGERS:
                await engine.run_ddl(trigger)
        await _backfill_admin_payments()

    manager.add_raw(run)
    return manager
