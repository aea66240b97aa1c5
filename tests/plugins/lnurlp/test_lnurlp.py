"""lnurlp: pay links API, the LNURL-pay protocol checked with the `lnurl`
package's models, round trips through the host's LNURL client, Lightning
Addresses, comments, success actions, webhooks, and every refusal."""

from __future__ import annotations

import hashlib
import json

import bolt11
import lnurl
import pytest
from fulmen import query
from lnurl_testing import Receiver, payment_count, start_looped

API = "/lnurlp/api/v1/links"


async def make_link(client, wallet, **fields):
    body = {"description": "Coffee", "min": 10, "max": 1000, **fields}
    r = await client.post(API, json=body, headers=wallet.admin_headers)
    assert r.status_code == 201, r.text
    return r.json()


async def pay_request(client, link):
    """What a wallet gets when it opens the link's LNURL, parsed by the lnurl package."""
    url = lnurl.decode(link["lnurl"]).url if "127.0.0.1" in link["lnurl_url"] else link["lnurl_url"]
    r = await client.get(str(url))
    assert r.status_code == 200, r.text
    return r.json()


# --- the links API ------------------------------------------------------------------------


async def test_crud_and_fields(fulmen_db):
    client = await fulmen_db.start(plugins=["lnurlp"])
    shop = await fulmen_db.wallet("shop")
    link = await make_link(client, shop, comment_chars=50, username="shop", success_text="Thanks!",
                           webhook_url="https://hooks.example.com/paid",
                           webhook_headers='{"X-Token": "t"}', webhook_body='{"order": 1}')
    assert link["wallet"] == shop.id and link["description"] == "Coffee"
    assert (link["min"], link["max"], link["comment_chars"]) == (10, 1000, 50)
    assert link["username"] == "shop" and link["success_text"] == "Thanks!"
    assert link["served_meta"] == 0 and link["served_pr"] == 0 and link["zaps"] is False
    assert link["lnurl"].startswith("LNURL1")
    assert lnurl.url_decode(link["lnurl"]) == link["lnurl_url"] == f"http://testserver.local/lnurlp/{link['id']}"
    assert link["lud17"] == f"lnurlp://testserver.local/lnurlp/{link['id']}"

    r = await client.get(API, headers=shop.invoice_headers)
    assert r.status_code == 200 and [x["id"] for x in r.json()] == [link["id"]]
    r = await client.get(f"{API}/{link['id']}", headers=shop.invoice_headers)
    assert r.status_code == 200 and r.json()["webhook_body"] == '{"order": 1}'

    r = await client.put(f"{API}/{link['id']}", json={"max": 500, "success_text": None},
                         headers=shop.admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["max"] == 500 and r.json()["success_text"] is None
    assert r.json()["description"] == "Coffee" and r.json()["username"] == "shop"  # kept

    r = await client.get(f"{API}/public/{link['id']}")
    assert r.status_code == 200
    assert set(r.json()) == {"id", "username", "description", "min", "max", "domain", "currency", "lnurl"}
    assert "webhook_url" not in r.json()

    r = await client.delete(f"{API}/{link['id']}", headers=shop.admin_headers)
    assert r.status_code == 200 and r.json()["success"] is True
    assert (await client.get(API, headers=shop.invoice_headers)).json() == []
    r = await client.get(f"{API}/{link['id']}", headers=shop.invoice_headers)
    assert r.status_code == 404 and "detail" in r.json()


async def test_key_kinds_and_ownership(fulmen_db):
    client = await fulmen_db.start(plugins=["lnurlp"])
    shop = await fulmen_db.wallet("shop")
    other = await fulmen_db.wallet("other")
    link = await make_link(client, shop)
    assert (await client.get(API, headers=shop.read_headers)).status_code == 403
    r = await client.post(API, json={"description": "x", "min": 1, "max": 2}, headers=shop.invoice_headers)
    assert r.status_code == 403
    assert (await client.get(API)).status_code == 401
    r = await client.get(f"{API}/{link['id']}", headers=other.invoice_headers)
    assert r.status_code == 403
    r = await client.put(f"{API}/{link['id']}", json={"max": 5}, headers=other.admin_headers)
    assert r.status_code == 403
    r = await client.delete(f"{API}/{link['id']}", headers=other.admin_headers)
    assert r.status_code == 403
    r = await client.post(API, json={"description": "x", "min": 1, "max": 2, "wallet": other.id},
                          headers=shop.admin_headers)
    assert r.status_code == 403
    assert (await client.get(API, headers=other.invoice_headers)).json() == []


@pytest.mark.parametrize("fields, problem", [
    ({"description": ""}, "description"),
    ({"min": 0}, "min"),
    ({"min": 1.5}, "min"),
    ({"min": 100, "max": 10}, "max"),
    ({"max": 10**12}, "limit"),
    ({"comment_chars": 800}, "comment_chars"),
    ({"username": "Bad Name"}, "username"),
    ({"success_url": "http://example.com/thanks"}, "success_url"),
    ({"success_text": "x" * 145}, "success_text"),
    ({"webhook_url": "ftp://example.com"}, "webhook_url"),
    ({"webhook_headers": "[1]"}, "webhook_headers"),
    ({"webhook_body": "{not json"}, "webhook_body"),
    ({"currency": "XYZ"}, "currency"),
    ({"currency": "EUR", "min": 0.001}, "min"),
    ({"currency": "EUR", "fiat_base_multiplier": 0}, "fiat_base_multiplier"),
    ({"currency": "EUR", "min": "ten"}, "min"),
    ({"zaps": True}, "zaps"),
    ({"colour": "red"}, "colour"),
])
async def test_bad_input_is_named(fulmen, fields, problem):
    client = await fulmen.start(plugins=["lnurlp"])
    shop = await fulmen.wallet("shop")
    body = {"description": "Coffee", "min": 10, "max": 1000, **fields}
    r = await client.post(API, json=body, headers=shop.admin_headers)
    assert r.status_code == 400, r.text
    assert problem in r.json()["detail"]


async def test_usernames_are_unique_per_host(fulmen_db):
    client = await fulmen_db.start(plugins=["lnurlp"])
    shop = await fulmen_db.wallet("shop")
    other = await fulmen_db.wallet("other")
    first = await make_link(client, shop, username="coffee")
    r = await client.post(API, json={"description": "x", "min": 1, "max": 2, "username": "coffee"},
                          headers=other.admin_headers)
    assert r.status_code == 409 and "coffee" in r.json()["detail"]
    second = await make_link(client, other, username="tea")
    r = await client.put(f"{API}/{second['id']}", json={"username": "coffee"}, headers=other.admin_headers)
    assert r.status_code == 409
    # the owner may send the name it already has; freeing a name lets another take it
    r = await client.put(f"{API}/{first['id']}", json={"username": "coffee"}, headers=shop.admin_headers)
    assert r.status_code == 200
    r = await client.put(f"{API}/{first['id']}", json={"username": None}, headers=shop.admin_headers)
    assert r.status_code == 200 and r.json()["username"] is None
    r = await client.put(f"{API}/{second['id']}", json={"username": "coffee"}, headers=other.admin_headers)
    assert r.status_code == 200 and r.json()["username"] == "coffee"


# --- the protocol, read by the lnurl package -----------------------------------------------


async def test_pay_request_and_callback(fulmen_db):
    client, base = await start_looped(fulmen_db, ["lnurlp"])
    shop = await fulmen_db.wallet("shop")
    link = await make_link(client, shop, min=5, max=50, comment_chars=20, success_text="Enjoy")
    url = lnurl.decode(link["lnurl"]).url
    assert str(url) == f"{base}/lnurlp/{link['id']}"

    r = await client.get(str(url))
    assert r.status_code == 200
    res = lnurl.LnurlResponse.from_dict(r.json())
    assert isinstance(res, lnurl.LnurlPayResponse)
    assert (res.minSendable, res.maxSendable, res.commentAllowed) == (5000, 50000, 20)
    assert res.metadata.text == "Coffee" and str(res.callback) == f"{base}/lnurlp/api/v1/lnurl/cb/{link['id']}"
    # the deprecated path answers the same
    r2 = await client.get(f"/lnurlp/api/v1/lnurl/{link['id']}")
    assert r2.json() == r.json()

    r = await client.get(str(res.callback), params={"amount": 21000, "comment": "for the beans"})
    assert r.status_code == 200, r.text
    action = lnurl.LnurlResponse.from_dict(r.json())
    assert isinstance(action, lnurl.LnurlPayActionResponse)
    assert action.routes == [] and action.successAction.message == "Enjoy"
    invoice = bolt11.decode(str(action.pr))
    assert invoice.amount_msat == 21000
    assert invoice.description_hash == hashlib.sha256(r2.json()["metadata"].encode()).hexdigest() == res.metadata.h

    rows = await query("SELECT * FROM fulmen_payment WHERE payment_hash = {}", invoice.payment_hash)
    assert len(rows) == 1 and rows[0]["wallet_id"] == shop.id and rows[0]["tag"] == "lnurlp"
    extra = json.loads(rows[0]["extra"]) if isinstance(rows[0]["extra"], str) else rows[0]["extra"]
    assert extra["link"] == link["id"] and extra["comment"] == "for the beans"

    r = await client.get(f"{API}/{link['id']}", headers=shop.invoice_headers)
    assert r.json()["served_meta"] == 2 and r.json()["served_pr"] == 1


async def test_success_url_action(fulmen):
    client, _ = await start_looped(fulmen, ["lnurlp"])
    shop = await fulmen.wallet("shop")
    link = await make_link(client, shop, success_url="https://127.0.0.1/thanks",
                           success_text="Your receipt")
    r = await client.get(f"/lnurlp/api/v1/lnurl/cb/{link['id']}", params={"amount": 10000})
    action = lnurl.LnurlResponse.from_dict(r.json())
    assert isinstance(action.successAction, lnurl.UrlAction)
    assert str(action.successAction.url) == "https://127.0.0.1/thanks"
    assert action.successAction.description == "Your receipt"


async def test_success_url_on_the_callback_domain_only(fulmen):
    """LUD-09: a `url` success action's domain must be the callback's; wallets
    that check it refuse to pay, so such a link is refused when made, and a
    URL left on another domain (the host moved) is not served."""
    client, base = await start_looped(fulmen, ["lnurlp"])
    shop = await fulmen.wallet("shop")
    r = await client.post(API, json={"description": "Coffee", "min": 10, "max": 1000,
                                     "success_url": "https://shop.example.com/thanks"},
                          headers=shop.admin_headers)
    assert r.status_code == 400 and "success_url" in r.json()["detail"]
    link = await make_link(client, shop, success_text="Thanks")
    r = await client.put(f"{API}/{link['id']}", json={"success_url": "https://evil.example/x"},
                         headers=shop.admin_headers)
    assert r.status_code == 400 and "success_url" in r.json()["detail"]
    # stored before the host's address changed: the text alone is served
    await query("UPDATE lnurlp_pay_link SET success_url = 'https://old.example/t' WHERE id = {}",
                link["id"])
    r = await client.get(f"/lnurlp/api/v1/lnurl/cb/{link['id']}", params={"amount": 10000})
    assert r.status_code == 200 and r.json()["successAction"] == {"tag": "message", "message": "Thanks"}
    callback = (await client.get(f"/lnurlp/{link['id']}")).json()["callback"]
    assert callback.startswith(base)


async def test_lightning_address_tag_is_dropped(fulmen):
    """LUD-16: `name+tag@domain` pays `name@domain`."""
    client, _ = await start_looped(fulmen, ["lnurlp"])
    shop = await fulmen.wallet("shop")
    await make_link(client, shop, username="coffee")
    plain = await client.get("/.well-known/lnurlp/coffee")
    tagged = await client.get("/.well-known/lnurlp/coffee+tips")
    assert plain.status_code == 200 and tagged.status_code == 200, tagged.text
    assert tagged.json()["metadata"] == plain.json()["metadata"]
    assert tagged.json()["callback"] == plain.json()["callback"]
    assert (await client.get("/.well-known/lnurlp/nobody+tips")).status_code == 404


@pytest.mark.parametrize("params, status, reason", [
    ({"amount": 9999}, 400, "outside"),
    ({"amount": 1000001}, 400, "outside"),
    ({}, 400, "amount is required"),
    ({"amount": "ten"}, 400, "whole number"),
    ({"amount": 10000, "comment": "x" * 11}, 400, "at most 10"),
])
async def test_callback_refusals(fulmen_db, params, status, reason):
    client = await fulmen_db.start(plugins=["lnurlp"])
    shop = await fulmen_db.wallet("shop")
    link = await make_link(client, shop, comment_chars=10)
    r = await client.get(f"/lnurlp/api/v1/lnurl/cb/{link['id']}", params=params)
    assert r.status_code == status
    assert r.json()["status"] == "ERROR" and reason in r.json()["reason"]
    assert await payment_count(shop.id) == 0


async def test_comments_refused_when_not_allowed_and_unknown_links(fulmen_db):
    client = await fulmen_db.start(plugins=["lnurlp"])
    shop = await fulmen_db.wallet("shop")
    link = await make_link(client, shop)
    r = await client.get(f"/lnurlp/api/v1/lnurl/cb/{link['id']}", params={"amount": 10000, "comment": "hi"})
    assert r.status_code == 400 and "does not accept comments" in r.json()["reason"]
    for path in ("/lnurlp/nope", "/lnurlp/api/v1/lnurl/cb/nope?amount=10000", "/.well-known/lnurlp/nobody"):
        r = await client.get(path)
        assert r.status_code == 404 and r.json()["status"] == "ERROR", path
    await client.delete(f"{API}/{link['id']}", headers=shop.admin_headers)
    r = await client.get(f"/lnurlp/api/v1/lnurl/cb/{link['id']}", params={"amount": 10000})
    assert r.status_code == 404 and r.json()["status"] == "ERROR"
    assert (await client.get(f"/lnurlp/{link['id']}")).status_code == 404
    assert await payment_count(shop.id) == 0


# --- round trips through the host's LNURL client ------------------------------------------------


async def test_round_trip_between_two_wallets_with_webhook(fulmen_db):
    client, base = await start_looped(fulmen_db, ["lnurlp"])
    receiver = Receiver()
    try:
        shop = await fulmen_db.wallet("shop")
        alice = await fulmen_db.wallet("alice", sats=1000)
        link = await make_link(client, shop, min=100, max=500, comment_chars=30,
                               success_text="Thank you", webhook_url=receiver.url + "/paid",
                               webhook_headers='{"X-Shop-Token": "s3cret"}', webhook_body='{"order": 42}')

        r = await client.get(f"/api/v1/lnurlscan/{link['lnurl']}", headers=alice.invoice_headers)
        assert r.status_code == 200, r.text
        scan = r.json()
        assert scan["tag"] == "payRequest" and scan["kind"] == "pay"
        assert (scan["minSendable"], scan["maxSendable"], scan["commentAllowed"]) == (100_000, 500_000, 30)
        assert scan["domain"] == base.split("://")[1] and scan["description"] == "Coffee"
        assert scan["callback"] == f"{base}/lnurlp/api/v1/lnurl/cb/{link['id']}"
        assert lnurl.LnurlPayResponse(**{k: scan[k] for k in
                                         ("tag", "callback", "minSendable", "maxSendable", "metadata",
                                          "commentAllowed")}).metadata.text == "Coffee"

        r = await client.post("/api/v1/payments/lnurl", headers=alice.admin_headers,
                              json={"lnurl": link["lnurl"], "amount": 250_000, "comment": "latte"})
        assert r.status_code == 200, r.text
        paid = r.json()
        assert paid["status"] == "success" and paid["amount"] == -250_000
        assert paid["extra"]["success_action"] == {"tag": "message", "message": "Thank you"}
        await fulmen_db.drain()
        assert await fulmen_db.balance(alice) == 750_000
        assert await fulmen_db.balance(shop) == 250_000

        hooks = await receiver.wait_for(1)
        assert len(hooks) == 1
        hook = hooks[0]
        assert hook["path"] == "/paid" and hook["headers"].get("X-Shop-Token") == "s3cret"
        assert hook["json"]["payment_hash"] == paid["payment_hash"]
        assert hook["json"]["amount"] == 250_000 and hook["json"]["comment"] == "latte"
        assert hook["json"]["lnurlp"] == link["id"] and hook["json"]["body"] == {"order": 42}
    finally:
        receiver.close()


async def test_webhook_ignores_invoices_of_other_wallets(fulmen):
    """Anyone with an invoice key can write `extra`; a link's webhook fires
    only for invoices of the link's own wallet."""
    client, _ = await start_looped(fulmen, ["lnurlp"])
    receiver = Receiver()
    try:
        shop = await fulmen.wallet("shop")
        mallory = await fulmen.wallet("mallory", sats=100)
        link = await make_link(client, shop, webhook_url=receiver.url)
        inv = await fulmen.invoice(mallory, 10, extra={"tag": "lnurlp", "link": link["id"]})
        assert (await fulmen.pay(mallory, inv["bolt11"])).status_code == 201
        await fulmen.drain()
        r = await client.get(f"/lnurlp/api/v1/lnurl/cb/{link['id']}", params={"amount": 10000})
        assert (await fulmen.pay(mallory, r.json()["pr"])).status_code == 201
        await fulmen.drain()
        hooks = await receiver.wait_for(1)
        assert len(hooks) == 1 and hooks[0]["json"]["amount"] == 10000
    finally:
        receiver.close()


async def test_lightning_address(fulmen_db):
    client, base = await start_looped(fulmen_db, ["lnurlp"])
    shop = await fulmen_db.wallet("shop")
    bob = await fulmen_db.wallet("bob", sats=100)
    link = await make_link(client, shop, username="coffee.shop", comment_chars=5)
    domain = base.split("://")[1]

    r = await client.get("/.well-known/lnurlp/coffee.shop")
    assert r.status_code == 200
    res = lnurl.LnurlResponse.from_dict(r.json())
    assert isinstance(res, lnurl.LnurlPayResponse)
    assert ["text/identifier", f"coffee.shop@{domain}"] in [list(x) for x in res.metadata.list()]
    # the link's own LNURL serves the same metadata, so either hash matches
    assert (await client.get(f"/lnurlp/{link['id']}")).json()["metadata"] == str(res.metadata)

    r = await client.get(f"/api/v1/lnurlscan/coffee.shop@{domain}", headers=bob.invoice_headers)
    assert r.status_code == 200, r.text
    assert r.json()["lnaddress"] == f"coffee.shop@{domain}" and r.json()["tag"] == "payRequest"
    r = await client.post("/api/v1/payments/lnurl", headers=bob.admin_headers,
                          json={"lnurl": f"coffee.shop@{domain}", "amount": 20_000, "comment": "hey"})
    assert r.status_code == 200, r.text
    await fulmen_db.drain()
    assert await fulmen_db.balance(shop) == 20_000 and await fulmen_db.balance(bob) == 80_000
    rows = await query("SELECT extra FROM fulmen_payment WHERE wallet_id = {} AND NOT out", shop.id)
    extra = rows[0]["extra"] if isinstance(rows[0]["extra"], dict) else json.loads(rows[0]["extra"])
    assert extra["lnaddress"] == f"coffee.shop@{domain}" and extra["comment"] == "hey"

    r = await client.get(f"/api/v1/lnurlscan/nobody@{domain}", headers=bob.invoice_headers)
    assert r.status_code == 400 and "Unknown Lightning Address" in r.json()["detail"]


async def test_lud17_and_link_page(fulmen):
    client, base = await start_looped(fulmen, ["lnurlp"])
    shop = await fulmen.wallet("shop")
    link = await make_link(client, shop)
    assert link["lud17"] == f"lnurlp://{base.split('://')[1]}/lnurlp/{link['id']}"
    # the lnurl package reads the LUD-17 form back to the same URL
    assert str(lnurl.Lnurl(link["lud17"]).url) == link["lnurl_url"]
    r = await client.post("/api/v1/lnurlscan", json={"lnurl": link["lud17"]}, headers=shop.invoice_headers)
    assert r.status_code == 200, r.text
    assert r.json()["tag"] == "payRequest"
    # in the path too, as `lightning:` URI or bare
    for code in (link["lud17"], "lightning:" + link["lud17"], link["lnurl_url"]):
        r = await client.get(f"/api/v1/lnurlscan/{code}", headers=shop.invoice_headers)
        assert r.status_code == 200 and r.json()["callback"].endswith(link["id"]), (code, r.text)

    r = await client.get(f"/lnurlp/link/{link['id']}")
    assert r.status_code == 200 and "<svg" in r.text and link["lnurl"] in r.text
    assert (await client.get("/lnurlp/link/nope")).status_code == 404
    r = await client.get("/lnurlp/")
    assert r.status_code == 200 and "Pay links" in r.text


async def test_webhook_url_the_host_would_not_call_is_refused(fulmen):
    """A webhook the host's outbound HTTP would refuse is refused when the link
    is saved, instead of never arriving."""
    client = await fulmen.start(plugins=["lnurlp"], allow_private_addresses=False)
    shop = await fulmen.wallet("shop")
    for url in ("http://hooks.example.com/paid", "https://127.0.0.1/paid", "https://10.0.0.5/x",
                "https://[::1]/x", "https://169.254.169.254/latest"):
        r = await client.post(API, json={"description": "Coffee", "min": 10, "webhook_url": url},
                              headers=shop.admin_headers)
        assert r.status_code == 400 and "webhook_url" in r.json()["detail"], (url, r.text)
    link = await make_link(client, shop, webhook_url="https://hooks.example.com/paid")
    r = await client.put(f"{API}/{link['id']}", json={"webhook_url": "http://hooks.example.com/p"},
                         headers=shop.admin_headers)
    assert r.status_code == 400 and "https" in r.json()["detail"]


@pytest.mark.parametrize("headers", ['{"Host": "internal.example"}', '{"host": "x"}',
                                     '{"Content-Length": "0"}', '{"X-A": "1\\r\\nX-B: 2"}',
                                     '{"bad name": "1"}'])
async def test_webhook_headers_cannot_reframe_the_request(fulmen, headers):
    client = await fulmen.start(plugins=["lnurlp"])
    shop = await fulmen.wallet("shop")
    r = await client.post(API, json={"description": "Coffee", "min": 10, "webhook_headers": headers},
                          headers=shop.admin_headers)
    assert r.status_code == 400 and "webhook_headers" in r.json()["detail"], r.text
    link = await make_link(client, shop, webhook_headers='{"Content-Type": "application/json", "X-Token": "t"}')
    assert link["webhook_headers"]
