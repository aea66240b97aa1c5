"""HTTP routes, mounted under /__plugin_id__ by the host."""

from __future__ import annotations

from typing import Any

from fulmen import (
    BadRequest,
    InvoiceRequest,
    PluginHost,
    WalletAuth,
    current_web_session,
    page_environment,
    render_page,
    require_wallet_key,
)
from litestar import Request, Router, get, post
from litestar.di import Provide
from litestar.response import Response

from .store import paid_invoices

PLUGIN_ID = "__plugin_id__"
# This package's templates, and the host's `base.html` and `_macros.html`.
PAGES = page_environment(__package__)


@post("/api/v1/invoices", status_code=201, dependencies={"wallet": require_wallet_key("invoice")})
async def create_invoice(host: PluginHost, wallet: WalletAuth, data: dict[str, Any]) -> dict[str, Any]:
    """`{"amount": sats, "memo": text}` -> an invoice tagged for this plugin."""
    amount = data.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise BadRequest("amount (whole sats, above 0) is required")
    memo = data.get("memo", "")
    if not isinstance(memo, str) or len(memo) > 200:
        raise BadRequest("memo must be text of at most 200 characters")
    payment = await host.payments.create_invoice(
        wallet, InvoiceRequest(amount_msat=amount * 1000, memo=memo, extra={"tag": PLUGIN_ID})
    )
    return {"payment_hash": payment.payment_hash, "bolt11": payment.bolt11}


@get("/api/v1/payments", dependencies={"wallet": require_wallet_key("read")})
async def list_paid(wallet: WalletAuth) -> list[dict[str, Any]]:
    """This wallet's invoices paid through the plugin, newest first."""
    return await paid_invoices(wallet.wallet_id)


@get("/", media_type="text/html", include_in_schema=False)
async def page(request: Request) -> Response[str]:
    """A page on the host's base template: its navigation, stylesheet and session."""
    session = await current_web_session(request)
    wallets = await session.wallets() if session and not session.admin else []
    return await render_page(request, PAGES, f"{PLUGIN_ID}/index.html", title="__plugin_title__",
                             wallets=wallets)


def routes(host: PluginHost) -> list[Any]:
    async def provide_host() -> PluginHost:
        return host

    return [Router(path="/", route_handlers=[create_invoice, list_paid, page],
                   dependencies={"host": Provide(provide_host)})]
