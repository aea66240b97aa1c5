"""Every fiat endpoint's bad input is a 400 naming the problem, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

MANUAL = {"rates_providers": "", "rates_manual": "USD=50000,JPY=7500000"}

BAD_AMOUNTS: list[tuple[Any, str]] = [
    (-1, "greater than zero"),
    (0, "greater than zero"),
    ("NaN", "finite"),
    ("Infinity", "finite"),
    ("-inf", "finite"),
    (1.001, "decimal places"),
    ("0.001", "decimal places"),
    (True, "number"),
    ("ten", "number"),
    ([1], "number"),
    (1e300, "out of range"),
]


def check_400(r: Any, *words: str) -> None:
    assert r.status_code == 400, (r.status_code, r.text)
    detail = r.json()["detail"]
    for word in words:
        assert word in detail, (word, detail)


async def test_bad_fiat_input_everywhere(fulmen_db: Any) -> None:
    c = await fulmen_db.start(**MANUAL)
    w = await fulmen_db.wallet()

    # GET /api/v1/rate/{currency}
    for code in ("XYZ", "usdd", "US", "BTC", "123", "sat"):
        check_400(await c.get(f"/api/v1/rate/{code}"), "ISO 4217")

    # POST /api/v1/payments with a fiat unit
    def invoice(**body: Any) -> Any:
        return c.post("/api/v1/payments", headers=w.invoice_headers, json={"out": False, **body})

    check_400(await invoice(amount=1, unit="XYZ"), "unit", "ISO 4217")
    check_400(await invoice(amount=1, unit=7), "unit")
    check_400(await invoice(unit="USD"), "amount is required")
    for amount, words in BAD_AMOUNTS:
        check_400(await invoice(amount=amount, unit="USD"), "amount", words)
    check_400(await invoice(amount=1.5, unit="JPY"), "amount", "0 decimal places")
    # 0.01 JPY does not exist; 1 JPY is 13333 msat, fine.
    assert (await invoice(amount=1, unit="jpy")).status_code == 201
    # JSON's NaN literal is not JSON: refused before it reaches a handler.
    r = await c.post("/api/v1/payments", headers=w.invoice_headers,
                     content=b'{"out": false, "amount": NaN, "unit": "USD"}')
    assert r.status_code == 400, r.text
    # Above the host's invoice limit (0.1 BTC = 5000 USD here).
    r = await invoice(amount=6000, unit="USD")
    assert r.status_code == 400 and "amount" in r.json()["detail"].lower(), r.text

    # POST /api/v1/conversion
    def convert(**body: Any) -> Any:
        return c.post("/api/v1/conversion", json=body)

    check_400(await convert(**{"from": "XYZ", "amount": 1, "to": "sat"}), "from", "ISO 4217")
    check_400(await convert(**{"from": "sat", "amount": 1, "to": "usd,XYZ"}), "to", "ISO 4217")
    check_400(await convert(**{"from": "sat", "amount": 1, "to": ""}), "to")
    check_400(await convert(**{"from": "sat", "to": "usd"}), "amount is required")
    check_400(await convert(**{"from": 5, "amount": 1, "to": "usd"}), "from")
    for amount, words in BAD_AMOUNTS:
        check_400(await convert(**{"from": "USD", "amount": amount, "to": "sat"}), "amount", words)
    check_400(await convert(**{"from": "sat", "amount": 1.0001, "to": "usd"}), "3 decimal places")
    check_400(await convert(**{"from": "sat", "amount": -5, "to": "usd"}), "greater than zero")
    r = await c.post("/api/v1/conversion", content=b"[1, 2]")
    assert r.status_code == 400, r.text

    # PATCH /api/v1/wallet: the display currency
    def patch(**body: Any) -> Any:
        return c.patch("/api/v1/wallet", headers=w.admin_headers, json=body)

    for code in ("XYZ", "BTC", "dollars", "U$D"):
        check_400(await patch(currency=code), "currency")
    check_400(await patch(currency=5), "currency")
    r = await c.get("/api/v1/wallet", headers=w.read_headers)
    assert r.json()["currency"] is None  # nothing was stored
    r = await patch(currency="jpy")
    assert r.status_code == 200 and r.json()["currency"] == "JPY"


@pytest.mark.parametrize("unit", ["sat", "msat", None])
async def test_sat_units_still_work_without_any_rate(fulmen: Any, unit: str | None) -> None:
    c = await fulmen.start(rates_providers="")
    w = await fulmen.wallet()
    body: dict[str, Any] = {"out": False, "amount": 21}
    if unit:
        body["unit"] = unit
    r = await c.post("/api/v1/payments", headers=w.invoice_headers, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["amount"] == (21 if unit == "msat" else 21_000)
    assert "fiat_currency" not in r.json()["extra"]
