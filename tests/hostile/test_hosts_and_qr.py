"""Host headers and QR codes: 400, never 500, and the configured base URL wins."""

import pytest
from fulmen.public_url import valid_host_header


@pytest.mark.parametrize("value", ["x:99999", "[::1", "a b", "x:", "x:0", "[::1]x", "a:b:c", ""])
def test_bad_host_headers(value: str) -> None:
    assert not valid_host_header(value)


@pytest.mark.parametrize("value", ["example.com", "example.com:443", "127.0.0.1:5001", "[::1]:80",
                                   "[::1]", "localhost"])
def test_good_host_headers(value: str) -> None:
    assert valid_host_header(value)


async def test_bad_host_on_public_lnurl_routes(fulmen) -> None:
    client = await fulmen.start(plugins=["lnurlp"])
    shop = await fulmen.wallet("shop")
    r = await client.post("/lnurlp/api/v1/links", headers=shop.admin_headers,
                          json={"description": "d", "min": 1, "max": 10})
    link = r.json()["id"]
    for bad in ("x:99999", "[::1"):
        r = await client.get(f"/lnurlp/api/v1/lnurl/{link}", headers={"host": bad})
        assert r.status_code == 400, (bad, r.text)
    r = await client.get(f"/lnurlp/api/v1/lnurl/{link}", headers={"host": "evil.example:8080"})
    assert r.status_code == 200 and "evil.example:8080" in r.json()["callback"]


async def test_configured_base_url_and_allowed_hosts(fulmen) -> None:
    client = await fulmen.start(plugins=["lnurlp"], base_url="https://pay.example.com",
                                allowed_hosts="pay.example.com,testserver.local")
    shop = await fulmen.wallet("shop")
    r = await client.post("/lnurlp/api/v1/links", headers=shop.admin_headers,
                          json={"description": "d", "min": 1, "max": 10})
    link = r.json()["id"]
    r = await client.get(f"/lnurlp/api/v1/lnurl/{link}", headers={"host": "pay.example.com"})
    assert r.json()["callback"].startswith("https://pay.example.com/"), r.text
    r = await client.get(f"/lnurlp/api/v1/lnurl/{link}", headers={"host": "evil.example"})
    assert r.status_code == 400, r.text


@pytest.mark.parametrize("length", [3000, 3400, 3700, 4000])
async def test_long_qr_text_is_400_not_500(fulmen, length: int) -> None:
    client = await fulmen.start()
    r = await client.get("/api/v1/qrcode/" + "é" * length)
    assert r.status_code in (200, 400), r.text
    if r.status_code == 400:
        assert "too long" in r.json()["detail"]
