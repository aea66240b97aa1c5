"""LNbits's `CreateWithdrawData`, checked field by field, and the
`WithdrawLink` JSON this plugin serves."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

from fulmen import BadRequest, json_field, text_field

MAX_USES = 250  # LNbits's limit
MAX_WAIT = 31_536_000  # one year, in seconds
MAX_TITLE = 639

FIELDS = ("title", "min_withdrawable", "max_withdrawable", "uses", "wait_time", "is_unique",
          "webhook_url", "webhook_headers", "webhook_body", "custom_url", "enabled")
#: Read-only fields a client may send back unchanged (a whole WithdrawLink).
IGNORED = ("id", "wallet", "unique_hash", "k1", "open_time", "used", "usescsv", "number",
           "created_at", "updated_at", "lnurl", "lnurl_url")


def whole(value: Any, name: str, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise BadRequest(f"{name} must be a whole number")
    if not minimum <= value <= maximum:
        raise BadRequest(f"{name} must be from {minimum} to {maximum}")
    return int(value)


def boolean(data: dict[str, Any], name: str, default: bool) -> bool:
    value = data.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false")
    return value


def check_link(data: Any, current: dict[str, Any] | None, max_sats: int) -> dict[str, Any]:
    """The columns to store for a create (`current` None) or an update
    (fields not sent keep their values)."""
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    for key in data:
        if key not in FIELDS and key not in IGNORED:
            raise BadRequest(f"unknown field {key!r}")
    merged: dict[str, Any] = dict(current or {})
    new = current is None

    def wants(name: str) -> bool:
        return new or name in data

    if wants("title"):
        value = data.get("title")
        if not isinstance(value, str) or not value.strip():
            raise BadRequest("title is required")
        if len(value) > MAX_TITLE:
            raise BadRequest(f"title is longer than {MAX_TITLE} characters")
        merged["title"] = value
    for name in ("min_withdrawable", "max_withdrawable"):
        if wants(name):
            if data.get(name) is None:
                raise BadRequest(f"{name} is required (sats)")
            merged[name] = whole(data[name], name, 1, max_sats)
    if merged["max_withdrawable"] < merged["min_withdrawable"]:
        raise BadRequest("max_withdrawable must be at least min_withdrawable")
    if wants("uses"):
        if data.get("uses") is None:
            raise BadRequest("uses is required")
        merged["uses"] = whole(data["uses"], "uses", 1, MAX_USES)
        if current is not None and merged["uses"] < int(current["used"]):
            raise BadRequest(f"uses cannot go below the {current['used']} uses already taken")
    if wants("wait_time"):
        merged["wait_time"] = whole(data.get("wait_time") or 0, "wait_time", 0, MAX_WAIT)
    if wants("is_unique"):
        merged["is_unique"] = boolean(data, "is_unique", False)
    if wants("enabled"):
        merged["enabled"] = boolean(data, "enabled", True)
    if wants("webhook_url"):
        value = text_field(data, "webhook_url", 2048)
        if value is not None:
            parsed = urlparse(value)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise BadRequest("webhook_url must be an http or https URL")
        merged["webhook_url"] = value
    if wants("webhook_headers"):
        merged["webhook_headers"] = json_field(data, "webhook_headers", headers=True)
    if wants("webhook_body"):
        merged["webhook_body"] = json_field(data, "webhook_body")
    if wants("custom_url"):
        merged["custom_url"] = text_field(data, "custom_url", 2048)
    return merged


def iso(ms: int) -> str:
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC).isoformat()


def link_json(row: dict[str, Any], unique_hash: str | None, lnurl: str | None,
              url: str | None) -> dict[str, Any]:
    """LNbits's `WithdrawLink` fields. `k1` is null: every scan gets its own."""
    used, uses = int(row["used"]), int(row["uses"])
    open_ms = int(row["last_used_at"]) + int(row["wait_time"]) * 1000 if int(row["last_used_at"]) else 0
    return {
        "id": row["id"],
        "wallet": row["wallet"],
        "title": row["title"],
        "min_withdrawable": int(row["min_withdrawable"]),
        "max_withdrawable": int(row["max_withdrawable"]),
        "uses": uses,
        "wait_time": int(row["wait_time"]),
        "is_unique": bool(row["is_unique"]),
        "unique_hash": unique_hash,
        "k1": None,
        "open_time": max(open_ms, int(row["created_at"])) // 1000,
        "used": used,
        "usescsv": ",".join(str(n) for n in range(used + 1, uses + 1)),
        "number": used,
        "webhook_url": row["webhook_url"],
        "webhook_headers": row["webhook_headers"],
        "webhook_body": row["webhook_body"],
        "custom_url": row["custom_url"],
        "enabled": bool(row["enabled"]),
        "created_at": iso(row["created_at"]),
        "lnurl": lnurl,
        "lnurl_url": url,
    }
