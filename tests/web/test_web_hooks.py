"""The web UI's hook and the page mechanics, without a browser."""

from __future__ import annotations

import re

import httpx
from fulmen import hookimpl
from fulmen.testing import plugin
from fulmen.web.pages import wallet_actions


def found(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in the page"
    return match.group(1)


def csrf_of(text: str) -> str:
    return found(r'name="csrf_token" value="([^"]+)"', text)


async def sign_up(client: httpx.AsyncClient) -> str:
    """Sign up through the form (CSRF cookie and token as a browser sends them);
    returns the new wallet's id."""
    page = await client.get("/")
    token = csrf_of(page.text)
    r = await client.post("/account/new", data={"csrf_token": token, "name": "Kim"})
    assert r.status_code == 200 and "I have saved them" in r.text
    return found(r"Wallet id</dt><dd><code>([0-9a-f]{32})<", r.text)


async def test_hook_wallet_actions(fulmen):
    class Shop:
        @hookimpl
        def wallet_actions(self, host, wallet_id):
            return [{"href": f"/shop/?wallet={wallet_id}", "label": "Open shop"},
                    {"href": "https://elsewhere.example/", "label": "off-site"},
                    {"href": "//elsewhere.example/", "label": "off-site too"},
                    {"label": "no href"}]

    class Broken:
        @hookimpl
        async def wallet_actions(self, wallet_id):
            raise RuntimeError("boom")

    client = await fulmen.start(plugins=[plugin("shop", Shop()), plugin("broken", Broken())])
    assert await wallet_actions(fulmen.host, "w1") == [{"href": "/shop/?wallet=w1", "label": "Open shop"}]
    assert "boom" in fulmen.host.plugins["broken"].error

    wallet = await sign_up(client)
    page = await client.get(f"/wallets/{wallet}")
    assert page.status_code == 200
    assert f'href="/shop/?wallet={wallet}">Open shop</a>' in page.text
    assert "elsewhere.example" not in page.text
    await fulmen.host.set_plugin_enabled("shop", False)
    assert "Open shop" not in (await client.get(f"/wallets/{wallet}")).text


async def test_pages_need_a_session_and_forms_need_the_csrf_token(fulmen_db):
    fulmen = fulmen_db
    client = await fulmen.start(plugins=[])
    r = await client.get("/wallets")
    assert r.status_code == 303 and r.headers["location"] == "/?next=%2Fwallets"
    r = await client.get("/admin")
    assert r.status_code == 200 and "Admin key" in r.text
    wallet = await sign_up(client)
    assert "fulmen_session" in client.cookies
    # the keys page reloaded (the form posted again) makes no second account
    from fulmen import query

    before = len(await query("SELECT id FROM fulmen_account"))
    r = await client.post("/account/new", data={"csrf_token": client.cookies["fulmen_csrf"], "name": "Kim"})
    assert r.status_code == 409 and "no new account was made" in r.text
    assert len(await query("SELECT id FROM fulmen_account")) == before
    # no token, a wrong token, a cross-site origin: all refused, nothing renamed
    r = await client.post(f"/wallets/{wallet}/rename", data={"name": "x"})
    assert r.status_code == 403
    r = await client.post(f"/wallets/{wallet}/rename", data={"name": "x", "csrf_token": "nope"})
    assert r.status_code == 403
    token = client.cookies["fulmen_csrf"]
    r = await client.post(f"/wallets/{wallet}/rename", data={"name": "x", "csrf_token": token},
                          headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    assert (await fulmen.host.wallets.get(wallet)).name == "Kim"
    r = await client.post(f"/wallets/{wallet}/rename", data={"name": "Main", "csrf_token": token})
    assert r.status_code == 303
    assert (await fulmen.host.wallets.get(wallet)).name == "Main"
    # someone else's wallet is not found, and the session ends on sign-out
    other = await fulmen.wallet("other")
    assert (await client.get(f"/wallets/{other.id}")).status_code == 404
    r = await client.post("/logout", data={"csrf_token": token})
    assert r.status_code == 303
    assert (await client.get(f"/wallets/{wallet}")).status_code == 303


async def test_session_cookie_flags(fulmen):
    client = await fulmen.start(plugins=[])
    page = await client.get("/")
    token = csrf_of(page.text)
    r = await client.post("/account/new", data={"csrf_token": token, "name": ""})
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("fulmen_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    # the keys are in the page, never in a URL or header
    assert "location" not in r.headers
    # behind TLS the cookies are Secure
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fulmen.app),
                                 base_url="https://testserver.local") as tls:
        page = await tls.get("/")
        assert "Secure" in page.headers["set-cookie"]
        token = csrf_of(page.text)
        r = await tls.post("/account/new", data={"csrf_token": token, "name": ""})
        cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("fulmen_session="))
        assert "Secure" in cookie and "HttpOnly" in cookie


async def test_password_sign_in_is_hashed_with_argon2(fulmen_db):
    from fulmen import query

    client = await fulmen_db.start(plugins=[])
    await sign_up(client)
    token = client.cookies["fulmen_csrf"]
    r = await client.post("/account/password", data={
        "csrf_token": token, "username": "Kim_1", "password": "long enough pw", "password2": "long enough pw"})
    assert r.status_code == 200 and "Saved" in r.text
    rows = await query("SELECT username, password_hash FROM fulmen_account WHERE username = {}", "kim_1")
    assert rows[0]["password_hash"].startswith("$argon2id$")
    assert "long enough pw" not in rows[0]["password_hash"]
    await client.post("/logout", data={"csrf_token": token})
    r = await client.post("/login", data={"csrf_token": token, "username": "kim_1", "password": "nope nope nope"})
    assert r.status_code == 401 and "Wrong username or password." in r.text
    r = await client.post("/login", data={"csrf_token": token, "username": "KIM_1", "password": "long enough pw"})
    assert r.status_code == 303 and r.headers["location"] == "/wallets"
    assert (await client.get("/wallets")).status_code == 200
    # a second account cannot take the name
    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=fulmen_db.app), base_url="http://t.local")
    async with other:
        await sign_up(other)
        r = await other.post("/account/password", data={
            "csrf_token": other.cookies["fulmen_csrf"], "username": "kim_1",
            "password": "long enough pw", "password2": "long enough pw"})
        assert r.status_code == 400 and "That username is taken." in r.text


async def admin_client(fulmen) -> tuple[httpx.AsyncClient, str]:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=fulmen.app),
                               base_url="http://admin.local")
    page = await client.get("/admin")
    token = csrf_of(page.text)
    r = await client.post("/admin/login", data={"csrf_token": token, "admin_key": "wrong"})
    assert r.status_code == 401 and "That is not this host" in r.text
    from fulmen.testing import ADMIN_KEY

    r = await client.post("/admin/login", data={"csrf_token": token, "admin_key": ADMIN_KEY})
    assert r.status_code == 303
    return client, token


async def test_admin_redelivers_failed_webhooks_and_hook_deliveries(fulmen_db):
    from fulmen import query

    client = await fulmen_db.start(plugins=[])
    shop = await fulmen_db.wallet("shop")
    payer = await fulmen_db.wallet("payer", sats=100)
    r = await client.post("/api/v1/webhooks", headers={"X-Api-Key": shop.adminkey},
                          json={"url": "https://hooks.example.com/fulmen", "events": ["payment.received"]})
    assert r.status_code == 201, r.text
    invoice = (await client.post("/api/v1/payments", headers={"X-Api-Key": shop.inkey},
                                 json={"out": False, "amount": 5})).json()
    r = await client.post("/api/v1/payments", headers={"X-Api-Key": payer.adminkey},
                          json={"out": True, "bolt11": invoice["bolt11"]})
    assert r.status_code == 201, r.text
    rows = await query("SELECT id FROM fulmen_webhook_delivery WHERE wallet_id = {}", shop.id)
    assert len(rows) == 1
    delivery = rows[0]["id"]
    await query("UPDATE fulmen_webhook_delivery SET status = 'failed', last_error = 'refused', "
                "locked_until = 0 WHERE id = {}", delivery)

    admin, token = await admin_client(fulmen_db)
    try:
        page = await admin.get("/admin")
        assert page.status_code == 200 and "hooks.example.com" in page.text and "refused" in page.text
        r = await admin.post(f"/admin/webhook-deliveries/{delivery}/redeliver", data={"csrf_token": token})
        assert r.status_code == 303
        status = (await query("SELECT status FROM fulmen_webhook_delivery WHERE id = {}", delivery))[0]
        assert status["status"] in ("pending", "success", "failed")  # queued again, then tried
        assert (await admin.post("/admin/webhook-deliveries/999999/redeliver",
                                 data={"csrf_token": token})).status_code == 404
        # a plugin-hook delivery that is not failed cannot be sent again
        r = await admin.post("/admin/hook-deliveries/999999/redeliver", data={"csrf_token": token})
        assert r.status_code == 409 and "Only a failed delivery" in r.text
        # an account's session is not an admin session, and the reverse
        r = await client.get("/admin")
        assert "Admin key" in r.text
        assert (await admin.get("/wallets")).status_code == 303
    finally:
        await admin.aclose()


async def test_bad_input_is_shown_next_to_the_field(fulmen_db):
    client = await fulmen_db.start(plugins=["lnurlp"])
    token = csrf_of((await client.get("/")).text)
    r = await client.post("/account/new", data={"csrf_token": token, "name": "x" * 101})
    assert r.status_code == 400 and 'id="e-name"' in r.text and "at most 100 characters" in r.text
    wallet = await sign_up(client)
    r = await client.post(f"/wallets/{wallet}/invoice", data={"csrf_token": token, "amount": "-5"})
    assert r.status_code == 400 and "whole number of sat" in r.text
    r = await client.post(f"/wallets/{wallet}/send/check", data={"csrf_token": token, "target": "lnbc1nope"},
                          headers={"HX-Request": "true"})
    assert r.status_code == 400 and "not a valid Lightning invoice" in r.text
    assert "<html" not in r.text  # an htmx request gets the fragment only
    r = await client.post("/lnurlp/links", data={"csrf_token": token, "wallet": wallet, "description": "d",
                                                 "min": "ten", "max": ""})
    assert r.status_code == 400 and 'id="e-min"' in r.text
    r = await client.post("/lnurlp/links", data={"csrf_token": token, "wallet": "not-mine", "description": "d",
                                                 "min": "10", "max": ""})
    assert r.status_code == 404 and "Wallet not found." in r.text
