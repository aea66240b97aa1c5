"""Reading JSON bodies with errors that name the field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ..errors import BadRequest

MAX_MSAT = 2_100_000_000_000_000_000  # all bitcoin there will ever be, in msat: fits a BIGINT


def text(data: dict[str, Any], name: str, default: str | None = None, max_len: int = 640) -> str | None:
    value = data.get(name, default)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    if len(value) > max_len:
        raise BadRequest(f"{name} is longer than {max_len} characters")
    return value


def integer(data: dict[str, Any], name: str, default: int | None = None, *, minimum: int | None = None,
            maximum: int | None = None) -> int | None:
    value = data.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise BadRequest(f"{name} must be a whole number")
    value = int(value)
    if not -MAX_MSAT <= value <= MAX_MSAT:
        raise BadRequest(f"{name} is out of range")
    if minimum is not None and value < minimum:
        raise BadRequest(f"{name} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise BadRequest(f"{name} must be at most {maximum}")
    return value


def amount_msat(data: dict[str, Any], unit_field: str = "unit") -> int:
    """LNbits's `amount` in `unit` ("sat" by default, or "msat"), as msat."""
    if "amount" not in data or data["amount"] is None:
        raise BadRequest("amount is required")
    value = data["amount"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest("amount must be a number")
    if value != value or value in (float("inf"), float("-inf")):
        raise BadRequest("amount must be a finite number")
    unit = data.get(unit_field)
    if unit is None or unit == "":
        unit = "sat"
    # Decimal of the JSON text, so 1.001 sat is exactly 1001 msat.
    exact = Decimal(str(value))
    if unit == "sat":
        msat = exact * 1000
    elif unit == "msat":
        msat = exact
    else:
        raise BadRequest(f"unit {unit!r} is not supported; use sat or msat")
    if msat != msat.to_integral_value():
        raise BadRequest("amount must be a whole number of msat")
    if msat <= 0:
        raise BadRequest("amount must be greater than zero")
    if msat > MAX_MSAT:
        raise BadRequest("amount is out of range")
    return int(msat)


def boolean(data: dict[str, Any], name: str, default: bool | None = None) -> bool | None:
    value = data.get(name, default)
    if value is None or isinstance(value, bool):
        return value
    raise BadRequest(f"{name} must be true or false")


def mapping(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{name} must be a JSON object")
    return value


def extra(data: dict[str, Any]) -> dict[str, Any]:
    """The free-form `extra` object; its `tag` (plugin tag) must be a short string."""
    value = mapping(data, "extra")
    tag = value.get("tag")
    if tag is not None and (not isinstance(tag, str) or len(tag) > 64):
        raise BadRequest("extra.tag must be a string of at most 64 characters")
    return value
