"""LNbits's `CreatePayLinkData`, checked field by field, and the `PayLink`
JSON this plugin serves."""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlparse

from fulmen import BadRequest, json_field, text_field

USERNAME = re.compile(r"^[a-z0-9\-_.]{1,210}$")
DOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:\d{1,5})?$")
MAX_DESCRIPTION = 1000
MAX_COMMENT_CHARS = 799  # LNbits's limit
MAX_SUCCESS_TEXT = 144  # LUD-09: message and url description
MAX_URL = 2048

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
        raise BadRequest(f"{name} must be a whole number of sats (fiat amounts are not supported)")
    if value < 1:
        raise BadRequest(f"{name} must be at least 1 sat")
    return int(value)


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
    if current is None or "min" in sent:
        if data.get("min") is None:
            raise BadRequest("min is required")
        merged["min"] = whole_sats(data["min"], "min")
    if current is None or "max" in sent:
        merged["max"] = whole_sats(data["max"], "max") if data.get("max") is not None else merged["min"]
    if merged["max"] < merged["min"]:
        raise BadRequest("max must be at least min")
    if merged["max"] > max_sats:
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
    currency = data.get("currency")
    if currency not in (None, "", "sat", "sats"):
        raise BadRequest("currency: fiat-priced links are not supported; amounts are in sats")
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
    if data.get("fiat_base_multiplier") not in (None, 100):
        raise BadRequest("fiat_base_multiplier is not supported (amounts are whole sats)")
    return merged


def iso(ms: int) -> str:
    return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc).isoformat()


def link_json(row: dict[str, Any], lnurl: str, url: str, lud17: str) -> dict[str, Any]:
    """LNbits's `PayLink` fields, with the link's LNURL forms."""
    return {
        "id": row["id"],
        "wallet": row["wallet"],
        "description": row["description"],
        "min": int(row["min"]),
        "max": int(row["max"]),
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
        "currency": None,
        "comment_chars": int(row["comment_chars"]),
        "fiat_base_multiplier": 100,
        "disposable": bool(row["disposable"]),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "lnurl": lnurl,
        "lnurl_url": url,
        "lud17": lud17,
    }
