"""tpos: point-of-sale terminals with a public keypad page, and tips.

Hook implementations only; the API's rules are in `terminals.py`, invoices
and tips in `payments.py`, HTTP in `controllers.py`.
"""

from __future__ import annotations

from typing import Any

from fulmen import Host, Payment, hookimpl


# Payment hooks are recorded and called only for payments with these tags.
payment_tags = {"tpos"}

@hookimpl
def register_apps() -> Any:
    from .piccolo_app import APP_CONFIG

    return APP_CONFIG


@hookimpl
def register_routes(host: Host) -> list[Any]:
    from litestar import Router
    from litestar.di import Provide

    from .controllers import TerminalPage, TposController
    from .pages import ROUTES as PAGES

    async def provide_host() -> Host:
        return host

    return [Router(path="/", route_handlers=[*PAGES, TposController, TerminalPage],
                   dependencies={"host": Provide(provide_host)})]


@hookimpl
async def on_invoice_paid(host: Host, payment: Payment) -> None:
    from .payments import move_tip

    await move_tip(host, payment)


@hookimpl
def nav_entries(host: Host) -> list[dict[str, str]]:
    return [{"href": "/tpos/", "label": "Point of sale"}]


@hookimpl
def wallet_actions(host: Host, wallet_id: str) -> list[dict[str, str]]:
    return [{"href": "/tpos/", "label": "Point of sale"}]
