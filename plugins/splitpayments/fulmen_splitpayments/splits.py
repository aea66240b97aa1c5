"""Paying the shares of an incoming payment, exactly once.

The host calls `on_invoice_paid` once per payment and retries it while it
raises. Each share is a row in `splitpayments_split`, unique per (payment,
target wallet), and moves through:

1. inserted `pending` with its amount, from the targets of that moment;
2. an invoice for the amount is created in the target wallet and its bolt11
   stored on the row (a conditional UPDATE, so concurrent runs agree on one);
3. the source wallet pays that bolt11 with an idempotency key derived from
   the row, so a run that crashed after paying gets the same payment back
   instead of paying again;
4. the row is marked `done`.

An invoice can be paid once, and the key ties the payment to the row: no
sequence of crashes and retries pays a share twice.
"""

from __future__ import annotations

import logging
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from fulmen import (
    InvoiceRequest,
    NotFound,
    Payment,
    PluginHost,
    WalletAuth,
    now_ms,
    query,
    transaction,
)

log = logging.getLogger(__name__)

TAG = "splitpayments"
INVOICE_EXPIRY = 7 * 24 * 3600  # longer than the host's whole retry schedule
RENEW_MARGIN_MS = 60_000


def share_msat(amount_msat: int, percent: float) -> int:
    """amount × percent / 100, rounded down to whole msat, computed exactly."""
    exact = Decimal(amount_msat) * Decimal(str(percent)) / 100
    return int(exact.to_integral_value(rounding=ROUND_FLOOR))


async def is_split_payment(payment: Payment) -> bool:
    """Whether this incoming payment is a share this plugin paid into the
    wallet. Decided from the plugin's own record, not from `extra`: anyone with
    an invoice key writes `extra` and could otherwise keep payments out of the
    split by tagging them."""
    rows = await query(
        "SELECT id FROM splitpayments_split WHERE payment_hash = {} AND target_wallet = {}",
        payment.payment_hash, payment.wallet_id,
    )
    return bool(rows)


async def tip_msat(payment: Payment) -> int:
    """The tip in a tpos terminal's invoice: it goes on to the terminal's tip
    wallet, so it is not the wallet's to share. Read from the terminal's own
    record (not `extra`, which the invoice's creator writes); 0 without tpos."""
    if payment.tag != "tpos":
        return 0
    try:
        rows = await query(
            "SELECT tip_msat FROM tpos_payment WHERE payment_hash = {} AND wallet = {}",
            payment.payment_hash, payment.wallet_id,
        )
    except Exception:  # tpos was never installed: no such table
        return 0
    return min(max(int(rows[0]["tip_msat"]), 0), payment.amount_msat) if rows else 0


async def _rows(payment_id: int) -> list[dict[str, Any]]:
    return await query(
        "SELECT * FROM splitpayments_split WHERE payment_id = {} ORDER BY id", payment_id
    )


async def _record_shares(host: PluginHost, payment: Payment) -> list[dict[str, Any]]:
    """The share rows of this payment, created from the current targets on
    the first call. One run records them: a marker row per payment, inserted
    in the same transaction as the shares, decides between concurrent runs, so
    two runs that read different targets (changed in between) cannot both
    record shares and pay out more than the payment."""
    rows = await _rows(payment.id)
    if rows:
        return rows
    targets = await _targets(payment.wallet_id)
    if not targets:
        return []
    base = payment.amount_msat - await tip_msat(payment)
    now = now_ms()
    async with transaction():
        won = await query(
            "INSERT INTO splitpayments_payment (payment_id, created_at) VALUES ({}, {}) "
            "ON CONFLICT (payment_id) DO NOTHING RETURNING payment_id",
            payment.id, now,
        )
        if won:
            for t in await _targets(payment.wallet_id):
                amount = share_msat(base, float(t["percent"]))
                await query(
                    "INSERT INTO splitpayments_split (payment_id, source, target_wallet, alias, "
                    "percent, amount_msat, status, created_at, updated_at) "
                    "VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {})",
                    payment.id, payment.wallet_id, t["wallet"], t["alias"], float(t["percent"]),
                    amount, "pending" if amount > 0 else "skipped", now, now,
                )
    return await _rows(payment.id)


async def _targets(source: str) -> list[dict[str, Any]]:
    return await query(
        "SELECT * FROM splitpayments_target WHERE source = {} ORDER BY created_at, id", source
    )


async def _set_status(row_id: int, status: str, error: str | None = None) -> None:
    await query(
        "UPDATE splitpayments_split SET status = {}, error = {}, updated_at = {} "
        "WHERE id = {} AND status = 'pending'",
        status, error, now_ms(), row_id,
    )


async def _invoice_for(host: PluginHost, payment: Payment, row: dict[str, Any]) -> str | None:
    """The bolt11 to pay for this share: the stored one while it is usable,
    else a fresh invoice in the target wallet. None if the share was already
    received by the target (then the row only needs marking done)."""
    old = row["bolt11"]
    if old:
        found = [p for p in await host.payments.find_by_hash(row["payment_hash"], row["target_wallet"])
                 if not p.out]
        if found and found[0].paid:
            return None
        if found and found[0].status == "pending" and found[0].expires_at > now_ms() + RENEW_MARGIN_MS:
            return old
    target = await host.wallets.get(row["target_wallet"])
    invoice = await host.payments.create_invoice(
        WalletAuth(wallet_id=target.id, account_id=target.account_id, kind="invoice"),
        InvoiceRequest(
            amount_msat=int(row["amount_msat"]),
            memo=f"Split payment: {row['alias']}" if row["alias"] else "Split payment",
            expiry=INVOICE_EXPIRY,
            extra={"tag": TAG, "splitted": True, "source_payment": payment.payment_hash,
                   "alias": row["alias"]},
        ),
    )
    # Only one run may attach its invoice; a loser pays the winner's.
    if old:
        won = await query(
            "UPDATE splitpayments_split SET bolt11 = {}, payment_hash = {}, updated_at = {} "
            "WHERE id = {} AND bolt11 = {} RETURNING id",
            invoice.bolt11, invoice.payment_hash, now_ms(), row["id"], old,
        )
    else:
        won = await query(
            "UPDATE splitpayments_split SET bolt11 = {}, payment_hash = {}, updated_at = {} "
            "WHERE id = {} AND bolt11 IS NULL RETURNING id",
            invoice.bolt11, invoice.payment_hash, now_ms(), row["id"],
        )
    if won:
        return invoice.bolt11
    fresh = await query("SELECT bolt11 FROM splitpayments_split WHERE id = {}", row["id"])
    return fresh[0]["bolt11"]


async def _pay_share(host: PluginHost, payment: Payment, row: dict[str, Any]) -> None:
    source = await host.wallets.get(payment.wallet_id)
    bolt11 = await _invoice_for(host, payment, row)
    if bolt11 is not None:
        await host.payments.pay(
            WalletAuth(wallet_id=source.id, account_id=source.account_id, kind="admin"),
            bolt11,
            extra={"tag": TAG, "splitted": True, "source_payment": payment.payment_hash,
                   "alias": row["alias"]},
            idempotency_key=f"splitpayments:{payment.id}:{row['target_wallet']}",
        )
    await _set_status(int(row["id"]), "done")


async def split_payment(host: PluginHost, payment: Payment) -> int:
    """Pay every pending share of `payment`; returns how many were paid now.

    Raises if any share could not be paid for a reason that may pass
    (insufficient balance, a refused payment), so the host retries; shares
    already done are skipped on the retry.
    """
    if payment.out or not payment.paid or await is_split_payment(payment):
        return 0
    rows = await _record_shares(host, payment)
    paid, errors = 0, []
    for row in rows:
        if row["status"] != "pending":
            continue
        try:
            await _pay_share(host, payment, row)
            paid += 1
        except NotFound as exc:  # a wallet was deleted: this share can never be paid
            log.warning("split %s of payment %s dropped: %s", row["id"], payment.id, exc.detail)
            await _set_status(int(row["id"]), "failed", exc.detail)
        except Exception as exc:
            detail = getattr(exc, "detail", None) or repr(exc)
            await query("UPDATE splitpayments_split SET error = {}, updated_at = {} WHERE id = {}",
                        detail, now_ms(), row["id"])
            errors.append(f"{row['target_wallet']}: {detail}")
    if errors:
        raise RuntimeError(f"splitpayments: {len(errors)} share(s) not paid yet: " + "; ".join(errors))
    return paid
