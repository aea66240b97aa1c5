"""Accounts and wallets: `/api/v1/account`, `/api/v1/wallet(s)`."""

from __future__ import annotations

import time
from typing import Any

from litestar import Request, delete, get, patch, post, put
from litestar.di import Provide

from ..errors import Forbidden
from ..host import Host
from ..models import WalletAuth
from ..rates import RateUnavailable, check_currency
from . import body
from .auth import account_id, require_wallet_key

STARTED = time.time()


@get("/api/v1/health")
async def lnbits_health() -> dict[str, Any]:
    now = time.time()
    return {"server_time": int(now), "up_time": int(now - STARTED)}


@get("/api/v1/status", dependencies={"account": Provide(account_id)})
async def status(account: str) -> dict[str, Any]:
    from ..version import __version__

    now = time.time()
    return {"server_time": int(now), "up_time": int(now - STARTED),
            "up_time_seconds": int(now - STARTED), "version": __version__}


@post("/api/v1/account", status_code=201, opt={"rate_limit": "signup"})
async def create_account(request: Request, data: dict[str, Any] | None = None) -> dict[str, Any]:
    host: Host = request.app.state.host
    if not host.settings.allow_signup:
        raise Forbidden("Sign-up is switched off on this host.")
    data = data or {}
    name = body.text(data, "name", "", max_len=100) or ""
    account, token, wallet = await host.wallets.create_account(name)
    result = wallet.to_lnbits()
    # The account credential, shown once: Authorization: Bearer <access_token>.
    result["access_token"] = token
    return result


@get("/api/v1/wallets", dependencies={"account": Provide(account_id)})
async def list_wallets(request: Request, account: str) -> list[dict[str, Any]]:
    host: Host = request.app.state.host
    return [w.to_lnbits() for w in await host.wallets.list_for_account(account)]


@post("/api/v1/wallet", status_code=201, dependencies={"account": Provide(account_id)})
async def create_wallet(request: Request, account: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    host: Host = request.app.state.host
    name = body.text(data or {}, "name", "My Wallet", max_len=100) or "My Wallet"
    return (await host.wallets.create_wallet(account, name)).to_lnbits()


@delete("/api/v1/wallet/{wallet_id:str}", status_code=200, dependencies={"account": Provide(account_id)})
async def delete_wallet(request: Request, account: str, wallet_id: str) -> dict[str, Any]:
    host: Host = request.app.state.host
    await host.wallets.delete(wallet_id, account)
    return {"success": True, "message": "Wallet deleted."}


@post("/api/v1/account/rotate-token", status_code=200, dependencies={"account": Provide(account_id)})
async def rotate_account_token(request: Request, account: str) -> dict[str, Any]:
    host: Host = request.app.state.host
    return {"access_token": await host.wallets.rotate_account_token(account)}


@get("/api/v1/wallet", dependencies={"wallet": require_wallet_key("read")})
async def wallet_info(request: Request, wallet: WalletAuth) -> dict[str, Any]:
    host: Host = request.app.state.host
    w = await host.wallets.get(wallet.wallet_id)
    info: dict[str, Any] = {"id": w.id, "name": w.name, "balance": w.balance_msat,
                            "currency": w.currency}
    if w.currency:
        info["fiat"] = await fiat_balance(host, w.balance_msat, w.currency)
    return info


async def fiat_balance(host: Host, balance_msat: int, currency: str) -> dict[str, Any]:
    """The balance in the wallet's display currency; when no rate is young
    enough, the reason instead of an amount (the balance itself still answers)."""
    try:
        quote = await host.rates.quote(currency)
    except RateUnavailable as exc:
        return {"currency": currency, "amount": None, "error": exc.detail}
    return {"currency": currency, "amount": float(quote.to_fiat(balance_msat)),
            "rate": quote.sats_per_unit, "price": float(quote.price),
            "rate_age": round(quote.age(), 3), "manual": quote.manual}


@put("/api/v1/wallet/{new_name:str}", dependencies={"wallet": require_wallet_key("admin")})
async def rename_wallet(request: Request, wallet: WalletAuth, new_name: str) -> dict[str, Any]:
    host: Host = request.app.state.host
    body.text({"name": new_name}, "name", max_len=100)
    w = await host.wallets.update(wallet.wallet_id, name=new_name)
    return {"id": w.id, "name": w.name, "balance": w.balance_msat}


@patch("/api/v1/wallet", dependencies={"wallet": require_wallet_key("admin")})
async def update_wallet(request: Request, wallet: WalletAuth, data: dict[str, Any]) -> dict[str, Any]:
    host: Host = request.app.state.host
    name = body.text(data, "name", max_len=100)
    currency = body.text(data, "currency", max_len=8)
    if currency:  # "" clears the display currency
        currency = check_currency(currency)
    w = await host.wallets.update(wallet.wallet_id, name=name, currency=currency)
    return w.to_lnbits()


@post("/api/v1/wallet/rotate-keys", status_code=200, dependencies={"wallet": require_wallet_key("admin")})
async def rotate_keys(request: Request, wallet: WalletAuth) -> dict[str, Any]:
    """Issue new admin, invoice and read-only keys; the old ones stop working now."""
    host: Host = request.app.state.host
    return (await host.wallets.rotate_keys(wallet.wallet_id)).to_lnbits()


ROUTES = [
    lnbits_health, status, create_account, list_wallets, create_wallet, delete_wallet,
    rotate_account_token, wallet_info, rename_wallet, update_wallet, rotate_keys,
]
