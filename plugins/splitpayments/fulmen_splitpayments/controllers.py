"""HTTP API: `/splitpayments/api/v1/targets`, LNbits's paths and fields."""

from __future__ import annotations

from typing import Any

from fulmen import PluginHost, WalletAuth, require_wallet_key
from litestar import Controller, delete, get, put

from .targets import check_targets, delete_targets, list_targets, replace_targets, target_json


class TargetsController(Controller):
    path = "/api/v1/targets"
    dependencies = {"wallet": require_wallet_key("admin")}

    @get("/")
    async def get_targets(self, host: PluginHost, wallet: WalletAuth) -> list[dict[str, Any]]:
        """The wallet's split targets."""
        return [target_json(r) for r in await list_targets(wallet.wallet_id)]

    @put("/")
    async def set_targets(self, host: PluginHost, wallet: WalletAuth, data: Any) -> list[dict[str, Any]]:
        """Replace the wallet's targets with `{targets: [{wallet, alias, percent}]}`.
        An empty list removes them all. Returns the targets now in place."""
        targets = await check_targets(host, wallet.wallet_id, data)
        await replace_targets(host, wallet.wallet_id, targets)
        return [target_json(r) for r in await list_targets(wallet.wallet_id)]

    @delete("/", status_code=200)
    async def remove_targets(self, host: PluginHost, wallet: WalletAuth) -> dict[str, Any]:
        """Remove all the wallet's targets: incoming payments stay whole."""
        await delete_targets(host, wallet.wallet_id)
        return {"success": True, "message": "Split targets removed."}
