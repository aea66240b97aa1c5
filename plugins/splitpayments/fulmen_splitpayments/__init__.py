"""splitpayments: share every incoming payment of a wallet among other wallets.

Hook implementations only; the work is in `targets.py` (the API's rules) and
`splits.py` (paying the shares exactly once).
"""

from __future__ import annotations

from typing import Any

from fulmen import Host, Payment, hookimpl

# Payment hooks only for wallets with split targets (`targets.replace_targets`
# keeps the host's list of watched wallets).
watch_wallets = True


@hookimpl
def register_apps() -> Any:
    from .piccolo_app import APP_CONFIG

    return APP_CONFIG


@hookimpl
def register_routes(host: Host) -> list[Any]:
    from litestar import Router
    from litestar.di import Provide

    from .controllers import TargetsController
    from .pages import ROUTES as PAGES

    async def provide_host() -> Host:
        return host

    return [Router(path="/", route_handlers=[*PAGES, TargetsController],
                   dependencies={"host": Provide(provide_host)})]


@hookimpl
async def on_invoice_paid(host: Host, payment: Payment) -> None:
    from .splits import split_payment

    await split_payment(host, payment)


@hookimpl
def nav_entries(host: Host) -> list[dict[str, str]]:
    return [{"href": "/splitpayments/", "label": "Split payments"}]
