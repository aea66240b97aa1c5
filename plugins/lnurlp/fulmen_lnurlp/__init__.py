"""lnurlp: LNURL-pay links and Lightning Addresses.

Hook implementations only; storage and the protocol are in `links.py`, the
request checks in `schemas.py`, HTTP in `controllers.py`.
"""

from __future__ import annotations

from typing import Any

from fulmen import Payment, PaymentFilter, PluginHost, WalletAuth, hookimpl


@hookimpl
def payment_filter() -> PaymentFilter:
    # Payment hooks are recorded and called only for this plugin's own payments.
    return PaymentFilter(tags=frozenset({"lnurlp"}))



@hookimpl
def register_hookspecs() -> Any:
    """Hooks other plugins implement to extend pay links (see `hookspecs.py`)."""
    from . import hookspecs

    return hookspecs


@hookimpl
def register_apps() -> Any:
    from .piccolo_app import APP_CONFIG

    return APP_CONFIG


@hookimpl
def register_routes(host: PluginHost) -> list[Any]:
    from litestar import Router
    from litestar.di import Provide

    from .controllers import LnurlController, PayLinkController
    from .pages import ROUTES as PAGES

    async def provide_host() -> PluginHost:
        return host

    return [Router(path="/", route_handlers=[*PAGES, PayLinkController, LnurlController],
                   dependencies={"host": Provide(provide_host)})]


@hookimpl
async def resolve_lightning_address(host: PluginHost, username: str, base_url: str) -> dict[str, Any] | None:
    from .links import address_request

    return await address_request(host, username, base_url)


@hookimpl
async def on_invoice_paid(host: PluginHost, payment: Payment) -> None:
    from .links import send_webhook

    await send_webhook(host, payment)


@hookimpl
def nav_entries(host: PluginHost) -> list[dict[str, str]]:
    return [{"href": "/lnurlp/", "label": "Pay links"}]


@hookimpl
async def wallet_export(host: PluginHost, wallet: WalletAuth) -> list[dict[str, Any]]:
    from .links import export_links

    return await export_links(host, wallet)


@hookimpl
async def wallet_import(host: PluginHost, wallet: WalletAuth, data: Any) -> dict[str, Any]:
    from .links import import_links

    return await import_links(host, wallet, data)


@hookimpl
def wallet_actions(host: PluginHost, wallet_id: str) -> list[dict[str, str]]:
    return [{"href": "/lnurlp/", "label": "Pay links"}]
