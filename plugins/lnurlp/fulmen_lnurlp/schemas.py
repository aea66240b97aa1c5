"""LNbits's `CreatePayLinkData`, checked field by field, and the `PayLink`
JSON this plugin serves."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlparse

from fulmen import BadRequest, check_currency, json_field, text_field

USERNAME = re.compile(r"^[a-z0-9\-_.]{1,210}$")
DOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:\d{1,5})?$")
MAX_DESCRIPTION = 1000
MAX_COMMENT_CHARS = 799  # LNbits's limit
MAX_SUCCESS_TEXT = 144  # LUD-09: message and url description
MAX_URL = 2048
MAX_MULTIPLIER = 1_000_000
SAT_CURRENCIES = (None, "", "sat", "sats")

#: Fields stored and served.
FIELDS = (
    "description", "wallet", "min", "max", "comment_chars", "username", "domain",
    "success_text", "success_url", "webhook_url", "webhook_headers", "webhook_body",
    "disposable", "currency", "fiat_base_multiplier", "zaps",
)
#: Read-only fields a client may send back unchanged (a whole PayLink).
IGNORED = ("id", "served_meta", "served_pr", "created_at", "updated_at", "lnurl", "lnurl_url",
           "lud17")


def check_fields(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    for key in data:
        if key not in FIELDS and key not in IGNORED:
            raise BadRequest(f"unknown field {key!r}")
    return data


def whole_sats(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{name} must be a number of sats")
    if not math.isfinite(value) or value != int(value):
        raise BadRequest(f"{name} must be a whole number of sats (or set a currency to price the link in fiat)")
    if value < 1:
        raise BadRequest(f"{name} must be at least 1 sat")
    return int(value)


def fiat_units(value: Any, name: str, multiplier: int) -> int:
    """A fiat amount as whole `1/multiplier` units (cents for 100), as LNbits stores it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{name} must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise BadRequest(f"{name} must be a finite number")
    try:
        scaled = Decimal(str(value)) * multiplier
    except InvalidOperation:
        raise BadRequest(f"{name} must be a number") from None
    if scaled != scaled.to_integral_value():
        raise BadRequest(f"{name} has more decimals than fiat_base_multiplier {multiplier} allows")
    if scaled < 1:
        raise BadRequest(f"{name} must be at least {Decimal(1) / multiplier} of the currency")
    if scaled > 10**15:
        raise BadRequest(f"{name} is out of range")
    return int(scaled)


def check_pricing(data: dict[str, Any], current: dict[str, Any] | None,
                  merged: dict[str, Any]) -> bool:
    """`currency` (an ISO 4217 code; empty or "sat": sats) and
    `fiat_base_multiplier`. Returns True if the unit of min and max changed."""
    sent = set(data)
    if current is not None and not sent & {"currency", "fiat_base_multiplier"}:
        return False
    old = current or {}
    before = old.get("currency"), int(old.get("fiat_base_multiplier") or 100)
    currency = data.get("currency", before[0])
    merged["currency"] = None if currency in SAT_CURRENCIES else check_currency(currency)
    multiplier = data.get("fiat_base_multiplier", before[1])
    if multiplier is None:
        multiplier = 100
    if isinstance(multiplier, bool) or not isinstance(multiplier, int) \
            or not 1 <= multiplier <= MAX_MULTIPLIER:
        raise BadRequest(f"fiat_base_multiplier must be a whole number from 1 to {MAX_MULTIPLIER}")
    merged["fiat_base_multiplier"] = multiplier
    if current is None:
        return True
    changed = (merged["currency"], multiplier if merged["currency"] else 100) != \
        (before[0], before[1] if before[0] else 100)
    if changed and "min" not in sent:
        raise BadRequest("min (and max) must be sent when currency or fiat_base_multiplier changes")
    return changed


def http_url(data: dict[str, Any], name: str, https_only: bool) -> str | None:
    value = text_field(data, name, MAX_URL)
    if value is None:
        return None
    parsed = urlparse(value)
    allowed = ("https",) if https_only else ("https", "http")
    if parsed.scheme not in allowed or not parsed.hostname:
        raise BadRequest(f"{name} must be an {' or '.join(allowed)} URL")
    return value


def check_link(data: Any, current: dict[str, Any] | None, max_sats: int,
               callback_host: str | None = None, zaps_supported: bool = False) -> dict[str, Any]:
    """The columns to store for a create (`current` None) or an update (fields
    not sent keep their values). `callback_host`: the host name of the
    callback URL served to wallets (LUD-09: a `url` success action must be on
    that domain, and wallets refuse to pay otherwise). `zaps_supported`:
    whether a plugin serving NIP-57 zaps (nostrzaps) is enabled."""
    data = check_fields(data)
    merged: dict[str, Any] = dict(current or {})
    sent = set(data)

    if current is None or "description" in sent:
        value = data.get("description")
        if not isinstance(value, str) or not value.strip():
            raise BadRequest("description is required")
        if len(value) > MAX_DESCRIPTION:
            raise BadRequest(f"description is longer than {MAX_DESCRIPTION} characters")
        merged["description"] = value
    unit_changed = check_pricing(data, current, merged)
    fiat = merged.get("currency")

    def amount(name: str) -> int:
        if fiat:
            return fiat_units(data[name], name, merged["fiat_base_multiplier"])
        return whole_sats(data[name], name)

    if current is None or "min" in sent:
        if data.get("min") is None:
            raise BadRequest("min is required")
        merged["min"] = amount("min")
    if current is None or "max" in sent or unit_changed:
        merged["max"] = amount("max") if data.get("max") is not None else merged["min"]
    if merged["max"] < merged["min"]:
        raise BadRequest("max must be at least min")
    if not fiat and merged["max"] > max_sats:
        raise BadRequest(f"max is above this host's invoice limit of {max_sats} sats")
    if current is None or "comment_chars" in sent:
        value = data.get("comment_chars") or 0
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COMMENT_CHARS:
            raise BadRequest(f"comment_chars must be a whole number from 0 to {MAX_COMMENT_CHARS}")
        merged["comment_chars"] = value
    if current is None or "username" in sent:
        value = data.get("username")
        if value is None or value == "":
            merged["username"] = None
        elif not isinstance(value, str) or not USERNAME.match(value):
            raise BadRequest("username may hold only a-z, 0-9, '-', '_' and '.' (1 to 210 characters)")
        else:
            merged["username"] = value
    if current is None or "domain" in sent:
        value = text_field(data, "domain", 253)
        if value is not None and not DOMAIN.match(value.lower()):
            raise BadRequest("domain must be a host name such as pay.example.com")
        merged["domain"] = value.lower() if value else None
    if current is None or "success_text" in sent:
        merged["success_text"] = text_field(data, "success_text", MAX_SUCCESS_TEXT)
    if current is None or "success_url" in sent:
        merged["success_url"] = http_url(data, "success_url", https_only=True)
        url_host = (urlparse(merged["success_url"]).hostname or "") if merged["success_url"] else ""
        if url_host and callback_host and url_host != callback_host.lower():
            raise BadRequest(
                f"success_url must be on this host's domain ({callback_host}): LUD-09 wallets "
                "refuse to pay when the success URL's domain differs from the callback's"
            )
    if current is None or "webhook_url" in sent:
        merged["webhook_url"] = http_url(data, "webhook_url", https_only=False)
    if current is None or "webhook_headers" in sent:
        merged["webhook_headers"] = json_field(data, "webhook_headers", headers=True)
    if current is None or "webhook_body" in sent:
        merged["webhook_body"] = json_field(data, "webhook_body")
    if current is None or "disposable" in sent:
        value = data.get("disposable", True)
        if value is None:
            value = True
        if not isinstance(value, bool):
            raise BadRequest("disposable must be true or false")
        merged["disposable"] = value
    # LNbits features this plugin does not have: accepted only when off.
    if current is None or "zaps" in sent:
        value = data.get("zaps")
        if value is None:
            value = False
        if not isinstance(value, bool):
            raise BadRequest("zaps must be true or false")
        if value and not zaps_supported:
            raise BadRequest("zaps (NIP-57) need the nostrzaps plugin, which is not installed "
                             "or not enabled on this host")
        merged["zaps"] = value
    return merged


def iso(ms: int) -> str:
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC).isoformat()


def shown_amount(row: dict[str, Any], name: str) -> int | float:
    """min or max as LNbits serves them: sats, or the fiat amount."""
    if row.get("currency"):
        return float(Decimal(int(row[name])) / int(row["fiat_base_multiplier"] or 100))
    return int(row[name])


def link_json(row: dict[str, Any], lnurl: str, url: str, lud17: str) -> dict[str, Any]:
    """LNbits's `PayLink` fields, with the link's LNURL forms."""
    return {
        "id": row["id"],
        "wallet": row["wallet"],
        "description": row["description"],
        "min": shown_amount(row, "min"),
        "max": shown_amount(row, "max"),
        "served_meta": int(row["served_meta"]),
        "served_pr": int(row["served_pr"]),
        "username": row["username"],
        "zaps": bool(row.get("zaps")),
        "domain": row["domain"],
        "webhook_url": row["webhook_url"],
        "webhook_headers": row["webhook_headers"],
        "webhook_body": row["webhook_body"],
        "success_text": row["success_text"],
        "success_url": row["success_url"],
        "currency": row.get("currency"),
        "comment_chars": int(row["comment_chars"]),
        "fiat_base_multiplier": int(row.get("fiat_base_multiplier") or 100),
        "disposable": bool(row["disposable"]),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "lnurl": lnurl,
        "lnurl_url": url,
        "lud17": lud17,
    }
