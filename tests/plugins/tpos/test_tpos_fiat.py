"""tpos: a terminal priced in its currency: the host converts at its current
rate when the invoice is made, and the fiat amount is shown and stored."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import bolt11

API = "/tpos/api/v1/tposs"
RATES = {"rates_providers": "", "rates_manual": "EUR=50000,JPY=8000000,KRW=200000000"}


async def make_tpos(client: Any, wallet: Any, **fields: Any) -> dict[str, Any]:
    body = {"name": "Café", "currency": "EUR", **fields}
    r = await client.post(API, json=body, headers=wallet.admin_headers)
    assert r.status_code == 201, r.text
    return r.json()


async def test_fiat_sale_with_tip(fulmen_db: Any) -> None:
    client = await fulmen_db.start(plugins=["tpos"], **RATES)
    shop = await fulmen_db.wallet("shop")
    staff = await fulmen_db.wallet("staff")
    customer = await fulmen_db.wallet("customer", sats=100_000)
    t = await make_tpos(client, shop, tip_wallet=staff.id, tip_options=[10])
    assert t["currency"] == "EUR"
    r = await client.post(f"{API}/{t['id']}/invoices",
                          json={"amount_fiat": 13.75, "tip_amount_fiat": "1.25"})
    assert r.status_code == 201, r.text
    inv = r.json()
    # 13.75 EUR at 50,000 EUR/BTC = 27,500,000 msat; the tip 1.25 EUR = 2,500,000 msat
    assert inv["amount"] == 27_500_000
    assert bolt11.decode(inv["bolt11"]).amount_msat == 27_500_000
    extra = inv["extra"]
    assert (extra["amount_fiat"], extra["tip_amount_fiat"]) == (13.75, 1.25)
    assert (extra["fiat_amount"], extra["fiat_currency"]) == (13.75, "EUR")
    assert extra["fiat_rate"] == extra["exchange_rate"] == 2000.0
    assert (extra["amount"], extra["tip_amount"]) == (25_000, 2_500)
    # The rate moves before the customer pays: the invoice does not change.
    fulmen_db.host.rates.manual["EUR"] = Decimal(100000)
    assert (await fulmen_db.pay(customer, inv["bolt11"])).status_code == 201
    await fulmen_db.drain()
    assert await fulmen_db.balance(shop) == 25_000_000
    assert await fulmen_db.balance(staff) == 2_500_000
    # The next sale uses the new rate; a client's own `amount` and rate are not used.
    r = await client.post(f"{API}/{t['id']}/invoices",
                          json={"amount_fiat": 1, "amount": 1, "exchange_rate": 1})
    assert r.status_code == 201, r.text
    assert r.json()["amount"] == 1_000_000 and r.json()["extra"]["exchange_rate"] == 1000.0
    assert await fulmen_db.host.wallets.audit() == []


async def test_fiat_terminal_bad_input(fulmen_db: Any) -> None:
    client = await fulmen_db.start(plugins=["tpos"], **RATES)
    shop = await fulmen_db.wallet("shop")
    staff = await fulmen_db.wallet("staff")
    eur = await make_tpos(client, shop, tip_wallet=staff.id)
    jpy = await make_tpos(client, shop, currency="jpy")
    gbp = await make_tpos(client, shop, currency="GBP")
    krw = await make_tpos(client, shop, currency="KRW")
    cases = [
        (eur, {"amount": 100}, "amount_fiat is required"),
        (eur, {"amount_fiat": 1.234}, "decimal places"),
        (eur, {"amount_fiat": -1}, "greater than zero"),
        (eur, {"amount_fiat": 0}, "greater than zero"),
        (eur, {"amount_fiat": "NaN"}, "finite"),
        (eur, {"amount_fiat": True}, "number"),
        (krw, {"amount_fiat": 1}, "less than 1 sat"),  # 1 KRW = 500 msat here
        (eur, {"amount_fiat": 1, "tip_amount_fiat": 2}, "cannot be larger"),
        (eur, {"amount_fiat": 1, "tip_amount_fiat": -1}, "greater than zero"),
        (eur, {"amount_fiat": 10_000}, "limit"),
        (jpy, {"amount_fiat": 1.5}, "0 decimal places"),
    ]
    for tpos, body, message in cases:
        r = await client.post(f"{API}/{tpos['id']}/invoices", json=body)
        assert r.status_code == 400, (body, r.text)
        assert message in r.json()["detail"], (body, r.json())
    r = await client.post(f"{API}/{gbp['id']}/invoices", json={"amount_fiat": 5})
    assert r.status_code == 503 and "GBP" in r.json()["detail"]
    r = await client.get("/api/v1/payments", headers=shop.read_headers)
    assert r.json() == []  # no invoice was created by any refused request
    r = await client.post(f"{API}/{jpy['id']}/invoices", json={"amount_fiat": 800})
    assert r.status_code == 201 and r.json()["amount"] == 10_000_000


async def test_terminal_page_keypad_in_the_currency(fulmen: Any) -> None:
    client = await fulmen.start(plugins=["tpos"], **RATES)
    shop = await fulmen.wallet("shop")
    eur = await make_tpos(client, shop)
    jpy = await make_tpos(client, shop, currency="JPY")
    sats = await make_tpos(client, shop, currency="sats")
    for t, shown, decimals in ((eur, "0.00 EUR", 2), (jpy, "0 JPY", 0), (sats, "0 sat", 0)):
        page = (await client.get(f"/tpos/{t['id']}")).text
        assert f'<div id="display">{shown}</div>' in page
        public = json.loads(re.search(r"const tpos = (\{.*?\});", page).group(1))
        assert public["decimals"] == decimals and public["fiat"] is (t is not sats)
    assert "amount_fiat" in page  # the page sends fiat amounts for fiat terminals
    r = await client.put(f"{API}/{eur['id']}/items", headers=shop.admin_headers,
                         json={"items": [{"title": "Espresso", "price": 2.5},
                                         {"title": "Old", "price": 9, "disabled": True}]})
    assert r.status_code == 200, r.text
    page = (await client.get(f"/tpos/{eur['id']}")).text
    assert "Espresso · 2.50 EUR" in page and 'data-price="2.5"' in page
    assert "Old" not in page
