"""Webhook endpoints of a wallet and their delivery logs: `/api/v1/webhooks...`.

Admin key to create, delete and redeliver; invoice key to list and read logs.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, delete, get, post

from ..errors import BadRequest
from ..host import Host
from ..models import WalletAuth
from . import body
from .auth import require_wallet_key

DELIVERY_STATUSES = ("pending", "success", "failed")


def host_of(request: Request) -> Host:
    return request.app.state.host


@get("/api/v1/webhooks", dependencies={"wallet": require_wallet_key("invoice")})
async def list_webhooks(request: Request, wallet: WalletAuth) -> list[dict[str, Any]]:
    return await host_of(request).webhooks.list_endpoints(wallet.wallet_id)


@post("/api/v1/webhooks", status_code=201, dependencies={"wallet": require_wallet_key("admin")})
async def create_webhook(request: Request, wallet: WalletAuth, data: dict[str, Any]) -> dict[str, Any]:
    """Body: `{"url": "https://...", "events": ["payment.received", ...], "description": ""}`.
    The answer holds the signing `secret`; it is not shown again."""
    description = body.text(data, "description", "", max_len=200) or ""
    return await host_of(request).webhooks.create_endpoint(
        wallet.wallet_id, data.get("url"), data.get("events"), description
    )


@get("/api/v1/webhooks/invoice-secret", dependencies={"wallet": require_wallet_key("admin")})
async def invoice_webhook_secret(request: Request, wallet: WalletAuth) -> dict[str, str]:
    """The secret that signs calls to this wallet's invoices' own `webhook` URLs."""
    return {"secret": await host_of(request).webhooks.invoice_secret(wallet.wallet_id)}


@delete("/api/v1/webhooks/{endpoint_id:str}", status_code=200,
        dependencies={"wallet": require_wallet_key("admin")})
async def delete_webhook(request: Request, wallet: WalletAuth, endpoint_id: str) -> dict[str, Any]:
    await host_of(request).webhooks.delete_endpoint(wallet.wallet_id, endpoint_id)
    return {"success": True}


@get("/api/v1/webhooks/{endpoint_id:str}/deliveries", dependencies={"wallet": require_wallet_key("invoice")})
async def list_deliveries(request: Request, wallet: WalletAuth, endpoint_id: str) -> list[dict[str, Any]]:
    status = request.query_params.get("status") or None
    if status is not None and status not in DELIVERY_STATUSES:
        raise BadRequest(f"status must be one of {', '.join(DELIVERY_STATUSES)}")
    raw_limit = request.query_params.get("limit")
    limit = _int_param(raw_limit) if raw_limit else 100
    return await host_of(request).webhooks.deliveries(wallet.wallet_id, endpoint_id, status, limit)


def _int_param(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest("limit must be a whole number") from None
    if not 1 <= value <= 1000:
        raise BadRequest("limit must be between 1 and 1000")
    return value


@post("/api/v1/webhooks/{endpoint_id:str}/deliveries/{delivery_id:int}/redeliver", status_code=200,
      dependencies={"wallet": require_wallet_key("admin")})
async def redeliver(request: Request, wallet: WalletAuth, endpoint_id: str, delivery_id: int) -> dict[str, Any]:
    return await host_of(request).webhooks.redeliver(wallet.wallet_id, endpoint_id, delivery_id)


ROUTES: list = [list_webhooks, create_webhook, invoice_webhook_secret, delete_webhook, list_deliveries,
                redeliver]
