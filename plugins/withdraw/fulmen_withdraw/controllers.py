"""HTTP: the LNbits-compatible API under `/withdraw/api/v1/links`, the
public LNURL-withdraw endpoints, and the link page."""

from __future__ import annotations

from typing import Any

import segno
from jinja2 import Environment, PackageLoader, select_autoescape
from litestar import Controller, MediaType, Request, Response, delete, get, post, put

from fulmen import BadRequest, Host, WalletAuth, require_wallet_key

from . import links
from .links import LnurlFailure

templates = Environment(
    loader=PackageLoader("fulmen_withdraw", "templates"),
    autoescape=select_autoescape(["html"]),
)


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
        self, host: Host, wallet: WalletAuth, request: Request, offset: str | None = None,
        limit: str | None = None,
    ) -> dict[str, Any]:
        rows, total = await links.list_links(wallet, whole(offset, "offset", 0, 10**9),
                                             whole(limit, "limit", 100, 1000))
        base = host.base_url(request)
        reveal = wallet.kind == "admin"
        return {"data": [links.to_json(r, base, reveal) for r in rows], "total": total}

    @post("/", status_code=201, dependencies={"wallet": require_wallet_key("admin")})
    async def create_link(self, host: Host, wallet: WalletAuth, request: Request, data: Any) -> dict[str, Any]:
        return links.to_json(await links.create_link(host, wallet, data), host.base_url(request))

    @get("/{link_id:str}", dependencies={"wallet": require_wallet_key("invoice")})
    async def read_link(self, host: Host, wallet: WalletAuth, request: Request, link_id: str) -> dict[str, Any]:
        return links.to_json(await links.owned_link(link_id, wallet), host.base_url(request),
                             wallet.kind == "admin")

    @put("/{link_id:str}", dependencies={"wallet": require_wallet_key("admin")})
    async def update_link(
        self, host: Host, wallet: WalletAuth, request: Request, link_id: str, data: Any
    ) -> dict[str, Any]:
        row = await links.update_link(host, wallet, link_id, data)
        return links.to_json(row, host.base_url(request))

    @delete("/{link_id:str}", status_code=200, dependencies={"wallet": require_wallet_key("admin")})
    async def delete_link(self, host: Host, wallet: WalletAuth, link_id: str) -> dict[str, Any]:
        await links.delete_link(host, wallet, link_id)
        return {"success": True, "message": "Withdraw link deleted."}


class LnurlController(Controller):
    """The LNURL-withdraw protocol (public) and the link page."""

    path = "/"

    @get("/api/v1/lnurl/{unique_hash:str}")
    async def withdraw_request(self, host: Host, request: Request, unique_hash: str) -> Response[dict[str, Any]]:
        """LUD-03 withdrawRequest (the LNURL's target); each call issues a new k1."""
        try:
            return Response(await links.withdraw_request(unique_hash, host.base_url(request)))
        except LnurlFailure as failure:
            return lnurl_error(failure)

    @get("/api/v1/lnurl/cb/{unique_hash:str}", opt={"rate_limit": "withdraw_claim"})
    async def callback(
        self, host: Host, unique_hash: str, k1: str | None = None, pr: str | None = None,
    ) -> Response[dict[str, Any]]:
        """LUD-03 callback: `?k1=&pr=` → `{"status": "OK"}` once the invoice is paid."""
        try:
            return Response(await links.claim(host, unique_hash, k1, pr))
        except LnurlFailure as failure:
            return lnurl_error(failure)

    @get("/", media_type=MediaType.HTML)
    async def index(self) -> Response[str]:
        return Response(templates.get_template("withdraw/index.html").render(), media_type=MediaType.HTML)

    @get("/{unique_hash:str}", media_type=MediaType.HTML)
    async def link_page(self, host: Host, request: Request, unique_hash: str) -> Response[str]:
        """The link's QR code, to print or show (whoever has it can withdraw).
        Found by the link's secret `unique_hash`, not its id: the id is shown
        to keys that cannot spend."""
        row = await links.link_by_page_key(unique_hash)
        code, _ = links.lnurl_forms(host.base_url(request), row["unique_hash"])
        svg = segno.make(f"lightning:{code}", error="l").svg_inline(scale=5, border=2)
        html = templates.get_template("withdraw/link.html").render(
            link={"title": row["title"], "min": int(row["min_withdrawable"]),
                  "max": int(row["max_withdrawable"]), "left": int(row["uses"]) - int(row["used"])},
            lnurl=code, qr=svg,
        )
        return Response(html, media_type=MediaType.HTML)
