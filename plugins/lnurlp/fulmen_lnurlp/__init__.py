"""lnurlp: LNURL-pay links and Lightning Addresses.

Hook implementations only; storage and the protocol are in `links.py`, the
request checks in `schemas.py`, HTTP in `controllers.py`.
"""

from __future__ import annotations

from typing import Any

from fulmen import Host, Payment, hookimpl


# Payment hooks are recorded and called only for payments with these tags.
payment_tags = {"lnurlp"}


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
def register_routes(host: Host) -> list[Any]:
    from litestar import Router
    from litestar.di import Provide

    from .controllers import LnurlController, PayLinkController

    async def provide_host() -> Host:
        return host

    return [Router(path="/", route_handlers=[PayLinkController, LnurlController],
                   dependencies={"host": Provide(provide_host)})]


@hookimpl
async def resolve_lightning_address(host: Host, username: str, base_url: str) -> dict[str, Any] | None:
    from .links import address_request

    return await address_request(host, username, base_url)


@hookimpl
async def on_invoice_paid(host: Host, payment: Payment) -> None:
    from .links import send_webhook

    await send_webhook(host, payment)


@hookimpl
def nav_entries(host: Host) -> list[dict[str, str]]:
    return [{"href": "/lnurlp/", "label": "Pay links"}]
