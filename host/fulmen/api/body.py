"""Reading JSON bodies with errors that name the field."""

from __future__ import annotations

from typing import Any

from ..errors import BadRequest


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
    unit = data.get(unit_field) or "sat"
    if unit == "sat":
        msat = value * 1000
    elif unit == "msat":
        msat = value
    else:
        raise BadRequest(f"unit {unit!r} is not supported; use sat or msat")
    if msat != int(msat):
        raise BadRequest("amount must be a whole number of msat")
    if msat <= 0:
        raise BadRequest("amount must be greater than zero")
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
