"""LNURL as a client: scan a code, pay an LNURL-pay link or Lightning
Address, claim an LNURL-withdraw link. The work is in `fulmen/lnurl_client.py`."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post

from ..errors import BadRequest
from ..lnurl_client import LnurlClient
from ..models import WalletAuth
from . import body
from .auth import require_wallet_key


def client_of(request: Request) -> LnurlClient:
    return LnurlClient(request.app.state.host)


def amount_msat(data: dict[str, Any]) -> int:
    """LNbits's LNURL amounts are msat (`unit` may say "sat"/"msat" only)."""
    if data.get("unit") not in (None, "", "sat", "msat"):
        raise BadRequest("unit: fiat amounts are not supported; send amount in msat")
    value = body.integer(data, "amount", minimum=1)
    if value is None:
        raise BadRequest("amount is required (msat)")
    return value


@get("/api/v1/lnurlscan/{code:path}", dependencies={"wallet": require_wallet_key("invoice")})
async def lnurlscan(request: Request, wallet: WalletAuth, code: str) -> dict[str, Any]:
    """What an LNURL, LUD-17 URL or Lightning Address points at (fetched by the host)."""
    return await client_of(request).describe(code.lstrip("/"))


@post("/api/v1/lnurlscan", status_code=200, dependencies={"wallet": require_wallet_key("invoice")})
async def lnurlscan_post(request: Request, wallet: WalletAuth, data: dict[str, Any]) -> dict[str, Any]:
    return await client_of(request).describe(body.text(data, "lnurl", max_len=4096) or "")


@post("/api/v1/payments/lnurl", status_code=200, dependencies={"wallet": require_wallet_key("admin")},
      opt={"rate_limit": "payment"})
async def pay_lnurl(request: Request, wallet: WalletAuth, data: dict[str, Any]) -> dict[str, Any]:
    """Pay an LNURL-pay link or Lightning Address: `{lnurl | res, amount (msat), comment?}`."""
    res = data.get("res")
    if res is not None and not isinstance(res, dict):
        raise BadRequest("res must be the payRequest object")
    payment = await client_of(request).pay(
        wallet,
        body.text(data, "lnurl", max_len=4096),
        res,
        amount_msat(data),
        comment=body.text(data, "comment", max_len=2000),
        internal_memo=body.text(data, "internal_memo", max_len=639),
    )
    return payment.to_lnbits()


@post("/api/v1/payments/lnurlw", status_code=200, dependencies={"wallet": require_wallet_key("admin")},
      opt={"rate_limit": "invoice"})
async def claim_lnurlw(request: Request, wallet: WalletAuth, data: dict[str, Any]) -> dict[str, Any]:
    """Claim an LNURL-withdraw link into this wallet: `{lnurl, amount (msat), memo?}`."""
    payment = await client_of(request).withdraw(
        wallet,
        body.text(data, "lnurl", max_len=4096) or "",
        amount_msat(data),
        memo=body.text(data, "memo", max_len=639),
    )
    return payment.to_lnbits()


ROUTES: list = [lnurlscan, lnurlscan_post, pay_lnurl, claim_lnurlw]
