"""splitpayments: share every incoming payment of a wallet among other wallets.

Hook implementations only; the work is in `targets.py` (the API's rules) and
`splits.py` (paying the shares exactly once).
"""

from __future__ import annotations

from typing import Any

from fulmen import Payment, PaymentFilter, PluginHost, WalletAuth, hookimpl


@hookimpl
def payment_filter() -> PaymentFilter:
    # Payment hooks only for wallets with split targets (`targets.replace_targets`
    # keeps the host's list of watched wallets).
    return PaymentFilter(watched_wallets_only=True)


@hookimpl
def register_apps() -> Any:
    from .piccolo_app import APP_CONFIG

    return APP_CONFIG


@hookimpl
def register_routes(host: PluginHost) -> list[Any]:
    from litestar import Router
    from litestar.di import Provide

    from .controllers import TargetsController
    from .pages import ROUTES as PAGES

    async def provide_host() -> PluginHost:
        return host

    return [Router(path="/", route_handlers=[*PAGES, TargetsController],
                   dependencies={"host": Provide(provide_host)})]


@hookimpl
async def on_invoice_paid(host: PluginHost, payment: Payment) -> None:
    from .splits import split_payment

    await split_payment(host, payment)


@hookimpl
async def wallet_export(host: PluginHost, wallet: WalletAuth) -> dict[str, Any] | None:
    from .targets import export_targets

    return await export_targets(wallet.wallet_id)


@hookimpl
async def wallet_import(host: PluginHost, wallet: WalletAuth, data: Any) -> dict[str, Any]:
    from .targets import import_targets

    return await import_targets(host, wallet.wallet_id, data)


@hookimpl
def nav_entries(host: PluginHost) -> list[dict[str, str]]:
    return [{"href": "/splitpayments/", "label": "Split payments"}]
