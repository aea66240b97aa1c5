"""HTTP: `/nostrzaps/api/v1/...`."""

from __future__ import annotations

from typing import Any

from fulmen import BadRequest, PluginHost, Unauthorized, WalletAuth, require_wallet_key
from litestar import Controller, Request, delete, get, post, put

from . import link_keys, zaps
from .config import state

MAX_LIMIT = 500


def check_admin(host: PluginHost, request: Request) -> None:
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not token:
        raise Unauthorized("Missing admin credential: send Authorization: Bearer <admin key>.")
    if not host.check_admin(token):
        raise Unauthorized("Invalid admin credential.")


def parse_limit(limit: str | None) -> int:
    if limit is None:
        return 100
    try:
        value = int(limit)
    except ValueError:
        raise BadRequest("limit must be a whole number") from None
    if not 1 <= value <= MAX_LIMIT:
        raise BadRequest(f"limit must be from 1 to {MAX_LIMIT}")
    return value


class ZapsController(Controller):
    path = "/api/v1"

    @get("/pubkey")
    async def pubkey(self, host: PluginHost) -> dict[str, Any]:
        """Public: the key that signs zap receipts, and the relays this host suggests."""
        st = state(host)
        return {"pubkey": st.pubkey, "relays": list(st.config.relays)}

    @get("/zaps", dependencies={"wallet": require_wallet_key("read")})
    async def wallet_zaps(self, wallet: WalletAuth, limit: str | None = None) -> list[dict[str, Any]]:
        """Zaps received by the key's wallet, newest first, with each relay's answer."""
        return await zaps.wallet_zaps(wallet.wallet_id, parse_limit(limit))

    @get("/deliveries")
    async def deliveries(self, host: PluginHost, request: Request, status: str | None = None,
                         limit: str | None = None) -> list[dict[str, Any]]:
        """Admin: every zap receipt and its deliveries (`?status=pending|ok|refused|skipped`)."""
        check_admin(host, request)
        return await zaps.admin_deliveries(status, parse_limit(limit))

    @post("/deliveries/{zap_id:int}/redeliver", status_code=200)
    async def redeliver(self, host: PluginHost, request: Request, zap_id: int) -> dict[str, Any]:
        """Admin: publish a receipt again, now, to every relay that has not accepted it."""
        check_admin(host, request)
        return await zaps.redeliver(host, zap_id)

    @get("/links/{link_id:str}/key", dependencies={"wallet": require_wallet_key("invoice")})
    async def read_link_key(self, host: PluginHost, wallet: WalletAuth, link_id: str) -> dict[str, Any]:
        """The public key that signs this link's receipts, and whether it is the link's own."""
        return await link_keys.read(host, wallet, link_id)

    @put("/links/{link_id:str}/key", dependencies={"wallet": require_wallet_key("admin")})
    async def put_link_key(self, host: PluginHost, wallet: WalletAuth, link_id: str,
                           data: Any = None) -> dict[str, Any]:
        """Give the link its own key (`{"private_key": hex}`, or `{}` to generate one)."""
        return await link_keys.put(host, wallet, link_id, {} if data is None else data)

    @delete("/links/{link_id:str}/key", status_code=200,
            dependencies={"wallet": require_wallet_key("admin")})
    async def delete_link_key(self, host: PluginHost, wallet: WalletAuth, link_id: str) -> dict[str, Any]:
        """Back to the server key."""
        return await link_keys.delete(host, wallet, link_id)
