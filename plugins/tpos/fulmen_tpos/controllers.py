"""HTTP: the LNbits-compatible API under `/tpos/api/v1/tposs`, and the
public terminal page `/tpos/{id}`."""

from __future__ import annotations

import json
import re
from typing import Any

import segno
from fulmen import (
    BadRequest,
    PluginHost,
    WalletAuth,
    page_environment,
    render_page,
    require_wallet_key,
)
from litestar import Controller, MediaType, Request, Response, delete, get, post, put

from . import payments, terminals

HEX64 = re.compile(r"^[0-9a-f]{64}$")

templates = page_environment("fulmen_tpos")


def flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes", "on")


def check_hash(payment_hash: str) -> str:
    if not HEX64.match(payment_hash):
        raise BadRequest("payment_hash must be 64 lower-case hex characters")
    return payment_hash


class TposController(Controller):
    """Managing terminals: the wallet's keys."""

    path = "/api/v1/tposs"

    @get("/", dependencies={"wallet": require_wallet_key("invoice")})
    async def list_tposs(self, host: PluginHost, wallet: WalletAuth, request: Request) -> list[dict[str, Any]]:
        """The wallet's terminals; `?all_wallets=true`: those of every wallet of its account."""
        rows = await terminals.list_tposs(host, wallet, flag(request.query_params.get("all_wallets")))
        return [terminals.tpos_json(r) for r in rows]

    @post("/", status_code=201, dependencies={"wallet": require_wallet_key("admin")})
    async def create_tpos(self, host: PluginHost, wallet: WalletAuth, data: Any) -> dict[str, Any]:
        return terminals.tpos_json(await terminals.create_tpos(host, wallet, data))

    @put("/{tpos_id:str}", dependencies={"wallet": require_wallet_key("admin")})
    async def update_tpos(self, host: PluginHost, wallet: WalletAuth, tpos_id: str, data: Any) -> dict[str, Any]:
        return terminals.tpos_json(await terminals.update_tpos(host, wallet, tpos_id, data))

    @delete("/{tpos_id:str}", status_code=200, dependencies={"wallet": require_wallet_key("admin")})
    async def delete_tpos(self, wallet: WalletAuth, tpos_id: str) -> dict[str, Any]:
        await terminals.delete_tpos(wallet, tpos_id)
        return {"success": True, "message": "TPoS deleted."}

    @put("/{tpos_id:str}/items", dependencies={"wallet": require_wallet_key("admin")})
    async def set_items(self, wallet: WalletAuth, tpos_id: str, data: Any) -> dict[str, Any]:
        return terminals.tpos_json(await terminals.set_items(wallet, tpos_id, data))

    # --- public: used by the terminal page ------------------------------------------

    @post("/{tpos_id:str}/invoices", status_code=201, opt={"rate_limit": "invoice"})
    async def create_invoice(self, host: PluginHost, tpos_id: str, data: Any) -> dict[str, Any]:
        """Public: an invoice on the terminal's wallet (LNbits's Payment)."""
        return (await payments.create_invoice(host, tpos_id, data)).to_lnbits()

    @get("/{tpos_id:str}/invoices/{payment_hash:str}")
    async def invoice_status(self, host: PluginHost, tpos_id: str, payment_hash: str) -> dict[str, Any]:
        """Public: `{paid}` for an invoice this terminal made."""
        return await payments.invoice_status(host, tpos_id, check_hash(payment_hash))


class TerminalPage(Controller):
    """The public terminal page and the QR codes it shows."""

    path = "/"

    @get("/{tpos_id:str}", media_type=MediaType.HTML)
    async def terminal(self, request: Request, host: PluginHost, tpos_id: str) -> Response[str]:
        tpos = await terminals.get_tpos(tpos_id)
        items = [i for i in json.loads(tpos["items"]) if not i.get("disabled")]
        fiat = tpos["currency"] not in ("sat", "sats")
        public = {
            "id": tpos["id"],
            "name": tpos["name"],
            "currency": tpos["currency"],
            "fiat": fiat,
            # the keypad enters minor units: cents for EUR, yen for JPY
            "decimals": host.rates.minor_digits(tpos["currency"]) if fiat else 0,
            "tip_options": json.loads(tpos["tip_options"]) if tpos["tip_wallet"] else [],
            "items": items,
        }
        return await render_page(request, templates, "tpos/terminal.html", tpos=public)

    @get("/{tpos_id:str}/qr/{payment_hash:str}", media_type="image/svg+xml")
    async def qr(self, host: PluginHost, tpos_id: str, payment_hash: str) -> Response[str]:
        """The QR code (SVG) of one of this terminal's invoices."""
        bolt11 = await payments.invoice_bolt11(host, tpos_id, check_hash(payment_hash))
        # upper case: the QR code's compact alphanumeric mode
        svg = segno.make(f"lightning:{bolt11}".upper(), error="l").svg_inline(scale=5, border=2)
        return Response(svg, media_type="image/svg+xml")

