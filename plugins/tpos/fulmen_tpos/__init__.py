"""tpos: point-of-sale terminals with a public keypad page, and tips.

Hook implementations only; the API's rules are in `terminals.py`, invoices
and tips in `payments.py`, HTTP in `controllers.py`.
"""

from __future__ import annotations

from typing import Any

from fulmen import Payment, PaymentFilter, PluginHost, WalletAuth, hookimpl


@hookimpl
def payment_filter() -> PaymentFilter:
    # Payment hooks are recorded and called only for this plugin's own payments.
    return PaymentFilter(tags=frozenset({"tpos"}))


@hookimpl
def register_apps() -> Any:
    from .piccolo_app import APP_CONFIG

    return APP_CONFIG


@hookimpl
def register_routes(host: PluginHost) -> list[Any]:
    from litestar import Router
    from litestar.di import Provide

    from .controllers import TerminalPage, TposController
    from .pages import ROUTES as PAGES

    async def provide_host() -> PluginHost:
        return host

    return [Router(path="/", route_handlers=[*PAGES, TposController, TerminalPage],
                   dependencies={"host": Provide(provide_host)})]


@hookimpl
async def on_invoice_paid(host: PluginHost, payment: Payment) -> None:
    from .payments import move_tip

    await move_tip(host, payment)


@hookimpl
async def wallet_export(host: PluginHost, wallet: WalletAuth) -> list[dict[str, Any]]:
    from .terminals import export_terminals

    return await export_terminals(host, wallet)


@hookimpl
async def wallet_import(host: PluginHost, wallet: WalletAuth, data: Any) -> dict[str, Any]:
    from .terminals import import_terminals

    return await import_terminals(host, wallet, data)


@hookimpl
def nav_entries(host: PluginHost) -> list[dict[str, str]]:
    return [{"href": "/tpos/", "label": "Point of sale"}]


@hookimpl
def wallet_actions(host: PluginHost, wallet_id: str) -> list[dict[str, str]]:
    return [{"href": "/tpos/", "label": "Point of sale"}]
