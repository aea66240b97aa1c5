"""The JSON LndHub clients parse. Amounts and fees are integer sats,
times integer Unix seconds, hashes of invoices and payments node-style
`{"type": "Buffer", "data": [...]}` where BTCPay Server reads them so."""

from __future__ import annotations

from typing import Any

import bolt11
from fulmen import Payment


def buffer(hex_value: str | None) -> dict[str, Any] | None:
    if not hex_value:
        return None
    return {"type": "Buffer", "data": list(bytes.fromhex(hex_value))}


def sat(msat: int) -> int:
    """An amount: whole sats, rounded down."""
    return msat // 1000


def fee_sat(msat: int) -> int:
    """A fee: whole sats, rounded up, so a fee is never shown as smaller than paid."""
    return -(-msat // 1000)


def seconds(ms: int) -> int:
    return ms // 1000


def user_invoice(p: Payment) -> dict[str, Any]:
    """An incoming invoice, as `addinvoice`-then-`getuserinvoices` shows it."""
    return {
        "r_hash": buffer(p.payment_hash),
        "payment_hash": p.payment_hash,
        "payment_request": p.bolt11,
        "pay_req": p.bolt11,
        "add_index": p.id,
        "description": p.memo,
        "ispaid": p.status == "success",
        "amt": sat(p.amount_msat),
        "timestamp": seconds(p.created_at),
        "expire_time": max(0, seconds(p.expires_at) - seconds(p.created_at)),
        "type": "user_invoice",
        "keysend": False,
    }


def paid_invoice(p: Payment) -> dict[str, Any]:
    """A finished outgoing payment in `gettxs`: `value` includes the fee."""
    sent = abs(p.amount_msat)  # outgoing amounts are negative in the ledger
    amount, fee = sat(sent), fee_sat(p.fee_msat)
    return {
        "type": "paid_invoice",
        "payment_hash": buffer(p.payment_hash),
        "payment_preimage": p.preimage,
        "pay_req": p.bolt11,
        "memo": p.memo,
        "value": amount + fee,
        "fee": fee,
        "value_msat": sent + p.fee_msat,
        "fee_msat": p.fee_msat,
        "timestamp": seconds(p.created_at),
    }


def decoded(invoice: str) -> dict[str, Any]:
    """lnd's `decodepayreq` shape. Raises ValueError for a bad invoice."""
    try:
        d = bolt11.decode(invoice)
    except Exception as exc:  # noqa: BLE001 - the decoder raises many types for bad input
        raise ValueError(str(exc) or type(exc).__name__) from None
    amount_msat = int(d.amount_msat or 0)
    return {
        "destination": d.payee,
        "payment_hash": d.payment_hash,
        "num_satoshis": sat(amount_msat),
        "num_msat": amount_msat,
        "timestamp": int(d.date),
        "expiry": int(d.expiry),
        "description": d.description or "",
        "description_hash": d.description_hash or "",
        "fallback_addr": "",
        "cltv_expiry": int(d.min_final_cltv_expiry or 18),
        "route_hints": [],
        "payment_addr": d.payment_secret or "",
        "features": {},
    }


def payment_result(p: Payment, decoded_invoice: dict[str, Any]) -> dict[str, Any]:
    """The answer to a successful `payinvoice` (lnd's SendPaymentSync, as LndHub relays it)."""
    sent = abs(p.amount_msat)
    amount, fee = sat(sent), fee_sat(p.fee_msat)
    return {
        "payment_error": "",
        "payment_preimage": buffer(p.preimage),
        "payment_hash": buffer(p.payment_hash),
        "pay_req": p.bolt11,
        "payment_route": {
            "total_amt": amount + fee,
            "total_fees": fee,
            "total_amt_msat": sent + p.fee_msat,
            "total_fees_msat": p.fee_msat,
            "hops": [],
        },
        "decoded": decoded_invoice,
        "preimage": p.preimage,
        "fee_msat": p.fee_msat,
        "status": "success",
    }
