"""Tests run against a real host with Fulmen's pytest fixtures (`fulmen`
starts a host on a fresh SQLite database; see fulmen.testing)."""

PLUGIN = "__plugin_id__"


async def test_paid_invoice_is_recorded_once(fulmen):
    client = await fulmen.start(plugins=[PLUGIN])
    alice = await fulmen.wallet("alice", sats=1000)
    shop = await fulmen.wallet("shop")
    r = await client.post(f"/{PLUGIN}/api/v1/invoices", json={"amount": 21, "memo": "tea"},
                          headers=shop.invoice_headers)
    assert r.status_code == 201, r.text
    assert (await fulmen.pay(alice, r.json()["bolt11"])).status_code == 201
    await fulmen.drain()
    r = await client.get(f"/{PLUGIN}/api/v1/payments", headers=shop.read_headers)
    assert [(p["amount_msat"], p["memo"]) for p in r.json()] == [(21000, "tea")]
    assert await fulmen.balance(shop) == 21000


async def test_other_invoices_are_not_recorded(fulmen):
    client = await fulmen.start(plugins=[PLUGIN])
    alice = await fulmen.wallet("alice", sats=1000)
    shop = await fulmen.wallet("shop")
    invoice = await fulmen.invoice(shop, 5)  # not created through the plugin
    assert (await fulmen.pay(alice, invoice["bolt11"])).status_code == 201
    await fulmen.drain()
    r = await client.get(f"/{PLUGIN}/api/v1/payments", headers=shop.read_headers)
    assert r.json() == []


async def test_bad_amount_is_refused_with_a_reason(fulmen):
    client = await fulmen.start(plugins=[PLUGIN])
    shop = await fulmen.wallet("shop")
    for body in ({}, {"amount": 0}, {"amount": "5"}, {"amount": 5, "memo": 7}):
        r = await client.post(f"/{PLUGIN}/api/v1/invoices", json=body, headers=shop.invoice_headers)
        assert r.status_code == 400, body
        assert r.json()["detail"]


async def test_keys_are_required(fulmen):
    client = await fulmen.start(plugins=[PLUGIN])
    r = await client.post(f"/{PLUGIN}/api/v1/invoices", json={"amount": 1})
    assert r.status_code == 401


async def test_page_renders(fulmen):
    client = await fulmen.start(plugins=[PLUGIN])
    r = await client.get(f"/{PLUGIN}/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "<h1>__plugin_title__</h1>" in r.text
    assert "/static/fulmen.css" in r.text  # on the host's base template
