"""Plugin pages in Chromium: a pay link and a POS terminal taking payments;
the operator disabling a plugin makes its pages go away."""

from __future__ import annotations

import re

import httpx
from fulmen.testing import ADMIN_KEY, ServerProcess
from playwright.sync_api import expect

from .conftest import WIDE, Pages, sign_up


def fund(admin_api: httpx.Client, wallet: str, sats: int) -> None:
    r = admin_api.put("/users/api/v1/balance", json={"id": wallet, "amount": sats})
    assert r.status_code == 200, r.text


def test_pay_link_and_pos_terminal_take_payments(pages: Pages, admin_api: httpx.Client,
                                                  server: ServerProcess) -> None:
    shop, shop_wallet, _ = sign_up(pages, "Corner Shop", viewport=WIDE)
    shop.get_by_role("link", name="Pay links").first.click()
    expect(shop.get_by_role("heading", name="New pay link")).to_be_visible()
    shop.get_by_label("Description").fill("Tips jar")
    shop.get_by_label("Minimum (sat)").fill("ten")
    shop.get_by_role("button", name="Create pay link").click()
    expect(shop.locator("#e-min")).to_contain_text("min")  # the API's message, next to the field
    pages.errors.clear()  # the 400 answer is logged by the browser, as it should be
    shop.get_by_label("Minimum (sat)").fill("10")
    shop.get_by_label("Maximum (sat)").fill("1000")
    shop.get_by_label("Lightning Address name").fill("cornershop")
    shop.get_by_role("button", name="Create pay link").click()
    expect(shop.locator("#link-address")).to_have_text(re.compile(r"^cornershop@"))
    expect(shop.locator("#link-amount")).to_have_text("10 to 1000 sat")
    lnurl = shop.locator("#lnurl").input_value()
    assert lnurl.upper().startswith("LNURL")
    pages.shot(shop, "lnurlp-link")
    shop.get_by_role("link", name="← Pay links").click()
    expect(shop.locator("main")).to_contain_text("Tips jar")
    pages.shot(shop, "lnurlp-index")

    payer, payer_wallet, payer_key = sign_up(pages, "Payer")
    fund(admin_api, payer_wallet, 5000)
    payer.get_by_label("Invoice, LNURL or Lightning Address").fill(lnurl)
    payer.get_by_label("Amount to send (sat)").fill("100")
    payer.get_by_role("button", name="Check").click()
    expect(payer.locator("#confirm-amount")).to_have_text("100 sat")
    expect(payer.locator("#send-result")).to_contain_text("Tips jar")
    payer.get_by_role("button", name="Pay 100 sat").click()
    expect(payer.locator("#send-result")).to_contain_text("Paid 100 sat")
    # and through the Lightning Address, resolved by this host's LNURL client
    shop_address = f"cornershop@{server.url.split('://', 1)[1]}"
    payer.get_by_label("Invoice, LNURL or Lightning Address").fill(shop_address)
    payer.get_by_label("Amount to send (sat)").fill("50")
    payer.get_by_role("button", name="Check").click()
    expect(payer.locator("#send-result")).to_contain_text(shop_address)
    payer.get_by_role("button", name="Pay 50 sat").click()
    expect(payer.locator("#send-result")).to_contain_text("Paid 50 sat")
    shop.goto(f"/wallets/{shop_wallet}")
    expect(shop.locator("#balance")).to_have_text("150")

    shop.goto("/wallets")
    shop.get_by_label("Name").fill("Tips")
    shop.get_by_role("button", name="Create wallet").click()
    tips_wallet = shop.url.rsplit("/", 1)[1]
    shop.get_by_role("link", name="Point of sale").first.click()
    shop.get_by_label("Terminal name").fill("Counter")
    shop.get_by_label("Tip options (%)").fill("10")
    shop.get_by_label("Tips go to").select_option(label="Tips")
    shop.get_by_label("Items").fill("Coffee = 300\nCake = 450")
    shop.get_by_role("button", name="Create terminal").click()
    expect(shop.locator("main")).to_contain_text("2 items")
    pages.shot(shop, "tpos-index")
    shop.get_by_role("link", name="Counter").click()
    pages.shot(shop, "tpos-keypad")
    shop.get_by_role("button", name="Coffee · 300").click()
    expect(shop.locator("#display")).to_have_text("300 sat")
    shop.get_by_role("button", name="10%").click()
    expect(shop.locator("#display")).to_have_text("330 sat (tip 30)")
    shop.get_by_role("button", name="Charge").click()
    expect(shop.locator("#invoice")).to_be_visible()
    expect(shop.locator("#entry")).to_be_hidden()
    expect(shop.locator("#invoice-amount")).to_have_text("330 sat")  # the amount on the invoice screen
    expect(shop.locator("#qr svg")).to_be_visible()
    bolt11 = shop.locator("#bolt11").input_value()
    assert bolt11.startswith("lnbc")
    pages.shot(shop, "tpos-invoice")
    r = httpx.post(server.url + "/api/v1/payments", headers={"X-Api-Key": payer_key},
                   json={"out": True, "bolt11": bolt11}, timeout=30)
    assert r.status_code == 201, r.text
    expect(shop.locator("#status")).to_have_text("Paid ✓")
    # then back to the keypad for the next customer, QR gone
    expect(shop.locator("#entry")).to_be_visible(timeout=10_000)
    expect(shop.locator("#invoice")).to_be_hidden()
    expect(shop.locator("#display")).to_have_text("0 sat")
    expect(shop.locator("#last-sale")).to_have_text("Last sale: 330 sat paid")
    pages.shot(shop, "tpos-after-payment")
    shop.goto(f"/wallets/{shop_wallet}")
    expect(shop.locator("#balance")).to_have_text("450")
    for _ in range(20):  # the tip moves in the plugin's payment hook, just after the sale
        shop.goto(f"/wallets/{tips_wallet}")
        if shop.locator("#balance").inner_text() == "30":
            break
        shop.wait_for_timeout(500)
    expect(shop.locator("#balance")).to_have_text("30")


def test_admin_disables_a_plugin_and_its_pages_go_away(pages: Pages) -> None:
    user, _wallet, _ = sign_up(pages, "Frank", viewport=WIDE)
    expect(user.get_by_role("navigation", name="Main").get_by_role("link", name="Pay links")).to_be_visible()

    admin = pages.new(WIDE)
    admin.goto("/admin")
    pages.shot(admin, "admin-sign-in")
    admin.get_by_label("Admin key").fill(ADMIN_KEY)
    admin.get_by_role("button", name="Sign in").click()
    expect(admin.get_by_role("heading", name="Plugins")).to_be_visible()
    expect(admin.locator("#status")).to_contain_text("ready")
    expect(admin.locator("#status")).to_contain_text("FakeWallet")
    pages.shot(admin, "admin")

    # top-up with a reason, found by searching for the account
    admin.get_by_label("Search by name, username or id").fill("frank")
    admin.get_by_role("button", name="Search").click()
    admin.get_by_label("sat", exact=True).fill("250")
    admin.get_by_label("Reason").fill("welcome bonus")
    admin.get_by_role("button", name="Apply").click()
    expect(admin.locator("#wallets")).to_contain_text("250")
    user.reload()
    expect(user.locator("#balance")).to_have_text("250")

    admin.get_by_role("button", name="Disable lnurlp").click()
    expect(admin.locator("#plugin-lnurlp")).to_contain_text("disabled")
    user.reload()
    nav = user.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Pay links")).to_have_count(0)
    expect(nav.get_by_role("link", name="Point of sale")).to_be_visible()
    assert user.request.get("/lnurlp/").status == 404
    assert user.request.get("/tpos/").status == 200

    admin.get_by_role("button", name="Enable lnurlp").click()
    expect(admin.locator("#plugin-lnurlp")).to_contain_text("enabled")
    user.reload()
    expect(nav.get_by_role("link", name="Pay links")).to_be_visible()
    assert user.request.get("/lnurlp/").status == 200


def test_every_page_renders_without_console_errors(pages: Pages) -> None:
    page, wallet, _ = sign_up(pages, "Grace")
    for path, name in [("/wallets", "wallets-list"), (f"/wallets/{wallet}", "wallet"),
                       ("/account", "account-page"), ("/lnurlp/", "lnurlp"), ("/withdraw/", "withdraw"),
                       ("/tpos/", "tpos"), ("/splitpayments/", "splitpayments")]:
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        expect(page.locator("main h1")).to_be_visible()
        pages.shot(page, f"page-{name}")


def test_withdraw_vouchers_print_and_pay_out(pages: Pages, admin_api: httpx.Client) -> None:
    giver, giver_wallet, _ = sign_up(pages, "Heidi", viewport=WIDE)
    fund(admin_api, giver_wallet, 1000)
    giver.get_by_role("link", name="Withdraw links").first.click()
    giver.get_by_label("Title").fill("Meetup gift")
    giver.get_by_label("Amount per voucher (sat)").fill("50")
    giver.get_by_label("Number of vouchers").fill("3")
    giver.get_by_role("button", name="Create vouchers").click()
    expect(giver.locator("#link-amount")).to_contain_text("Withdraw 50 sat · 3 uses left")
    lnurl = giver.locator("#lnurl").input_value()
    pages.shot(giver, "withdraw-link")
    giver.get_by_role("link", name="Print vouchers").click()
    expect(giver.locator(".voucher")).to_have_count(3)
    expect(giver.locator(".voucher svg")).to_have_count(3)
    pages.shot(giver, "withdraw-print")

    # a second user claims one voucher through the host's LNURL-withdraw client
    taker, taker_wallet, taker_key = sign_up(pages, "Ivan")
    r = httpx.post(pages.server.url + "/api/v1/payments/lnurlw", headers={"X-Api-Key": taker_key},
                   json={"lnurl": lnurl, "amount": 50_000}, timeout=30)
    assert r.status_code == 200, r.text
    for _ in range(20):
        taker.goto(f"/wallets/{taker_wallet}")
        if taker.locator("#balance").inner_text() == "50":
            break
        taker.wait_for_timeout(500)
    expect(taker.locator("#balance")).to_have_text("50")
    giver.goto("/withdraw/")
    expect(giver.locator("main")).to_contain_text("2 of 3 left")


def test_split_targets_are_saved_and_checked(pages: Pages) -> None:
    page, _wallet, _ = sign_up(pages, "Judy", viewport=WIDE)
    page.goto("/wallets")
    page.get_by_label("Name").fill("Partner")
    page.get_by_role("button", name="Create wallet").click()
    partner = page.url.rsplit("/", 1)[1]
    page.get_by_role("link", name="Split payments").first.click()
    page.get_by_label("Target 1: wallet id or invoice key").first.fill(partner)
    page.get_by_label("Target 1: name").first.fill("partner")
    page.get_by_label("Target 1: percent").first.fill("150")
    page.get_by_role("button", name="Save splits for Judy").click()
    expect(page.get_by_role("alert")).to_contain_text("at most 100")
    pages.errors.clear()  # the 400 answer is logged by the browser, as it should be
    page.get_by_label("Target 1: percent").first.fill("25")
    page.get_by_role("button", name="Save splits for Judy").click()
    expect(page.get_by_label("Target 1: percent").first).to_have_value("25")
    expect(page.get_by_label("Target 1: wallet id or invoice key").first).to_have_value(partner)
    pages.shot(page, "splitpayments")
