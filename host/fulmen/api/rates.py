"""Fiat helpers, as LNbits: `/api/v1/currencies`, `/api/v1/rate/{currency}`,
`/api/v1/conversion`. No key needed."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from litestar import Request, get, post

from ..errors import BadRequest
from ..host import Host
from ..rates import MSAT_PER_BTC, Quote, check_currency, parse_decimal, parse_fiat

SAT_UNITS = ("sat", "sats")


def host_of(request: Request) -> Host:
    return request.app.state.host


def rate_json(quote: Quote) -> dict[str, Any]:
    """LNbits's `{rate, price}` (sats per unit; price of 1 BTC) and where it comes from."""
    return {
        "rate": quote.sats_per_unit,
        "price": float(quote.price),
        "currency": quote.currency,
        "age": round(quote.age(), 3),
        "manual": quote.manual,
        "sources": list(quote.sources),
    }


@get("/api/v1/currencies")
async def currencies(request: Request) -> list[str]:
    """ISO 4217 codes a rate can be asked for."""
    return host_of(request).rates.currencies()


@get("/api/v1/rate/{currency:str}")
async def rate(request: Request, currency: str) -> dict[str, Any]:
    return rate_json(await host_of(request).rates.quote(check_currency(currency)))


@post("/api/v1/conversion", status_code=200)
async def conversion(request: Request, data: Any) -> dict[str, Any]:
    """`{from: "sat" | CURRENCY, amount, to: CURRENCY[,CURRENCY...] | "sat"}`.
    From sats: the amount in each `to` currency, rounded half-even to its minor
    unit. From a currency: whole sats (half-even) and exact msat."""
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    host = host_of(request)
    source = data.get("from", data.get("from_", "sat"))
    if not isinstance(source, str):
        raise BadRequest("from must be \"sat\" or a currency code")
    target = data.get("to", "usd")
    if not isinstance(target, str) or not target.strip():
        raise BadRequest("to must be a currency code, or several separated by commas")
    if "amount" not in data or data["amount"] is None:
        raise BadRequest("amount is required")
    if source.lower() in SAT_UNITS:
        sats = parse_decimal(data["amount"], "amount", 3)
        msat = int(sats * 1000)
        out: dict[str, Any] = {"sats": float(sats) if sats % 1 else int(sats), "msat": msat,
                               "BTC": float(Decimal(msat) / MSAT_PER_BTC)}
        codes = [c.strip() for c in target.split(",") if c.strip()]
        if not codes or len(codes) > 20:
            raise BadRequest("to must name 1 to 20 currencies")
        checked = [check_currency(c, "to") for c in codes if c.lower() not in SAT_UNITS]
        for code in checked:
            out[code] = float((await host.rates.quote(code)).to_fiat(msat))
        return out
    code = check_currency(source, "from")
    amount = parse_fiat(data["amount"], code)
    msat = (await host.rates.quote(code)).to_msat(amount)
    if msat > 2_100_000_000_000_000_000:
        raise BadRequest("amount is out of range")
    sats = (Decimal(msat) / 1000).to_integral_value(rounding=ROUND_HALF_EVEN)
    return {code: float(amount), "sats": int(sats), "msat": msat,
            "BTC": float(Decimal(msat) / MSAT_PER_BTC)}


ROUTES = [currencies, rate, conversion]
