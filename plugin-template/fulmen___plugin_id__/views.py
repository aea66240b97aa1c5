"""HTTP routes, mounted under /__plugin_id__ by the host."""

from __future__ import annotations

from typing import Any

from fulmen import BadRequest, PluginHost, InvoiceRequest, WalletAuth, require_wallet_key
from jinja2 import Environment, PackageLoader, select_autoescape
from litestar import Router, get, post
from litestar.di import Provide
from litestar.response import Response

from .store import paid_invoices

PLUGIN_ID = "__plugin_id__"
PAGES = Environment(loader=PackageLoader(__package__, "templates"),
                    autoescape=select_autoescape(["html"]))


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
async def page() -> Response[str]:
    html = PAGES.get_template(f"{PLUGIN_ID}/index.html").render(title="__plugin_title__")
    return Response(html, media_type="text/html")


def routes(host: PluginHost) -> list[Any]:
    async def provide_host() -> PluginHost:
        return host

    return [Router(path="/", route_handlers=[create_invoice, list_paid, page],
                   dependencies={"host": Provide(provide_host)})]
