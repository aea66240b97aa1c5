"""tpos: terminals API with key kinds, public invoices, tips moved once, the page."""

import asyncio
import json

import fulmen_tpos
from fulmen import query

API = "/tpos/api/v1/tposs"


async def make_tpos(client, wallet, **fields):
    body = {"name": "Coffee", "currency": "sats", **fields}
    r = await client.post(API, json=body, headers=wallet.admin_headers)
    assert r.status_code == 201, r.text
    return r.json()


async def test_crud(fulmen_db):
    client = await fulmen_db.start(plugins=["tpos"])
    shop = await fulmen_db.wallet("shop")
    staff = await fulmen_db.wallet("staff")
    t = await make_tpos(client, shop, currency="eur", tip_options=[5, 10, 12.5], tip_wallet=staff.id)
    assert t["wallet"] == shop.id and t["name"] == "Coffee" and t["currency"] == "EUR"
    assert json.loads(t["tip_options"]) == [5, 10, 12.5] and t["tip_wallet"] == staff.id
    assert t["items"] == "[]"
    # LNbits clients send tip_options as a JSON string
    t2 = await make_tpos(client, shop, name="Bar", tip_options="[15]")
    assert json.loads(t2["tip_options"]) == [15] and t2["tip_wallet"] == ""

    r = await client.get(API, headers=shop.invoice_headers)
    assert r.status_code == 200 and [x["id"] for x in r.json()] == [t["id"], t2["id"]]
    assert (await client.get(API, headers=staff.invoice_headers)).json() == []

    r = await client.put(f"{API}/{t['id']}", json={"name": "Coffee bar", "tip_wallet": ""},
                         headers=shop.admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Coffee bar" and r.json()["tip_wallet"] == ""
    assert r.json()["currency"] == "EUR"  # fields not sent keep their values

    items = [{"title": "Espresso", "price": 2.5, "categories": ["hot"]},
             {"title": "Old", "price": 1, "disabled": True}]
    r = await client.put(f"{API}/{t['id']}/items", json={"items": items}, headers=shop.admin_headers)
    assert r.status_code == 200, r.text
    stored = json.loads(r.json()["items"])
    assert [(i["title"], i["price"], i["disabled"]) for i in stored] == [
        ("Espresso", 2.5, False), ("Old", 1, True)]

    r = await client.delete(f"{API}/{t['id']}", headers=shop.admin_headers)
    assert r.status_code == 200 and r.json()["success"] is True
    assert [x["id"] for x in (await client.get(API, headers=shop.invoice_headers)).json()] == [t2["id"]]
    r = await client.delete(f"{API}/{t['id']}", headers=shop.admin_headers)
    assert r.status_code == 404 and "detail" in r.json()


async def test_all_wallets_lists_the_accounts_terminals(fulmen):
    client = await fulmen.start(plugins=["tpos"])
    shop = await fulmen.wallet("shop")
    r = await client.post("/api/v1/wallet", json={"name": "second"},
                          headers={"Authorization": f"Bearer {shop.account_token}"})
    assert r.status_code in (200, 201), r.text
    second = r.json()
    t1 = await make_tpos(client, shop)
    r = await client.post(API, json={"name": "Other", "wallet": second["id"]}, headers=shop.admin_headers)
    assert r.status_code == 201 and r.json()["wallet"] == second["id"]
    assert [x["id"] for x in (await client.get(API, headers=shop.invoice_headers)).json()] == [t1["id"]]
    r = await client.get(API, params={"all_wallets": "true"}, headers=shop.invoice_headers)
    assert sorted(x["name"] for x in r.json()) == ["Coffee", "Other"]


async def test_key_kinds(fulmen_db):
    client = await fulmen_db.start(plugins=["tpos"])
    shop = await fulmen_db.wallet("shop")
    other = await fulmen_db.wallet("other")
    t = await make_tpos(client, shop)
    tid = t["id"]
    # listing needs an invoice key
    assert (await client.get(API, headers=shop.read_headers)).status_code == 403
    assert (await client.get(API)).status_code == 401
    assert (await client.get(API, headers={"X-Api-Key": "wrong"})).status_code == 401
    # changes need the admin key of the terminal's wallet
    calls = [
        ("post", API, {"name": "x"}),
        ("put", f"{API}/{tid}", {"name": "x"}),
        ("delete", f"{API}/{tid}", None),
        ("put", f"{API}/{tid}/items", {"items": []}),
    ]
    for method, path, body in calls:
        kwargs = {"json": body} if body is not None else {}
        for headers, status in ((shop.invoice_headers, 403), (shop.read_headers, 403), ({}, 401)):
            r = await client.request(method.upper(), path, headers=headers, **kwargs)
            assert r.status_code == status, (method, path, r.text)
            assert "detail" in r.json()
    for method, path, body in calls[1:]:
        kwargs = {"json": body} if body is not None else {}
        r = await client.request(method.upper(), path, headers=other.admin_headers, **kwargs)
        assert r.status_code == 403 and r.json()["detail"] == "Not your TPoS.", r.text
    # a terminal on another account's wallet is refused
    r = await client.post(API, json={"name": "x", "wallet": other.id}, headers=shop.admin_headers)
    assert r.status_code == 403
    # nothing changed
    r = await client.get(API, headers=shop.invoice_headers)
    assert [(x["id"], x["name"]) for x in r.json()] == [(tid, "Coffee")]


async def test_bad_input(fulmen_db):
    client = await fulmen_db.start(plugins=["tpos"])
    shop = await fulmen_db.wallet("shop")
    cases = [
        ({}, "name is required"),
        ({"name": "  "}, "name is required"),
        ({"name": "x" * 101}, "longer than"),
        ({"name": "a", "currency": "euro"}, "currency"),
        ({"name": "a", "currency": "XYZ"}, "currency"),
        ({"name": "a", "tip_options": "[5,"}, "tip_options"),
        ({"name": "a", "tip_options": [0]}, "greater than 0"),
        ({"name": "a", "tip_options": [101]}, "at most 100"),
        ({"name": "a", "tip_options": ["5"]}, "must be a number"),
        ({"name": "a", "tip_wallet": "nope"}, "tip_wallet"),
        ({"name": "a", "tip_wallet": shop.id}, "must differ"),
        ({"name": "a", "wallet": "nope"}, "no wallet"),
        ({"name": "a", "items": [{"price": 1}]}, "title is required"),
        ({"name": "a", "items": [{"title": "t", "price": -1}]}, "at least 0"),
        ({"name": "a", "items": [{"title": "t", "price": 1, "colour": "red"}]}, "unknown field"),
        ({"name": "a", "lnaddress": True}, "not supported"),
        ({"name": "a", "withdraw_limit": 100}, "not supported"),
        ({"name": "a", "nonsense": 1}, "unknown field"),
    ]
    for body, message in cases:
        r = await client.post(API, json=body, headers=shop.admin_headers)
        assert r.status_code == 400, (body, r.text)
        assert message in r.json()["detail"], (body, r.json())
    # LNbits's fields at their defaults are accepted
    await make_tpos(client, shop, tax_inclusive=True, tax_default=0, lnaddress=False,
                    withdraw_limit=None, enable_receipt_print=False, business_name="")
    assert len((await client.get(API, headers=shop.invoice_headers)).json()) == 1
    r = await client.put(f"{API}/nope", json={"name": "x"}, headers=shop.admin_headers)
    assert r.status_code == 404
    t = (await client.get(API, headers=shop.invoice_headers)).json()[0]
    r = await client.put(f"{API}/{t['id']}/items", json={"items": "nope"}, headers=shop.admin_headers)
    assert r.status_code == 400 and "items" in r.json()["detail"]
    r = await client.put(f"{API}/{t['id']}/items", json=[1], headers=shop.admin_headers)
    assert r.status_code == 400


async def test_public_invoice_and_paid_status(fulmen_db):
    client = await fulmen_db.start(plugins=["tpos"])
    shop = await fulmen_db.wallet("shop")
    customer = await fulmen_db.wallet("customer", sats=1000)
    t = await make_tpos(client, shop)
    r = await client.post(f"{API}/{t['id']}/invoices", json={"amount": 210, "memo": "2 coffees"})
    assert r.status_code == 201, r.text
    inv = r.json()
    assert inv["amount"] == 210000 and inv["memo"] == "2 coffees" and inv["wallet_id"] == shop.id
    assert inv["extra"]["tag"] == "tpos" and inv["extra"]["tpos_id"] == t["id"]
    assert inv["preimage"] is None
    status_url = f"{API}/{t['id']}/invoices/{inv['payment_hash']}"
    assert (await client.get(status_url)).json() == {"paid": False}
    r = await fulmen_db.pay(customer, inv["bolt11"])
    assert r.status_code == 201, r.text
    await fulmen_db.drain()
    assert (await client.get(status_url)).json() == {"paid": True}
    assert await fulmen_db.balance(shop) == 210000
    assert await fulmen_db.balance(customer) == 790000
    # memo defaults to the terminal's name; an invoice paid from outside counts too
    r = await client.post(f"{API}/{t['id']}/invoices", json={"amount": 5})
    inv2 = r.json()
    assert inv2["memo"] == "Coffee"
    assert (await fulmen_db.settle_from_outside(inv2["payment_hash"])).status_code == 200
    assert (await client.get(f"{API}/{t['id']}/invoices/{inv2['payment_hash']}")).json() == {"paid": True}
    # another terminal's invoice, or any other hash, is not found through this one
    t2 = await make_tpos(client, shop, name="Other")
    assert (await client.get(f"{API}/{t2['id']}/invoices/{inv['payment_hash']}")).status_code == 404
    other = await fulmen_db.invoice(shop, 1)
    assert (await client.get(f"{API}/{t['id']}/invoices/{other['payment_hash']}")).status_code == 404
    assert (await client.get(f"{API}/{t['id']}/invoices/xyz")).status_code == 400
    assert await fulmen_db.host.wallets.audit() == []


async def test_invoice_bad_input(fulmen_db):
    client = await fulmen_db.start(plugins=["tpos"])
    shop = await fulmen_db.wallet("shop")
    staff = await fulmen_db.wallet("staff")
    t = await make_tpos(client, shop)
    tipped = await make_tpos(client, shop, name="Tips", tip_wallet=staff.id, tip_options=[10])
    cases = [
        (t, {}, "amount is required"),
        (t, {"amount": 0}, "at least 1"),
        (t, {"amount": -5}, "at least 1"),
        (t, {"amount": 1.5}, "whole number"),
        (t, {"amount": "10"}, "whole number"),
        (t, {"amount": True}, "whole number"),
        (t, {"amount": 10, "tip_amount": 1}, "takes no tips"),
        (tipped, {"amount": 10, "tip_amount": 11}, "cannot be larger"),
        (tipped, {"amount": 10, "tip_amount": -1}, "at least 0"),
        (t, {"amount": 10, "memo": 5}, "memo must be a string"),
        (t, {"amount": 10, "user_lnaddress": "a@b.c"}, "not supported"),
        (t, {"amount": 10, "bogus": 1}, "unknown field"),
        (t, {"amount": 10 ** 12}, "limit"),
    ]
    for tpos, body, message in cases:
        r = await client.post(f"{API}/{tpos['id']}/invoices", json=body)
        assert r.status_code == 400, (body, r.text)
        assert message in r.json()["detail"], (body, r.json())
    r = await client.post(f"{API}/nope/invoices", json={"amount": 1})
    assert r.status_code == 404
    r = await client.get("/api/v1/payments", headers=shop.read_headers)
    assert r.json() == []  # no invoice was created by any refused request


async def test_tip_moves_to_tip_wallet_once(fulmen_db):
    client = await fulmen_db.start(plugins=["tpos"])
    host = fulmen_db.host
    shop = await fulmen_db.wallet("shop")
    staff = await fulmen_db.wallet("staff")
    customer = await fulmen_db.wallet("customer", sats=1000)
    t = await make_tpos(client, shop, tip_wallet=staff.id, tip_options=[10])
    r = await client.post(f"{API}/{t['id']}/invoices", json={"amount": 110, "tip_amount": 10})
    assert r.status_code == 201, r.text
    inv = r.json()
    assert inv["amount"] == 110000 and inv["extra"]["tip_amount"] == 10 and inv["extra"]["amount"] == 100
    assert "tip_wallet" not in inv["extra"]
    assert (await fulmen_db.pay(customer, inv["bolt11"])).status_code == 201
    await fulmen_db.drain()
    assert await fulmen_db.balance(shop) == 100000
    assert await fulmen_db.balance(staff) == 10000
    [tip] = (await client.get("/api/v1/payments", headers=staff.read_headers)).json()
    assert tip["extra"]["tip_of"] == inv["payment_hash"] and tip["amount"] == 10000

    # retried deliveries, a lost "done" mark and concurrent runs: still one tip
    payment = [p for p in await host.payments.find_by_hash(inv["payment_hash"], shop.id) if not p.out][0]
    await fulmen_tpos.on_invoice_paid(host=host, payment=payment)
    await query("UPDATE tpos_payment SET tip_status = 'pending' WHERE payment_hash = {}",
                inv["payment_hash"])
    await asyncio.gather(*(fulmen_tpos.on_invoice_paid(host=host, payment=payment) for _ in range(4)))
    await fulmen_db.drain()
    assert await fulmen_db.balance(shop) == 100000
    assert await fulmen_db.balance(staff) == 10000
    rows = await query("SELECT tip_status FROM tpos_payment WHERE payment_hash = {}", inv["payment_hash"])
    assert rows[0]["tip_status"] == "done"
    # an invoice without a tip leaves everything in the shop wallet
    r = await client.post(f"{API}/{t['id']}/invoices", json={"amount": 50})
    assert (await fulmen_db.pay(customer, r.json()["bolt11"])).status_code == 201
    await fulmen_db.drain()
    assert await fulmen_db.balance(shop) == 150000
    assert await fulmen_db.balance(staff) == 10000
    assert await host.wallets.audit() == []


async def test_tip_trusts_only_terminal_invoices(fulmen_db):
    """An invoice made through the wallet API with tpos-looking `extra` moves nothing."""
    client = await fulmen_db.start(plugins=["tpos"])
    shop = await fulmen_db.wallet("shop")
    staff = await fulmen_db.wallet("staff")
    customer = await fulmen_db.wallet("customer", sats=1000)
    t = await make_tpos(client, shop, tip_wallet=staff.id)
    inv = await fulmen_db.invoice(shop, 100, extra={"tag": "tpos", "tpos_id": t["id"], "tip_amount": 90})
    assert (await fulmen_db.pay(customer, inv["bolt11"])).status_code == 201
    await fulmen_db.drain()
    assert await fulmen_db.balance(shop) == 100000
    assert await fulmen_db.balance(staff) == 0


async def test_tip_uses_tip_wallet_chosen_at_invoice_time(fulmen):
    client = await fulmen.start(plugins=["tpos"])
    shop = await fulmen.wallet("shop")
    staff = await fulmen.wallet("staff")
    later = await fulmen.wallet("later")
    customer = await fulmen.wallet("customer", sats=1000)
    t = await make_tpos(client, shop, tip_wallet=staff.id)
    inv = (await client.post(f"{API}/{t['id']}/invoices", json={"amount": 100, "tip_amount": 20})).json()
    r = await client.put(f"{API}/{t['id']}", json={"tip_wallet": later.id}, headers=shop.admin_headers)
    assert r.status_code == 200
    assert (await fulmen.pay(customer, inv["bolt11"])).status_code == 201
    await fulmen.drain()
    assert (await fulmen.balance(staff), await fulmen.balance(later)) == (20000, 0)
    assert await fulmen.balance(shop) == 80000


async def test_terminal_page(fulmen_db):
    client = await fulmen_db.start(plugins=["tpos"])
    shop = await fulmen_db.wallet("shop")
    staff = await fulmen_db.wallet("staff")
    t = await make_tpos(client, shop, name="Café <b>&", tip_wallet=staff.id, tip_options=[7, 15])
    await client.put(f"{API}/{t['id']}/items", headers=shop.admin_headers,
                     json={"items": [{"title": "Hidden item", "price": 1, "disabled": True}]})
    r = await client.get(f"/tpos/{t['id']}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "Café &lt;b&gt;&amp;" in page and "<b>&" not in page.split("<script>")[0]
    assert "7%" in page and "15%" in page
    assert shop.id not in page and staff.id not in page  # the public page shows no wallet ids
    assert "Hidden item" not in page
    assert (await client.get("/tpos/nope")).status_code == 404
    # the QR code of an invoice the terminal made
    inv = (await client.post(f"{API}/{t['id']}/invoices", json={"amount": 21})).json()
    r = await client.get(f"/tpos/{t['id']}/qr/{inv['payment_hash']}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert r.text.startswith("<svg") and "<path" in r.text
    other = await fulmen_db.invoice(shop, 1)
    assert (await client.get(f"/tpos/{t['id']}/qr/{other['payment_hash']}")).status_code == 404


async def test_qr_decodes_to_the_invoice(fulmen):
    """The QR code encodes `LIGHTNING:<bolt11>` of that invoice (same SVG as segno makes for it)."""
    import segno

    client = await fulmen.start(plugins=["tpos"])
    shop = await fulmen.wallet("shop")
    t = await make_tpos(client, shop)
    inv = (await client.post(f"{API}/{t['id']}/invoices", json={"amount": 21})).json()
    svg = (await client.get(f"/tpos/{t['id']}/qr/{inv['payment_hash']}")).text
    expected = segno.make(f"lightning:{inv['bolt11']}".upper(), error="l")
    assert svg == expected.svg_inline(scale=5, border=2)


async def test_disabled_plugin_answers_404(fulmen):
    client = await fulmen.start(plugins=["tpos"])
    shop = await fulmen.wallet("shop")
    t = await make_tpos(client, shop)
    await fulmen.host.set_plugin_enabled("tpos", False)
    assert (await client.get(f"/tpos/{t['id']}")).status_code == 404
    assert (await client.post(f"{API}/{t['id']}/invoices", json={"amount": 1})).status_code == 404
