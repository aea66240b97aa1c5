"""nostrzaps: NIP-57 zaps on lnurlp pay links and Lightning Addresses.

It extends lnurlp through lnurlp's own hooks (`lnurlp_pay_request`,
`lnurlp_callback`), so lnurlp never imports it. The Nostr rules are in
`nostr.py`, the zap flow and its storage in `zaps.py`, relays in `relay.py`,
HTTP in `controllers.py`.
"""

from __future__ import annotations

from typing import Any

from fulmen import Payment, PaymentFilter, PluginHost, hookimpl


@hookimpl
def payment_filter() -> PaymentFilter:
    # Zaps are lnurlp payments: no other payment gets a delivery row for this plugin.
    return PaymentFilter(tags=frozenset({"lnurlp"}))


@hookimpl
def register_apps() -> Any:
    from .piccolo_app import APP_CONFIG

    return APP_CONFIG


@hookimpl
def register_routes(host: PluginHost) -> list[Any]:
    from litestar import Router
    from litestar.di import Provide

    from .controllers import ZapsController

    async def provide_host() -> PluginHost:
        return host

    return [Router(path="/", route_handlers=[ZapsController],
                   dependencies={"host": Provide(provide_host)})]


@hookimpl
def startup(host: PluginHost) -> None:
    from .config import state

    state(host)  # load or create the server key now: a bad key setting fails at start


@hookimpl
def shutdown(host: PluginHost) -> None:
    from .config import forget

    forget(host)


@hookimpl(optionalhook=True)
async def lnurlp_pay_request(host: PluginHost, link: dict[str, Any]) -> dict[str, Any] | None:
    """NIP-57: a zap-enabled link says it accepts zap requests, and which key signs receipts."""
    from .link_keys import pubkey_of, signing_key

    if not link.get("zaps"):
        return None
    return {"allowsNostr": True, "nostrPubkey": pubkey_of(await signing_key(host, link["id"]))}


@hookimpl(optionalhook=True)
async def lnurlp_callback(host: PluginHost, link: dict[str, Any], params: dict[str, str],
                          amount_msat: int, lnurls: list[str]) -> dict[str, Any] | None:
    from .zaps import check_callback

    return await check_callback(host, link, params, amount_msat, lnurls)


@hookimpl
async def on_invoice_paid(host: PluginHost, payment: Payment) -> None:
    from .zaps import on_paid

    await on_paid(host, payment)
