"""Reading and writing our table."""

from __future__ import annotations

from typing import Any

from fulmen import Payment, now_ms, query


async def record_paid_invoice(payment: Payment) -> None:
    # Keyed on the payment id: a repeated delivery cannot record it twice.
    await query(
        "INSERT INTO __plugin_id___paid_invoice (payment_id, wallet_id, amount_msat, memo, paid_at) "
        "VALUES ({}, {}, {}, {}, {}) ON CONFLICT (payment_id) DO NOTHING",
        payment.id, payment.wallet_id, payment.amount_msat, payment.memo, now_ms(),
    )


async def paid_invoices(wallet_id: str, limit: int = 100) -> list[dict[str, Any]]:
    rows = await query(
        "SELECT payment_id, amount_msat, memo, paid_at FROM __plugin_id___paid_invoice "
        "WHERE wallet_id = {} ORDER BY paid_at DESC, payment_id DESC LIMIT {}",
        wallet_id, limit,
    )
    return [dict(r) for r in rows]
