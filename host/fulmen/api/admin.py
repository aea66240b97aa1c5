"""The admin API: `/admin/api/v1/...` and LNbits's `/users/api/v1/balance`.
Every call needs `Authorization: Bearer <admin key>`."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, get, post, put

from .. import db
from ..errors import BadRequest, NotFound
from ..funding.fake import FakeWallet
from ..host import Host
from . import body
from .auth import admin_guard


def host_of(request: Request) -> Host:
    return request.app.state.host


@put("/users/api/v1/balance", guards=[admin_guard])
async def lnbits_topup(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    """LNbits's top-up: `{"id": wallet_id, "amount": sats}`; negative debits."""
    host = host_of(request)
    wallet_id = body.text(data, "id", max_len=64)
    if not wallet_id:
        raise BadRequest("id (the wallet id) is required")
    sats = body.integer(data, "amount")
    if sats is None:
        raise BadRequest("amount (sats) is required")
    if abs(sats) > body.MAX_MSAT // 1000:
        raise BadRequest("amount is out of range")
    reason = body.text(data, "reason", "admin top-up", max_len=200) or "admin top-up"
    await host.wallets.get(wallet_id)
    balance = await host.payments.admin_adjust(wallet_id, sats * 1000, reason)
    return {"success": True, "message": f"Balance updated to {balance} msat.", "balance": balance}


MAX_OFFSET = 2**62


def page(limit: int, offset: int) -> tuple[int, int]:
    if not 1 <= limit <= 1000:
        raise BadRequest("limit must be between 1 and 1000")
    if not 0 <= offset <= MAX_OFFSET:
        raise BadRequest(f"offset must be between 0 and {MAX_OFFSET}")
    return limit, offset


@get("/accounts")
async def list_accounts(request: Request, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    rows = await host_of(request).wallets.list_accounts(*page(limit, offset))
    # PostgreSQL's SUM of a BIGINT is NUMERIC: answer an integer on both databases.
    return [{**r, "balance_msat": int(r["balance_msat"]), "wallets": int(r["wallets"])}
            for r in rows]


@get("/wallets")
async def list_wallets(request: Request, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    return [w.to_lnbits() for w in await host_of(request).wallets.list_wallets(*page(limit, offset))]


@post("/accounts", status_code=201)
async def create_account(request: Request, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create an account even when public sign-up is off."""
    name = body.text(data or {}, "name", "", max_len=100) or ""
    _, token, wallet = await host_of(request).wallets.create_account(name)
    return {**wallet.to_lnbits(), "access_token": token}


@post("/wallets/{wallet_id:str}/balance", status_code=200)
async def adjust_balance(request: Request, wallet_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Credit or debit in msat with a reason, recorded in the ledger."""
    host = host_of(request)
    amount = body.integer(data, "amount_msat")
    if amount is None:
        raise BadRequest("amount_msat is required")
    reason = body.text(data, "reason", max_len=200)
    if not reason:
        raise BadRequest("reason is required")
    await host.wallets.get(wallet_id)
    return {"balance": await host.payments.admin_adjust(wallet_id, amount, reason)}


@post("/fake/settle/{payment_hash:str}", status_code=200)
async def fake_settle(request: Request, payment_hash: str) -> dict[str, Any]:
    """FakeWallet only: settle one of its invoices as if paid from outside."""
    host = host_of(request)
    if not isinstance(host.funding, FakeWallet):
        raise BadRequest("Only available with the FakeWallet funding source.")
    found = [p for p in await host.payments.find_by_hash(payment_hash.lower()) if not p.out]
    if not found:
        raise NotFound("No invoice with that payment hash.")
    payment = await host.payments.settle_incoming(found[0].checking_id, require_unexpired=True)
    if payment is None:
        current = await host.payments.get_by_id(found[0].id)
        raise BadRequest("Invoice is already paid." if current.paid else "Invoice has expired.")
    return payment.to_lnbits()


@get("/audit")
async def audit(request: Request) -> dict[str, Any]:
    mismatches = await host_of(request).wallets.audit()
    return {"ok": not mismatches, "mismatches": mismatches}


@get("/plugins")
async def list_plugins(request: Request) -> list[dict[str, Any]]:
    host = host_of(request)
    applied = await db.applied_migrations()
    result = []
    for info in host.plugins.values():
        item = info.to_json()
        names = {app.app_name for app in info.apps}
        item["migrations"] = [m["name"] for m in applied if m["app_name"] in names]
        result.append(item)
    return result


@put("/plugins/{plugin_id:str}")
async def set_plugin(request: Request, plugin_id: str, data: dict[str, Any]) -> dict[str, Any]:
    host = host_of(request)
    if plugin_id not in host.plugins:
        raise NotFound(f"No plugin {plugin_id!r} is installed.")
    enabled = body.boolean(data, "enabled")
    if enabled is None:
        raise BadRequest("enabled (true or false) is required")
    info = host.plugins[plugin_id]
    if not info.usable:
        raise BadRequest(f"Plugin {plugin_id!r} is {info.state}: {info.error}")
    return (await host.set_plugin_enabled(plugin_id, enabled)).to_json()


@get("/hook-deliveries")
async def hook_deliveries(
    request: Request, status: str | None = None, plugin: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The payment-hook outbox, newest first: one row per payment, plugin and hook."""
    if status is not None and status not in ("pending", "done", "failed"):
        raise BadRequest("status must be pending, done or failed")
    if not 1 <= limit <= 1000:
        raise BadRequest("limit must be between 1 and 1000")
    return await host_of(request).hooks.deliveries(status, limit, plugin)


@get("/payments/pending")
async def pending_payments(request: Request) -> list[dict[str, Any]]:
    """Outgoing payments still waiting for the node's final word."""
    rows = await db.query(
        "SELECT * FROM fulmen_payment WHERE out AND status = 'pending' ORDER BY created_at"
    )
    now = db.now_ms()
    from ..models import Payment

    return [
        {**Payment.from_row(r).to_lnbits(), "overdue": int(r["expires_at"]) + 600_000 < now}
        for r in rows
    ]


admin_router = Router(
    path="/admin/api/v1",
    guards=[admin_guard],
    route_handlers=[list_accounts, list_wallets, create_account, adjust_balance, fake_settle, audit,
                    list_plugins, set_plugin, hook_deliveries, pending_payments],
)

ROUTES = [lnbits_topup, admin_router]
