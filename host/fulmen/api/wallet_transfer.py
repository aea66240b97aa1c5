"""`GET /api/v1/wallet/export` and `POST /api/v1/wallet/import` (admin key)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post

from ..models import WalletAuth
from ..wallet_transfer import export_wallet, import_wallet
from .auth import require_wallet_key


@get("/api/v1/wallet/export", dependencies={"wallet": require_wallet_key("admin")})
async def export(request: Request, wallet: WalletAuth) -> dict[str, Any]:
    """The wallet's configuration and its plugins' objects, as one JSON document."""
    return await export_wallet(request.app.state.host, wallet)


@post("/api/v1/wallet/import", status_code=200,
      dependencies={"wallet": require_wallet_key("admin")})
async def import_(request: Request, wallet: WalletAuth, data: Any) -> dict[str, Any]:
    """Create the objects of an export in this wallet; conflicts are reported."""
    return await import_wallet(request.app.state.host, wallet, data)


ROUTES = [export, import_]
