"""Reading, checking and replacing a wallet's split targets."""

from __future__ import annotations

import math
import secrets
from decimal import Decimal
from typing import Any

from fulmen import BadRequest, NotFound, PluginHost, Unauthorized, now_ms, query, transaction

MAX_TARGETS = 100
MAX_ALIAS = 100


def target_json(row: dict[str, Any]) -> dict[str, Any]:
    """LNbits's `Target` fields."""
    return {
        "id": row["id"],
        "wallet": row["wallet"],
        "source": row["source"],
        "percent": float(row["percent"]),
        "alias": row["alias"],
    }


async def list_targets(source: str) -> list[dict[str, Any]]:
    return await query(
        "SELECT * FROM splitpayments_target WHERE source = {} ORDER BY created_at, id", source
    )


def looks_external(value: str) -> bool:
    """A Lightning Address or LNURL rather than a wallet on this host."""
    lowered = value.lower()
    return "@" in value or lowered.startswith(("lnurl", "lightning:", "https://", "http://"))


async def resolve_wallet(host: PluginHost, value: str, where: str) -> str:
    """The id of the wallet on this host named by a wallet id or one of its keys."""
    if looks_external(value):
        raise BadRequest(
            f"{where}: Lightning Address and LNURL targets are not supported; "
            "give the wallet id or invoice key of a wallet on this host"
        )
    try:
        return (await host.wallets.get(value)).id
    except NotFound:
        pass
    try:
        return (await host.wallets.authenticate_key(value)).wallet_id
    except Unauthorized:
        raise BadRequest(f"{where}: no wallet on this host has this id or invoice key") from None


def parse_percent(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{where}: percent must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise BadRequest(f"{where}: percent must be a finite number")
    percent = Decimal(str(value))
    if percent <= 0 or percent > 100:
        raise BadRequest(f"{where}: percent must be greater than 0 and at most 100")
    return percent


async def check_targets(host: PluginHost, source: str, data: Any) -> list[dict[str, Any]]:
    """Validate a PUT body; returns the targets with wallets resolved to ids."""
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object {\"targets\": [...]}")
    items = data.get("targets")
    if not isinstance(items, list):
        raise BadRequest("targets must be a list of {wallet, alias, percent}")
    if len(items) > MAX_TARGETS:
        raise BadRequest(f"at most {MAX_TARGETS} targets are allowed")
    checked: list[dict[str, Any]] = []
    seen: set[str] = set()
    total = Decimal(0)
    for i, item in enumerate(items):
        where = f"targets[{i}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} must be an object {{wallet, alias, percent}}")
        wallet = item.get("wallet")
        if not isinstance(wallet, str) or not wallet.strip():
            raise BadRequest(f"{where}.wallet is required (a wallet id or invoice key)")
        alias = item.get("alias") or ""
        if not isinstance(alias, str):
            raise BadRequest(f"{where}.alias must be a string")
        if len(alias) > MAX_ALIAS:
            raise BadRequest(f"{where}.alias is longer than {MAX_ALIAS} characters")
        if "percent" not in item:
            raise BadRequest(f"{where}.percent is required")
        percent = parse_percent(item["percent"], where)
        wallet_id = await resolve_wallet(host, wallet.strip(), f"{where}.wallet")
        if wallet_id == source:
            raise BadRequest(f"{where}.wallet: a wallet cannot split payments to itself")
        if wallet_id in seen:
            raise BadRequest(f"{where}.wallet: this wallet is listed twice")
        seen.add(wallet_id)
        total += percent
        checked.append({"wallet": wallet_id, "alias": alias, "percent": float(percent)})
    if total > 100:
        raise BadRequest(f"the targets' percentages add up to {total}, more than 100")
    return checked


async def replace_targets(host: PluginHost, source: str, targets: list[dict[str, Any]]) -> None:
    """Swap the source's targets for these, in one transaction. The host is
    told to deliver this wallet's payments to the plugin only while it has
    targets (most wallets have none, and their payments then cost nothing)."""
    now = now_ms()
    async with transaction():
        await query("DELETE FROM splitpayments_target WHERE source = {}", source)
        await host.watch_wallet(source, bool(targets))
        for target in targets:
            await query(
                "INSERT INTO splitpayments_target (id, source, wallet, alias, percent, created_at) "
                "VALUES ({}, {}, {}, {}, {}, {})",
                secrets.token_hex(11), source, target["wallet"], target["alias"],
                target["percent"], now,
            )


async def delete_targets(host: PluginHost, source: str) -> None:
    async with transaction():
        await query("DELETE FROM splitpayments_target WHERE source = {}", source)
        await host.watch_wallet(source, False)


# --- wallet export / import ------------------------------------------------------------


async def export_targets(source: str) -> dict[str, Any] | None:
    rows = await list_targets(source)
    if not rows:
        return None
    return {"targets": [{"wallet": r["wallet"], "alias": r["alias"],
                         "percent": float(r["percent"])} for r in rows]}


async def import_targets(host: PluginHost, source: str, data: Any) -> dict[str, Any]:
    """All targets or none (their shares belong together). Existing targets
    of the receiving wallet are not replaced: that is a conflict."""
    if await list_targets(source):
        return {"created": [], "conflicts": [{
            "object": data, "problem": "this wallet already has split targets; "
                                       "delete them first to import others"}]}
    try:
        targets = await check_targets(host, source, data)
    except BadRequest as exc:
        return {"created": [], "conflicts": [{"object": data, "problem": exc.detail}]}
    await replace_targets(host, source, targets)
    return {"created": targets, "conflicts": []}
