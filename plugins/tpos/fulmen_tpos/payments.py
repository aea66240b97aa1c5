"""A terminal's invoices, their status, and moving tips exactly once.

Tips: when a terminal's invoice is paid, its tip goes from the terminal's
wallet to the tip wallet chosen when the invoice was made. The invoice's row
in `tpos_payment` carries the tip's state:

1. `pending`: an invoice for the tip is created in the tip wallet and its
   bolt11 stored on the row (a conditional UPDATE: concurrent runs agree);
2. the terminal's wallet pays it with an idempotency key derived from the
   payment, so a run that crashed after paying gets that payment back;
3. the row is marked `done`.
"""

from __future__ import annotations

import logging
import math
from decimal import Decimal
from typing import Any

from fulmen import (
    BadRequest,
    InvoiceRequest,
    NotFound,
    Payment,
    PluginHost,
    WalletAuth,
    now_ms,
    parse_fiat,
    query,
)

from .terminals import get_tpos

log = logging.getLogger(__name__)

TAG = "tpos"
MAX_MEMO = 639

#: CreateTposInvoice fields accepted; the fiat ones are recorded in `extra`.
INVOICE_FIELDS = ("amount", "memo", "tip_amount", "exchange_rate", "details", "internal_memo",
                  "amount_fiat", "tip_amount_fiat")
INVOICE_UNSUPPORTED = ("user_lnaddress", "pay_in_fiat", "fiat_method")


def whole_sats(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{name} must be a whole number of sats")
    if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        raise BadRequest(f"{name} must be a whole number of sats")
    if value < minimum:
        raise BadRequest(f"{name} must be at least {minimum}")
    return int(value)


def optional_number(data: dict[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0:
        raise BadRequest(f"{name} must be a number of at least 0")
    return value


async def fiat_amounts(host: PluginHost, currency: str, data: dict[str, Any]) -> tuple[
        int, int, dict[str, Any]]:
    """A fiat terminal's sale: `amount_fiat` (the total, tip included) and
    `tip_amount_fiat?` in the terminal's currency, converted at the host's
    current rate (half-even to a whole msat). Returns (total msat, tip msat,
    the fiat fields for `extra`). A client's `amount` and `exchange_rate`
    are not used: the host's rate prices the invoice."""
    if data.get("amount_fiat") is None:
        raise BadRequest(f"amount_fiat is required: this terminal prices in {currency}")
    total = parse_fiat(data["amount_fiat"], currency, "amount_fiat")
    tip = Decimal(0)
    if data.get("tip_amount_fiat") not in (None, 0):
        tip = parse_fiat(data["tip_amount_fiat"], currency, "tip_amount_fiat")
    if tip > total:
        raise BadRequest("tip_amount_fiat cannot be larger than amount_fiat (the total, "
                         "tip included)")
    quote = await host.rates.quote(currency)
    total_msat, tip_msat = quote.to_msat(total), quote.to_msat(tip) if tip else 0
    if total_msat - tip_msat < 1000:
        raise BadRequest(f"amount_fiat is less than 1 sat at today's rate ({quote.price} {currency}"
                         " per BTC)")
    extra = {"amount_fiat": float(total), "tip_amount_fiat": float(tip),
             "exchange_rate": quote.sats_per_unit, "fiat_amount": float(total),
             "fiat_currency": currency, "fiat_rate": quote.sats_per_unit}
    return total_msat, tip_msat, extra


async def create_invoice(host: PluginHost, tpos_id: str, data: Any) -> Payment:
    """The public `POST /tposs/{id}/invoices`: `amount` (sats, the total
    including any tip), `memo?`, `tip_amount?` (sats, part of amount). A
    terminal with a fiat currency takes `amount_fiat` and `tip_amount_fiat`
    instead (see `fiat_amounts`)."""
    tpos = await get_tpos(tpos_id)
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    for key, value in data.items():
        if key in INVOICE_UNSUPPORTED and value not in (None, False, ""):
            raise BadRequest(f"{key} is not supported by this host's tpos")
        if key not in INVOICE_FIELDS and key not in INVOICE_UNSUPPORTED:
            raise BadRequest(f"unknown field {key!r}")
    fiat_extra: dict[str, Any] | None = None
    if tpos["currency"] not in ("sat", "sats"):
        total_msat, tip_msat, fiat_extra = await fiat_amounts(host, tpos["currency"], data)
    else:
        if "amount" not in data:
            raise BadRequest("amount is required (sats)")
        total_msat = whole_sats(data["amount"], "amount", 1) * 1000
        tip_msat = whole_sats(data.get("tip_amount") or 0, "tip_amount", 0) * 1000
        if tip_msat > total_msat:
            raise BadRequest("tip_amount cannot be larger than amount (the total, tip included)")
    amount, tip = total_msat // 1000, tip_msat // 1000
    if tip_msat and not tpos["tip_wallet"]:
        raise BadRequest("this terminal takes no tips (it has no tip_wallet)")
    memo = data.get("memo")
    if memo is not None and not isinstance(memo, str):
        raise BadRequest("memo must be a string")
    memo = memo or tpos["name"]
    if len(memo) > MAX_MEMO:
        raise BadRequest(f"memo is longer than {MAX_MEMO} characters")
    details = data.get("details")
    if details is not None and not isinstance(details, (dict, list)):
        raise BadRequest("details must be a JSON object or list")
    if details is not None and len(str(details)) > 10_000:
        raise BadRequest("details is too large")
    internal_memo = data.get("internal_memo")
    if internal_memo is not None and (not isinstance(internal_memo, str) or len(internal_memo) > 500):
        raise BadRequest("internal_memo must be a string of at most 500 characters")

    extra: dict[str, Any] = {"tag": TAG, "tpos_id": tpos_id, "amount": amount - tip,
                             "tip_amount": tip}
    if fiat_extra is not None:
        extra.update(fiat_extra)
    else:
        for name in ("exchange_rate", "amount_fiat", "tip_amount_fiat"):
            if (value := optional_number(data, name)) is not None:
                extra[name] = value
    if details is not None:
        extra["details"] = details
    if internal_memo:
        extra["internal_memo"] = internal_memo

    wallet = await host.wallets.get(tpos["wallet"])
    payment = await host.payments.create_invoice(
        WalletAuth(wallet_id=wallet.id, account_id=wallet.account_id, kind="invoice"),
        InvoiceRequest(amount_msat=total_msat, memo=memo, extra=extra,
                       expiry=host.settings.default_invoice_expiry),
    )
    now = now_ms()
    await query(
        "INSERT INTO tpos_payment (payment_hash, tpos_id, wallet, amount_msat, tip_msat, tip_wallet, "
        "tip_status, created_at, updated_at) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {})",
        payment.payment_hash, tpos_id, wallet.id, total_msat, tip_msat,
        tpos["tip_wallet"] if tip_msat else None, "pending" if tip_msat else "none", now, now,
    )
    return payment


async def tpos_payment(tpos_id: str, payment_hash: str) -> dict[str, Any]:
    rows = await query(
        "SELECT * FROM tpos_payment WHERE payment_hash = {} AND tpos_id = {}", payment_hash, tpos_id
    )
    if not rows:
        raise NotFound("No invoice with this hash was made by this TPoS.")
    return rows[0]


async def invoice_bolt11(host: PluginHost, tpos_id: str, payment_hash: str) -> str:
    row = await tpos_payment(tpos_id, payment_hash)
    found = [p for p in await host.payments.find_by_hash(payment_hash, row["wallet"]) if not p.out]
    if not found:
        raise NotFound("Invoice not found.")
    return found[0].bolt11


async def invoice_status(host: PluginHost, tpos_id: str, payment_hash: str) -> dict[str, Any]:
    row = await tpos_payment(tpos_id, payment_hash)
    found = [p for p in await host.payments.find_by_hash(payment_hash, row["wallet"]) if not p.out]
    return {"paid": bool(found and found[0].paid)}


# --- tips --------------------------------------------------------------------------


async def _set_tip_status(payment_hash: str, status: str, error: str | None = None) -> None:
    await query(
        "UPDATE tpos_payment SET tip_status = {}, tip_error = {}, updated_at = {} "
        "WHERE payment_hash = {} AND tip_status = 'pending'",
        status, error, now_ms(), payment_hash,
    )


async def move_tip(host: PluginHost, payment: Payment) -> bool:
    """Called for every paid invoice; moves the tip of a terminal's invoice
    once. Returns True if this call paid it. Raises while the tip cannot be
    paid yet, so the host retries."""
    if payment.out or not payment.paid or payment.tag != TAG or payment.extra.get("tip_of"):
        return False
    rows = await query(
        "SELECT * FROM tpos_payment WHERE payment_hash = {} AND wallet = {}",
        payment.payment_hash, payment.wallet_id,
    )
    if not rows or rows[0]["tip_status"] != "pending":
        return False
    row = rows[0]
    try:
        tpos_rows = await query("SELECT name FROM tpos_pos WHERE id = {}", row["tpos_id"])
        name = tpos_rows[0]["name"] if tpos_rows else "TPoS"
        # Once per invoice, whoever runs it (the key makes a repeat a no-op).
        await host.payments.transfer(
            payment.wallet_id, row["tip_wallet"], int(row["tip_msat"]), memo=f"{name} tip",
            extra={"tag": TAG, "tpos_id": row["tpos_id"], "tip_of": payment.payment_hash},
            idempotency_key=f"tpos-tip:{payment.payment_hash}",
        )
    except NotFound as exc:  # a wallet was deleted: the tip stays where it is
        log.warning("tip of %s not moved: %s", payment.payment_hash, exc.detail)
        await _set_tip_status(payment.payment_hash, "failed", exc.detail)
        return False
    except Exception as exc:
        detail = getattr(exc, "detail", None) or repr(exc)
        await query("UPDATE tpos_payment SET tip_error = {}, updated_at = {} WHERE payment_hash = {}",
                    detail, now_ms(), payment.payment_hash)
        raise
    await _set_tip_status(payment.payment_hash, "done")
    return True
