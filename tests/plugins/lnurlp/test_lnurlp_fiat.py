"""lnurlp: fiat-priced links (LNbits's `currency` and `fiat_base_multiplier`).
Bounds are converted when the link is scanned; the callback accepts amounts
within 1% of the bounds converted at callback time, and fixes the price."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import bolt11
from fulmen import query

API = "/lnurlp/api/v1/links"
RATES = {"rates_providers": "", "rates_manual": "EUR=50000"}


async def scan(client: Any, link: dict[str, Any]) -> dict[str, Any]:
    r = await client.get(str(link["lnurl_url"]).replace("http://testserver.local", ""))
    return r.json()


async def callback(client: Any, answer: dict[str, Any], msat: int) -> Any:
    path = answer["callback"].replace("http://testserver.local", "")
    return await client.get(path, params={"amount": msat})


async def test_fiat_link_bounds_follow_the_rate(fulmen_db: Any) -> None:
    client = await fulmen_db.start(plugins=["lnurlp"], **RATES)
    shop = await fulmen_db.wallet("shop")
    r = await client.post(API, headers=shop.admin_headers, json={
        "description": "Coffee", "min": 1.5, "max": 10, "currency": "eur",
        "fiat_base_multiplier": 100, "username": "coffee"})
    assert r.status_code == 201, r.text
    link = r.json()
    assert (link["min"], link["max"], link["currency"], link["fiat_base_multiplier"]) == \
        (1.5, 10.0, "EUR", 100)
    rows = await query("SELECT min, max FROM lnurlp_pay_link WHERE id = {}", link["id"])
    assert (int(rows[0]["min"]), int(rows[0]["max"])) == (150, 1000)  # cents, as LNbits

    answer = await scan(client, link)
    assert answer["tag"] == "payRequest"
    # 1.5 EUR at 50,000 EUR/BTC = 3,000 sat; 10 EUR = 20,000 sat
    assert (answer["minSendable"], answer["maxSendable"]) == (3_000_000, 20_000_000)

    fulmen_db.host.rates.manual["EUR"] = Decimal(40000)
    answer = await scan(client, link)
    assert (answer["minSendable"], answer["maxSendable"]) == (3_750_000, 25_000_000)
    # Lightning Address: the same bounds.
    r = await client.get("/.well-known/lnurlp/coffee")
    assert (r.json()["minSendable"], r.json()["maxSendable"]) == (3_750_000, 25_000_000)

    # Tolerance: 1% below min and 1% above max, at the callback's rate.
    for msat, ok in ((3_712_500, True), (3_712_499, False), (25_250_000, True),
                     (25_250_001, False)):
        r = await callback(client, answer, msat)
        assert ("pr" in r.json()) is ok, (msat, r.json())
    r = await callback(client, answer, 5_000_000)
    pr = r.json()["pr"]
    assert bolt11.decode(pr).amount_msat == 5_000_000  # the price is fixed now
    payment = (await client.get(f"/api/v1/payments/{bolt11.decode(pr).payment_hash}",
                                headers=shop.read_headers)).json()["details"]
    # 5,000,000 msat at 40,000 EUR/BTC = 2.00 EUR
    assert payment["extra"]["fiat_amount"] == 2.0
    assert payment["extra"]["fiat_currency"] == "EUR"
    assert payment["extra"]["fiat_rate"] == 2500.0
    # The rate moves again: the invoice keeps its amount and is paid in full.
    fulmen_db.host.rates.manual["EUR"] = Decimal(80000)
    payer = await fulmen_db.wallet("payer", sats=10_000)
    assert (await fulmen_db.pay(payer, pr)).status_code in (200, 201)
    assert await fulmen_db.balance(shop) == 5_000_000


async def test_fiat_link_without_a_rate_is_an_lnurl_error(fulmen: Any) -> None:
    client = await fulmen.start(plugins=["lnurlp"], **RATES)
    shop = await fulmen.wallet("shop")
    r = await client.post(API, headers=shop.admin_headers,
                          json={"description": "Tea", "min": 1, "max": 2, "currency": "GBP"})
    assert r.status_code == 201, r.text
    link = r.json()
    r = await client.get(f"/lnurlp/{link['id']}")
    assert r.status_code == 503
    assert r.json()["status"] == "ERROR" and "GBP" in r.json()["reason"]
    r = await client.get(f"/lnurlp/api/v1/lnurl/cb/{link['id']}", params={"amount": 100_000})
    assert r.status_code == 503 and r.json()["status"] == "ERROR"


async def test_changing_the_unit_needs_new_bounds(fulmen: Any) -> None:
    client = await fulmen.start(plugins=["lnurlp"], **RATES)
    shop = await fulmen.wallet("shop")
    r = await client.post(API, headers=shop.admin_headers,
                          json={"description": "Tea", "min": 100, "max": 200})
    link = r.json()
    assert link["currency"] is None and link["min"] == 100
    r = await client.put(f"{API}/{link['id']}", headers=shop.admin_headers,
                         json={"currency": "EUR"})
    assert r.status_code == 400 and "min" in r.json()["detail"]
    r = await client.put(f"{API}/{link['id']}", headers=shop.admin_headers,
                         json={"currency": "EUR", "min": 0.5, "max": 2.25})
    assert r.status_code == 200, r.text
    link = r.json()
    assert (link["min"], link["max"], link["currency"]) == (0.5, 2.25, "EUR")
    page = (await client.get(f"/lnurlp/link/{link['id']}")).text
    assert "0.5 to 2.25 EUR" in page
    public = (await client.get(f"{API}/public/{link['id']}")).json()
    assert (public["min"], public["max"], public["currency"]) == (0.5, 2.25, "EUR")
    # Sending the whole link back changes nothing.
    r = await client.put(f"{API}/{link['id']}", headers=shop.admin_headers, json=link)
    assert r.status_code == 200 and (r.json()["min"], r.json()["max"]) == (0.5, 2.25)
    # Back to sats.
    r = await client.put(f"{API}/{link['id']}", headers=shop.admin_headers,
                         json={"currency": "sat", "min": 10, "max": 20})
    assert r.status_code == 200 and (r.json()["currency"], r.json()["min"]) == (None, 10)
    # Precision: with a multiplier of 100, cents at most.
    r = await client.put(f"{API}/{link['id']}", headers=shop.admin_headers,
                         json={"currency": "EUR", "min": 0.125, "max": 1})
    assert r.status_code == 400 and "min" in r.json()["detail"]
