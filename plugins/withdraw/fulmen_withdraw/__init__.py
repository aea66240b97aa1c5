"""withdraw: LNURL-withdraw links (LUD-03) with one-time k1s.

Hook implementations only; storage and the protocol are in `links.py`, the
request checks in `schemas.py`, HTTP in `controllers.py`.
"""

from __future__ import annotations

from typing import Any

from fulmen import Host, hookimpl


@hookimpl
def register_apps() -> Any:
    from .piccolo_app import APP_CONFIG

    return APP_CONFIG


@hookimpl
def register_routes(host: Host) -> list[Any]:
    from litestar import Router
    from litestar.di import Provide

    from .controllers import LnurlController, WithdrawLinkController
    from .pages import ROUTES as PAGES

    async def provide_host() -> Host:
        return host

    return [Router(path="/", route_handlers=[*PAGES, WithdrawLinkController, LnurlController],
                   dependencies={"host": Provide(provide_host)})]


@hookimpl
def nav_entries(host: Host) -> list[dict[str, str]]:
    return [{"href": "/withdraw/", "label": "Withdraw links"}]


@hookimpl
def wallet_actions(host: Host, wallet_id: str) -> list[dict[str, str]]:
    return [{"href": "/withdraw/", "label": "Withdraw links"}]
