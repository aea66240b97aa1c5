"""Terminals: the LNbits `CreateTposData` subset this plugin implements,
checked field by field, and their storage."""

from __future__ import annotations

import json
import math
import re
import secrets
from typing import Any

from fulmen import (
    BadRequest,
    Forbidden,
    NotFound,
    PluginHost,
    WalletAuth,
    import_objects,
    now_ms,
    query,
)
from fulmen import check_currency as iso_currency

CURRENCY = re.compile(r"^(sats?|[A-Za-z]{3})$")
MAX_NAME = 100
MAX_TIP_OPTIONS = 10
MAX_ITEMS = 500

#: LNbits fields this plugin stores and serves.
FIELDS = ("name", "wallet", "currency", "tip_options", "tip_wallet", "items")
#: Read-only fields a client may send back unchanged (a whole Tpos object).
IGNORED = ("id", "created_at", "updated_at", "tax_inclusive")
#: LNbits features this plugin does not have: accepted only when empty or
#: off, so a request never silently loses a setting it asked for.
UNSUPPORTED = (
    "tax_default", "withdraw_time", "withdraw_between", "withdraw_limit",
    "withdraw_time_option", "withdraw_premium", "withdraw_pin", "withdraw_pin_disabled",
    "lnaddress", "lnaddress_cut", "enable_receipt_print", "enable_remote", "business_name",
    "business_address", "business_vat_id", "use_inventory", "inventory_id", "inventory_tags",
    "inventory_omit_tags", "fiat_provider", "stripe_card_payments", "stripe_reader_id",
    "allow_cash_settlement", "only_show_sats_on_bitcoin",
)


def is_empty(value: Any) -> bool:
    return value in (None, False, 0, "", [], "[]", {})


def check_fields(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    for key, value in data.items():
        if key in FIELDS or key in IGNORED:
            continue
        if key in UNSUPPORTED:
            if not is_empty(value):
                raise BadRequest(f"{key} is not supported by this host's tpos; leave it empty")
            continue
        raise BadRequest(f"unknown field {key!r}")
    return data


def number(value: Any, where: str, *, minimum: float, maximum: float, above: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{where} must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise BadRequest(f"{where} must be a finite number")
    if value < minimum or (above and value == minimum) or value > maximum:
        low = f"greater than {minimum:g}" if above else f"at least {minimum:g}"
        raise BadRequest(f"{where} must be {low} and at most {maximum:g}")
    return value


def json_list(value: Any, name: str) -> list[Any]:
    """A list, or (as LNbits stores it) a JSON string holding one."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise BadRequest(f"{name} must be a list or a JSON string of a list") from None
    if not isinstance(value, list):
        raise BadRequest(f"{name} must be a list or a JSON string of a list")
    return value


def check_tip_options(value: Any) -> str:
    options = json_list(value, "tip_options")
    if len(options) > MAX_TIP_OPTIONS:
        raise BadRequest(f"tip_options: at most {MAX_TIP_OPTIONS} options")
    checked = [number(o, f"tip_options[{i}]", minimum=0, maximum=100, above=True)
               for i, o in enumerate(options)]
    return json.dumps(checked)


def check_items(value: Any) -> str:
    items = json_list(value, "items")
    if len(items) > MAX_ITEMS:
        raise BadRequest(f"items: at most {MAX_ITEMS} items")
    checked = []
    for i, item in enumerate(items):
        where = f"items[{i}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} must be an object {{title, price, ...}}")
        unknown = set(item) - {"id", "title", "price", "tax", "image", "description",
                               "disabled", "categories"}
        if unknown:
            raise BadRequest(f"{where}: unknown field {sorted(unknown)[0]!r}")
        title = item.get("title")
        if not isinstance(title, str) or not title.strip() or len(title) > 200:
            raise BadRequest(f"{where}.title is required (at most 200 characters)")
        out: dict[str, Any] = {
            "title": title,
            "price": number(item.get("price"), f"{where}.price", minimum=0, maximum=1e12),
        }
        if item.get("tax") is not None:
            out["tax"] = number(item["tax"], f"{where}.tax", minimum=0, maximum=100)
        for key, limit in (("image", 2048), ("description", 1000), ("id", 64)):
            if item.get(key) is not None:
                if not isinstance(item[key], str) or len(item[key]) > limit:
                    raise BadRequest(f"{where}.{key} must be a string of at most {limit} characters")
                out[key] = item[key]
        disabled = item.get("disabled", False)
        if not isinstance(disabled, bool):
            raise BadRequest(f"{where}.disabled must be true or false")
        out["disabled"] = disabled
        categories = item.get("categories") or []
        if not isinstance(categories, list) or not all(isinstance(c, str) and len(c) <= 100
                                                       for c in categories):
            raise BadRequest(f"{where}.categories must be a list of strings")
        out["categories"] = categories
        checked.append(out)
    return json.dumps(checked)


async def check_wallet(host: PluginHost, auth: WalletAuth, value: Any) -> str:
    """The terminal's wallet: the key's own, or another wallet of its account."""
    if value is None or value == "" or value == auth.wallet_id:
        return auth.wallet_id
    if not isinstance(value, str):
        raise BadRequest("wallet must be a wallet id")
    try:
        wallet = await host.wallets.get(value)
    except NotFound:
        raise BadRequest("wallet: no wallet on this host has this id") from None
    if wallet.account_id != auth.account_id:
        raise Forbidden("wallet belongs to another account")
    return wallet.id


async def check_tip_wallet(host: PluginHost, value: Any, wallet: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest("tip_wallet must be a wallet id")
    try:
        tip_wallet = (await host.wallets.get(value)).id
    except NotFound:
        raise BadRequest("tip_wallet: no wallet on this host has this id") from None
    if tip_wallet == wallet:
        raise BadRequest("tip_wallet must differ from the terminal's wallet")
    return tip_wallet


def check_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("name is required")
    if len(value) > MAX_NAME:
        raise BadRequest(f"name is longer than {MAX_NAME} characters")
    return value.strip()


def check_currency(value: Any) -> str:
    if value is None or value == "":
        return "sats"
    if not isinstance(value, str) or not CURRENCY.match(value):
        raise BadRequest("currency must be \"sats\" or a three-letter ISO 4217 code such as EUR")
    if value.lower() in ("sat", "sats"):
        return "sats"
    return iso_currency(value)


def tpos_json(row: dict[str, Any]) -> dict[str, Any]:
    """LNbits's `Tpos` fields (the implemented subset); `tip_options` and
    `items` are JSON strings, as LNbits serves them."""
    return {
        "id": row["id"],
        "wallet": row["wallet"],
        "name": row["name"],
        "currency": row["currency"],
        "tip_options": row["tip_options"],
        "tip_wallet": row["tip_wallet"] or "",
        "items": row["items"],
    }


async def get_tpos(tpos_id: str) -> dict[str, Any]:
    rows = await query("SELECT * FROM tpos_pos WHERE id = {}", tpos_id)
    if not rows:
        raise NotFound("TPoS does not exist.")
    return rows[0]


async def owned_tpos(tpos_id: str, auth: WalletAuth) -> dict[str, Any]:
    row = await get_tpos(tpos_id)
    if row["wallet"] != auth.wallet_id:
        raise Forbidden("Not your TPoS.")
    return row


async def list_tposs(host: PluginHost, auth: WalletAuth, all_wallets: bool) -> list[dict[str, Any]]:
    wallet_ids = [auth.wallet_id]
    if all_wallets:
        wallet_ids = [w.id for w in await host.wallets.list_for_account(auth.account_id)]
    marks = ", ".join("{}" for _ in wallet_ids)
    return await query(
        f"SELECT * FROM tpos_pos WHERE wallet IN ({marks}) ORDER BY created_at, id", *wallet_ids
    )


async def create_tpos(host: PluginHost, auth: WalletAuth, data: Any) -> dict[str, Any]:
    check_fields(data)
    wallet = await check_wallet(host, auth, data.get("wallet"))
    values = (
        secrets.token_hex(11), wallet, check_name(data.get("name")),
        check_currency(data.get("currency")), check_tip_options(data.get("tip_options")),
        await check_tip_wallet(host, data.get("tip_wallet"), wallet),
        check_items(data.get("items")),
    )
    now = now_ms()
    rows = await query(
        "INSERT INTO tpos_pos (id, wallet, name, currency, tip_options, tip_wallet, items, "
        "created_at, updated_at) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}) RETURNING *",
        *values, now, now,
    )
    return rows[0]


async def update_tpos(host: PluginHost, auth: WalletAuth, tpos_id: str, data: Any) -> dict[str, Any]:
    """Change the fields present in `data`; the others keep their values."""
    row = await owned_tpos(tpos_id, auth)
    check_fields(data)
    if "id" in data and data["id"] != tpos_id:
        raise BadRequest("id in the body does not match the path")
    new = dict(row)
    if "wallet" in data:
        new["wallet"] = await check_wallet(host, auth, data["wallet"])
    if "name" in data:
        new["name"] = check_name(data["name"])
    if "currency" in data:
        new["currency"] = check_currency(data["currency"])
    if "tip_options" in data:
        new["tip_options"] = check_tip_options(data["tip_options"])
    if "items" in data:
        new["items"] = check_items(data["items"])
    if "tip_wallet" in data or "wallet" in data:
        new["tip_wallet"] = await check_tip_wallet(
            host, data.get("tip_wallet", row["tip_wallet"]), new["wallet"]
        )
    rows = await query(
        "UPDATE tpos_pos SET wallet = {}, name = {}, currency = {}, tip_options = {}, "
        "tip_wallet = {}, items = {}, updated_at = {} WHERE id = {} RETURNING *",
        new["wallet"], new["name"], new["currency"], new["tip_options"], new["tip_wallet"],
        new["items"], now_ms(), tpos_id,
    )
    return rows[0]


async def set_items(auth: WalletAuth, tpos_id: str, data: Any) -> dict[str, Any]:
    await owned_tpos(tpos_id, auth)
    if not isinstance(data, dict) or "items" not in data:
        raise BadRequest("body must be {\"items\": [...]}")
    rows = await query(
        "UPDATE tpos_pos SET items = {}, updated_at = {} WHERE id = {} RETURNING *",
        check_items(data["items"]), now_ms(), tpos_id,
    )
    return rows[0]


async def delete_tpos(auth: WalletAuth, tpos_id: str) -> None:
    await owned_tpos(tpos_id, auth)
    await query("DELETE FROM tpos_pos WHERE id = {}", tpos_id)


# --- wallet export / import ------------------------------------------------------------

EXPORTED = ("name", "currency", "tip_options", "tip_wallet", "items")


async def export_terminals(host: PluginHost, auth: WalletAuth) -> list[dict[str, Any]]:
    rows = await query("SELECT * FROM tpos_pos WHERE wallet = {} ORDER BY created_at, id",
                       auth.wallet_id)
    return [{k: tpos_json(r)[k] for k in EXPORTED} for r in rows]


async def import_terminals(host: PluginHost, auth: WalletAuth, data: Any) -> dict[str, Any]:
    """A `tip_wallet` that does not exist here is a conflict for that terminal."""

    async def create(item: Any) -> dict[str, Any]:
        if isinstance(item, dict):
            item = {k: item.get(k) for k in EXPORTED}
        row = await create_tpos(host, auth, item)
        return {"id": row["id"], "name": row["name"]}

    return await import_objects(data, create, lambda item: {"name": item.get("name")})
