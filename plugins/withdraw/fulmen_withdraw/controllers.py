"""HTTP: the LNbits-compatible API under `/withdraw/api/v1/links`, the
public LNURL-withdraw endpoints, and the link page."""

from __future__ import annotations

from typing import Any

from fulmen import BadRequest, PluginHost, WalletAuth, require_wallet_key
from litestar import Controller, Request, Response, delete, get, post, put

from . import links
from .links import LnurlFailure


def lnurl_error(failure: LnurlFailure) -> Response[dict[str, Any]]:
    return Response({"status": "ERROR", "reason": failure.reason}, status_code=failure.status_code)


def whole(value: str | None, name: str, default: int, maximum: int) -> int:
    if value is None or value == "":
        return default
    # isascii: str.isdigit() also accepts digits such as "³" that int() refuses
    if not (value.isascii() and value.isdigit()) or int(value) > maximum:
        raise BadRequest(f"{name} must be a whole number from 0 to {maximum}")
    return int(value)


class WithdrawLinkController(Controller):
    """Managing withdraw links: the wallet's keys."""

    path = "/api/v1/links"

    @get("/", dependencies={"wallet": require_wallet_key("invoice")})
    async def list_links(
        self, host: PluginHost, wallet: WalletAuth, request: Request, offset: str | None = None,
        limit: str | None = None,
    ) -> dict[str, Any]:
        rows, total = await links.list_links(wallet, whole(offset, "offset", 0, 10**9),
                                             whole(limit, "limit", 100, 1000))
        base = host.base_url(request)
        reveal = wallet.kind == "admin"
        return {"data": [links.to_json(host, r, base, reveal) for r in rows], "total": total}

    @post("/", status_code=201, dependencies={"wallet": require_wallet_key("admin")})
    async def create_link(self, host: PluginHost, wallet: WalletAuth, request: Request, data: Any) -> dict[str, Any]:
        return links.to_json(host, await links.create_link(host, wallet, data), host.base_url(request))

    @get("/{link_id:str}", dependencies={"wallet": require_wallet_key("invoice")})
    async def read_link(self, host: PluginHost, wallet: WalletAuth, request: Request, link_id: str) -> dict[str, Any]:
        return links.to_json(host, await links.owned_link(link_id, wallet), host.base_url(request),
                             wallet.kind == "admin")

    @put("/{link_id:str}", dependencies={"wallet": require_wallet_key("admin")})
    async def update_link(
        self, host: PluginHost, wallet: WalletAuth, request: Request, link_id: str, data: Any
    ) -> dict[str, Any]:
        row = await links.update_link(host, wallet, link_id, data)
        return links.to_json(host, row, host.base_url(request))

    @delete("/{link_id:str}", status_code=200, dependencies={"wallet": require_wallet_key("admin")})
    async def delete_link(self, host: PluginHost, wallet: WalletAuth, link_id: str) -> dict[str, Any]:
        await links.delete_link(host, wallet, link_id)
        return {"success": True, "message": "Withdraw link deleted."}


class LnurlController(Controller):
    """The LNURL-withdraw protocol (public) and the link page."""

    path = "/"

    @get("/api/v1/lnurl/{unique_hash:str}")
    async def withdraw_request(self, host: PluginHost, request: Request, unique_hash: str) -> Response[dict[str, Any]]:
        """LUD-03 withdrawRequest (the LNURL's target); each call issues a new k1."""
        try:
            return Response(await links.withdraw_request(unique_hash, host.base_url(request)))
        except LnurlFailure as failure:
            return lnurl_error(failure)

    @get("/api/v1/lnurl/cb/{unique_hash:str}", opt={"rate_limit": "withdraw_claim"})
    async def callback(
        self, host: PluginHost, unique_hash: str, k1: str | None = None, pr: str | None = None,
    ) -> Response[dict[str, Any]]:
        """LUD-03 callback: `?k1=&pr=` → `{"status": "OK"}` once the invoice is paid."""
        try:
            return Response(await links.claim(host, unique_hash, k1, pr))
        except LnurlFailure as failure:
            return lnurl_error(failure)
