"""HTTP: the LNbits-compatible API under `/lnurlp/api/v1/links`, the public
LNURL-pay endpoints, and the link page."""

from __future__ import annotations

from typing import Any

from fulmen import PluginHost, WalletAuth, require_wallet_key
from litestar import Controller, Request, Response, delete, get, post, put

from . import links
from .links import LnurlFailure


def lnurl_error(failure: LnurlFailure) -> Response[dict[str, Any]]:
    return Response({"status": "ERROR", "reason": failure.reason}, status_code=failure.status_code)


class PayLinkController(Controller):
    """Managing pay links: the wallet's keys."""

    path = "/api/v1/links"

    @get("/", dependencies={"wallet": require_wallet_key("invoice")})
    async def list_links(self, host: PluginHost, wallet: WalletAuth, request: Request) -> list[dict[str, Any]]:
        base = host.base_url(request)
        return [links.to_json(r, base) for r in await links.list_links(wallet)]

    @post("/", status_code=201, dependencies={"wallet": require_wallet_key("admin")})
    async def create_link(self, host: PluginHost, wallet: WalletAuth, request: Request, data: Any) -> dict[str, Any]:
        row = await links.create_link(host, wallet, data, host.base_url(request))
        return links.to_json(row, host.base_url(request))

    @get("/{link_id:str}", dependencies={"wallet": require_wallet_key("invoice")})
    async def read_link(self, host: PluginHost, wallet: WalletAuth, request: Request, link_id: str) -> dict[str, Any]:
        return links.to_json(await links.owned_link(link_id, wallet), host.base_url(request))

    @put("/{link_id:str}", dependencies={"wallet": require_wallet_key("admin")})
    async def update_link(
        self, host: PluginHost, wallet: WalletAuth, request: Request, link_id: str, data: Any
    ) -> dict[str, Any]:
        row = await links.update_link(host, wallet, link_id, data, host.base_url(request))
        return links.to_json(row, host.base_url(request))

    @delete("/{link_id:str}", status_code=200, dependencies={"wallet": require_wallet_key("admin")})
    async def delete_link(self, wallet: WalletAuth, link_id: str) -> dict[str, Any]:
        await links.delete_link(wallet, link_id)
        return {"success": True, "message": "Pay link deleted."}

    @get("/public/{link_id:str}")
    async def public_link(self, host: PluginHost, request: Request, link_id: str) -> dict[str, Any]:
        """Public: what a payer needs to see about a link."""
        row = await links.get_link(link_id)
        full = links.to_json(row, host.base_url(request))
        return {k: full[k] for k in ("id", "username", "description", "min", "max", "domain",
                                     "currency", "lnurl")}


class LnurlController(Controller):
    """The LNURL-pay protocol (public). The pages are in `pages.py`."""

    path = "/"

    @get("/{link_id:str}")
    async def pay_request(self, host: PluginHost, request: Request, link_id: str) -> Response[dict[str, Any]]:
        """LUD-06 payRequest (the LNURL's target)."""
        try:
            return Response(await links.pay_request_for(host, link_id, host.base_url(request)))
        except LnurlFailure as failure:
            return lnurl_error(failure)

    @get("/api/v1/lnurl/{link_id:str}")
    async def pay_request_old(self, host: PluginHost, request: Request, link_id: str) -> Response[dict[str, Any]]:
        """The same, at LNbits's deprecated path."""
        return await self.pay_request.fn(self, host, request, link_id)

    @get("/api/v1/lnurl/cb/{link_id:str}", opt={"rate_limit": "lnurl_callback"})
    async def callback(
        self, host: PluginHost, request: Request, link_id: str, amount: str | None = None,
        comment: str | None = None, webhook_data: str | None = None,
    ) -> Response[dict[str, Any]]:
        """LUD-06 callback: `?amount=<msat>&comment=` → `{pr, routes, successAction}`."""
        try:
            answer = await links.callback(host, link_id, host.base_url(request), amount, comment,
                                          webhook_data, dict(request.query_params))
        except LnurlFailure as failure:
            return lnurl_error(failure)
        return Response(answer)
