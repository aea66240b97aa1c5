"""lndhub: the LndHub API (BlueWallet, Zeus, BTCPay Server) for Fulmen wallets.

Hook implementations only; tokens are in `tokens.py`, the JSON shapes in
`shapes.py`, HTTP in `controllers.py`.
"""

from __future__ import annotations

from typing import Any

from fulmen import PluginHost, hookimpl


@hookimpl
def register_apps() -> Any:
    from .piccolo_app import APP_CONFIG

    return APP_CONFIG


@hookimpl
def register_routes(host: PluginHost) -> list[Any]:
    from .controllers import router

    return [router(host)]
