"""withdraw: LNURL-withdraw links (LUD-03) with one-time k1s.

Hook implementations only; storage and the protocol are in `links.py`, the
request checks in `schemas.py`, HTTP in `controllers.py`.
"""

from __future__ import annotations

from typing import Any

from fulmen import PluginHost, WalletAuth, hookimpl


@hookimpl
def register_apps() -> Any:
    from .piccolo_app import APP_CONFIG

    return APP_CONFIG


@hookimpl
def register_routes(host: PluginHost) -> list[Any]:
    from litestar import Router
    from litestar.di import Provide

    from .controllers import LnurlController, WithdrawLinkController
    from .pages import ROUTES as PAGES

    async def provide_host() -> PluginHost:
        return host

    return [Router(path="/", route_handlers=[*PAGES, WithdrawLinkController, LnurlController],
                   dependencies={"host": Provide(provide_host)})]


@hookimpl
def nav_entries(host: PluginHost) -> list[dict[str, str]]:
    return [{"href": "/withdraw/", "label": "Withdraw links"}]


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
    return [{"href": "/withdraw/", "label": "Withdraw links"}]
