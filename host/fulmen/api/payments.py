"""Payments: `/api/v1/payments...`, LNbits's paths and fields."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

import bolt11 as bolt11_lib
from litestar import Request, Response, get, post
from litestar.response import Stream

from ..db import query
from ..errors import BadRequest, NotFound
from ..history import HistoryQuery, csv_pages
from ..host import Host
from ..models import InvoiceRequest, Payment, WalletAuth
from ..ratelimit import enforce
from ..rates import check_currency, parse_fiat
from . import body
from .auth import api_key_of, authenticate, require_wallet_key

HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
MAX_EXPIRY = 31_536_000  # one year


def host_of(request: Request) -> Host:
    return request.app.state.host


@post("/api/v1/payments", status_code=201)
async def create_payment(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    """Create an invoice (`out: false`, invoice key) or pay one (`out: true`, admin key).
    Unlike LNbits, a body without `out` is read by what it holds: a `bolt11`
    means pay, otherwise it creates an invoice."""
    host = host_of(request)
    out = body.boolean(data, "out")
    if out is None:
        out = "bolt11" in data
    await enforce(request, "payment" if out else "invoice")
    if out:
        wallet = await authenticate(request, "admin")
        bolt11 = body.text(data, "bolt11", max_len=7089)
        if not bolt11:
            raise BadRequest("bolt11 is required to pay")
        key = request.headers.get("idempotency-key")
        if key is not None and not 0 < len(key) <= 128:
            raise BadRequest("Idempotency-Key must be 1 to 128 characters")
        payment = await host.payments.pay(wallet, bolt11, extra=body.extra(data), idempotency_key=key)
        return payment.to_lnbits()

    wallet = await authenticate(request, "invoice")
    extra = body.extra(data)
    fiat = await fiat_amount(host, data)
    if fiat is not None:  # the msat amount is fixed now, at this rate
        amount_msat, extra = fiat[0], {**extra, **fiat[1]}
    else:
        amount_msat = body.amount_msat(data)
    invoice = InvoiceRequest(
        amount_msat=amount_msat,
        memo=memo(data),
        expiry=body.integer(data, "expiry", host.settings.default_invoice_expiry, minimum=1,
                            maximum=MAX_EXPIRY) or host.settings.default_invoice_expiry,
        webhook=body.text(data, "webhook", max_len=2048),
        extra=extra,
        description_hash=description_hash(data),
    )
    if invoice.webhook:
        await host.http.check_url(invoice.webhook)  # refuse an unsafe URL now, not at payment
    payment = await host.payments.create_invoice(wallet, invoice)
    return payment.to_lnbits()


async def fiat_amount(host: Host, data: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """`unit` a currency code: the msat of `amount` at the current rate and
    LNbits's `extra` fields recording it. None for sat/msat."""
    unit = data.get("unit")
    if unit is None or unit in ("", "sat", "msat"):
        return None
    if not isinstance(unit, str):
        raise BadRequest("unit must be sat, msat or a currency code such as USD")
    currency = check_currency(unit, "unit")
    if "amount" not in data or data["amount"] is None:
        raise BadRequest("amount is required")
    amount = parse_fiat(data["amount"], currency)
    quote = await host.rates.quote(currency)
    msat = quote.to_msat(amount)
    if msat <= 0:
        raise BadRequest(f"amount {amount} {currency} is less than 1 msat")
    if msat > body.MAX_MSAT:
        raise BadRequest("amount is out of range")
    return msat, {"fiat_amount": float(amount), "fiat_currency": currency,
                  "fiat_rate": quote.sats_per_unit, "fiat_price": str(quote.price),
                  "fiat_rate_age": round(quote.age(), 3)}


def memo(data: dict[str, Any]) -> str:
    value = body.text(data, "memo", "", max_len=639) or ""
    if len(value.encode()) > 639:  # BOLT11 limits the description in bytes
        raise BadRequest("memo is longer than 639 bytes")
    return value


def description_hash(data: dict[str, Any]) -> bytes | None:
    if data.get("description_hash"):
        value = body.text(data, "description_hash", max_len=64) or ""
        if not HEX64.match(value):
            raise BadRequest("description_hash must be 64 hex characters (a sha256)")
        return bytes.fromhex(value)
    if data.get("unhashed_description"):
        value = body.text(data, "unhashed_description", max_len=100_000) or ""
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise BadRequest("unhashed_description must be hex-encoded") from None
        return hashlib.sha256(raw).digest()
    return None


@get("/api/v1/payments", dependencies={"wallet": require_wallet_key("read")})
async def list_payments(request: Request, wallet: WalletAuth) -> list[dict[str, Any]]:
    q = HistoryQuery.from_params(wallet.wallet_id, request.query_params)
    return [Payment.from_row(r).to_lnbits() for r in await q.rows()]


@get("/api/v1/payments/paginated", dependencies={"wallet": require_wallet_key("read")})
async def list_payments_paginated(request: Request, wallet: WalletAuth) -> dict[str, Any]:
    q = HistoryQuery.from_params(wallet.wallet_id, request.query_params)
    if q.limit is None:
        q.limit = 20
    return {"data": [Payment.from_row(r).to_lnbits() for r in await q.rows()], "total": await q.total()}


BUCKETS = {"hour": 3_600_000, "day": 86_400_000, "month": 86_400_000}


@get("/api/v1/payments/history", dependencies={"wallet": require_wallet_key("read")})
async def payment_history(request: Request, wallet: WalletAuth, group: str = "day") -> list[dict[str, Any]]:
    """Income, spending and running balance per hour, day or month (settled payments)."""
    if group not in BUCKETS:
        raise BadRequest("group must be hour, day or month")
    size = BUCKETS[group]
    rows = await query(
        "SELECT (created_at / {}) AS bucket, "
        "SUM(CASE WHEN amount_msat > 0 THEN amount_msat ELSE 0 END) AS income, "
        "SUM(CASE WHEN amount_msat < 0 THEN -amount_msat + fee_msat ELSE 0 END) AS spending "
        "FROM fulmen_payment WHERE wallet_id = {} AND status = 'success' GROUP BY 1 ORDER BY 1",
        size, wallet.wallet_id,
    )
    points: dict[str, dict[str, Any]] = {}
    for row in rows:
        start = datetime.fromtimestamp(int(row["bucket"]) * size / 1000, tz=UTC)
        if group == "month":
            start = start.replace(day=1)
        point = points.setdefault(start.isoformat(), {"date": start.isoformat(), "income": 0, "spending": 0})
        point["income"] += int(row["income"])
        point["spending"] += int(row["spending"])
    balance = 0
    for point in points.values():
        balance += point["income"] - point["spending"]
        point["balance"] = balance
    return list(points.values())


@get("/api/v1/payments/export.csv", dependencies={"wallet": require_wallet_key("read")},
     media_type="text/csv")
async def export_payments(request: Request, wallet: WalletAuth) -> Stream:
    """The wallet's history (same filters) as CSV, streamed in pages."""
    q = HistoryQuery.from_params(wallet.wallet_id, request.query_params)
    return Stream(csv_pages(q), media_type="text/csv",
                  headers={"content-disposition": 'attachment; filename="payments.csv"'})


@get("/api/v1/payments/fee-reserve")
async def fee_reserve(request: Request, invoice: str) -> dict[str, Any]:
    host = host_of(request)
    try:
        decoded = bolt11_lib.decode(invoice)
    except Exception:
        raise BadRequest("invoice is not a valid bolt11 invoice") from None
    amount = int(decoded.amount_msat or 0)
    return {"fee_reserve": host.settings.fee_reserve(amount)}


@post("/api/v1/payments/decode", status_code=200)
async def decode_payment(data: dict[str, Any]) -> Response[dict[str, Any]]:
    value = body.text(data, "data", max_len=7089)
    if not value:
        raise BadRequest("data is required: a bolt11 invoice")
    value = value.strip()
    if value.lower().startswith("lightning:"):
        value = value[len("lightning:"):]
    try:
        decoded = bolt11_lib.decode(value)
    except Exception:
        message = "data is not a valid bolt11 invoice"
        return Response({"message": message, "detail": message}, status_code=400)
    return Response(decoded.data, status_code=200)


@get("/api/v1/payments/{payment_hash:str}")
async def check_payment(request: Request, payment_hash: str) -> dict[str, Any]:
    """Anyone may ask whether a hash is paid; details (and the preimage)
    only with a key of the wallet that holds the payment."""
    host = host_of(request)
    if not HEX64.match(payment_hash):
        raise BadRequest("payment_hash must be 64 hex characters")
    wallet_id = None
    if api_key_of(request):
        wallet_id = (await authenticate(request, "read")).wallet_id
    if wallet_id:
        mine = await host.payments.find_by_hash(payment_hash.lower(), wallet_id)
        if mine:
            payment = mine[-1]
            return {
                "paid": payment.paid,
                "status": payment.status,
                "preimage": payment.to_lnbits()["preimage"],
                "details": payment.to_lnbits(),
            }
    found = await host.payments.find_by_hash(payment_hash.lower())
    if not found:
        raise NotFound("Payment does not exist.")
    incoming = [p for p in found if not p.out]
    target = incoming[0] if incoming else found[-1]
    return {"paid": target.paid, "status": target.status}


ROUTES = [create_payment, list_payments, list_payments_paginated, payment_history, export_payments, fee_reserve,
          decode_payment, check_payment]
