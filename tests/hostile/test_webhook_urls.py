"""Webhook URLs of lnurlp and withdraw links get, when saved, the checks
that sending applies (name normalised and resolved, .onion refused)."""

import pytest

BAD = ["https://\u2460\u2461\u2466.0.0.1/hook", "https://127.0.0.1/hook", "http://abc.onion/hook",
       "https://abcdefghij.onion/hook", "https://localhost/hook", "https://[::1]/hook"]


@pytest.mark.parametrize("url", BAD)
async def test_unsafe_webhook_urls_refused_when_saved(fulmen, url: str) -> None:
    client = await fulmen.start(plugins=["lnurlp", "withdraw"], allow_private_addresses=False)
    shop = await fulmen.wallet("shop", sats=10)
    r = await client.post("/lnurlp/api/v1/links", headers=shop.admin_headers,
                          json={"description": "d", "min": 1, "max": 10, "webhook_url": url})
    assert r.status_code == 400 and "webhook_url" in r.json()["detail"], r.text
    r = await client.post("/withdraw/api/v1/links", headers=shop.admin_headers,
                          json={"title": "t", "min_withdrawable": 1, "max_withdrawable": 5,
                                "uses": 1, "webhook_url": url})
    assert r.status_code == 400 and "webhook_url" in r.json()["detail"], r.text
    r = await client.post("/lnurlp/api/v1/links", headers=shop.admin_headers,
                          json={"description": "d", "min": 1, "max": 10})
    link = r.json()["id"]
    r = await client.put(f"/lnurlp/api/v1/links/{link}", headers=shop.admin_headers,
                         json={"webhook_url": url})
    assert r.status_code == 400, r.text


async def test_public_address_webhook_accepted(fulmen) -> None:
    client = await fulmen.start(plugins=["lnurlp"], allow_private_addresses=False)
    shop = await fulmen.wallet("shop", sats=10)
    r = await client.post("/lnurlp/api/v1/links", headers=shop.admin_headers,
                          json={"description": "d", "min": 1, "max": 10,
                                "webhook_url": "https://93.184.215.14/hook"})
    assert r.status_code == 201, r.text
    # A name that does not resolve now is checked again when sending.
    r = await client.post("/lnurlp/api/v1/links", headers=shop.admin_headers,
                          json={"description": "d", "min": 1, "max": 10,
                                "webhook_url": "https://hooks.example.invalid/hook"})
    assert r.status_code == 201, r.text
