"""Sign up, save the keys, receive, pay from a second wallet: in Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from fulmen.testing import ServerProcess
from playwright.sync_api import expect

from .conftest import WIDE, Pages, sign_up


def test_sign_up_receive_and_see_the_payment_arrive_live(pages: Pages, admin_api: httpx.Client) -> None:
    alice = pages.new()
    alice.goto("/")
    pages.shot(alice, "home")
    alice.get_by_label("Your name or shop").fill("Alice")
    alice.get_by_role("button", name="Create an account").click()
    expect(alice.get_by_role("heading", name="Your new account")).to_be_visible()
    token = alice.locator("#key-token").inner_text().strip()
    admin_key = alice.locator("#key-admin").inner_text().strip()
    assert re.fullmatch(r"[0-9a-f]{32}", token) and re.fullmatch(r"[0-9a-f]{32}", admin_key)
    pages.shot(alice, "account-keys")
    # "Continue" does nothing until the user says the keys are saved.
    alice.get_by_role("button", name="Continue").click()
    expect(alice.locator("#key-token")).to_be_visible()
    alice.get_by_label("I have saved them somewhere safe").check()
    alice.get_by_role("button", name="Continue").click()
    expect(alice).to_have_url(re.compile(r"/wallets/[0-9a-f]{32}$"))
    assert token not in alice.url and admin_key not in alice.url
    cookie = {c["name"]: c for c in alice.context.cookies()}["fulmen_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    alice.get_by_label("Amount to receive (sat)").fill("21")
    alice.get_by_label("Memo", exact=True).fill("coffee")
    alice.get_by_role("button", name="Create invoice").click()
    status = alice.locator("#invoice-status")
    expect(status).to_have_text("Waiting for payment…")
    bolt11 = alice.locator("#bolt11").input_value()
    assert bolt11.startswith("lnbc")
    expect(alice.locator("#receive-result")).to_contain_text("21 sat")
    pages.shot(alice, "wallet-invoice")

    bob, bob_wallet, _ = sign_up(pages, "Bob", viewport=WIDE)
    assert admin_api.put("/users/api/v1/balance", json={"id": bob_wallet, "amount": 1000}).status_code == 200
    bob.reload()
    expect(bob.locator("#balance")).to_have_text("1,000")
    bob.get_by_label("Invoice, LNURL or Lightning Address").fill(bolt11)
    bob.get_by_role("button", name="Check").click()
    expect(bob.locator("#confirm-amount")).to_have_text("21 sat")
    expect(bob.locator("#send-result")).to_contain_text("coffee")
    pages.shot(bob, "wallet-send-confirm")
    bob.get_by_role("button", name="Pay 21 sat").click()
    expect(bob.locator("#send-result")).to_contain_text("Paid 21 sat")

    # Alice's page learns it from the event stream: no reload, no click.
    expect(status).to_have_text("Paid ✓", timeout=10_000)
    expect(alice.locator("#balance")).to_have_text("21")
    expect(alice.locator("#history")).to_contain_text("coffee")
    pages.shot(alice, "wallet-paid")
    expect(bob.locator("#balance")).to_have_text("979")
    pages.shot(bob, "wallet-wide")


def test_history_pages_filters_and_csv(pages: Pages, server: ServerProcess) -> None:
    page, _wallet, key = sign_up(pages, "Carol")
    for i in range(23):
        r = httpx.post(server.url + "/api/v1/payments", headers={"X-Api-Key": key},
                       json={"out": False, "amount": i + 1, "memo": f"order {i}"})
        assert r.status_code == 201, r.text
    page.reload()
    expect(page.locator("#history")).to_contain_text("Page 1 of 2 · 23 payments")
    page.get_by_role("link", name="Older →").click()
    expect(page.locator("#history")).to_contain_text("Page 2 of 2")
    expect(page.locator("#history tbody tr")).to_have_count(3)
    page.get_by_label("Direction").select_option("true")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#history")).to_contain_text("No payments yet.")
    page.get_by_label("Direction").select_option("")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#history")).to_contain_text("Page 1 of 2 · 23 payments")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    lines = Path(download.value.path()).read_text().strip().splitlines()
    assert lines[0].startswith("time,payment_hash,status,amount")
    assert len(lines) == 24
    pages.shot(page, "wallet-history")


def test_wallets_rename_keys_and_password_sign_in(pages: Pages) -> None:
    page, wallet, _ = sign_up(pages, "Dave")
    page.goto("/wallets")
    page.get_by_label("Name").fill("Savings")
    page.get_by_role("button", name="Create wallet").click()
    expect(page.get_by_role("heading", name="Savings")).to_be_visible()
    page.get_by_text("Manage wallet").click()
    page.get_by_label("New name").fill("Rainy day")
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("heading", name="Rainy day")).to_be_visible()
    page.get_by_text("Manage wallet").click()
    page.get_by_role("button", name="Issue new keys").click()
    expect(page.get_by_role("heading", name="New keys for Rainy day")).to_be_visible()
    assert re.fullmatch(r"[0-9a-f]{32}", page.locator("#key-admin").inner_text().strip())
    page.get_by_label("I have saved them somewhere safe").check()
    page.get_by_role("button", name="Continue").click()
    page.goto("/wallets")
    expect(page.locator("main")).to_contain_text("Rainy day")
    pages.shot(page, "wallets")

    page.goto("/account")
    page.get_by_role("textbox", name="Username").fill("dave")
    page.get_by_label("New password", exact=True).fill("short")
    page.get_by_label("New password again").fill("short")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#e-password")).to_have_text("At least 10 characters.")
    pages.errors.clear()  # the 400 answer is logged by the browser, as it should be
    page.get_by_label("New password", exact=True).fill("correct horse battery")
    page.get_by_label("New password again").fill("correct horse battery")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    pages.shot(page, "account")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto(f"/wallets/{wallet}")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_role("textbox", name="Username").fill("dave")
    page.get_by_label("Password", exact=True).fill("wrong password!")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    pages.errors.clear()
    page.get_by_role("textbox", name="Username").fill("dave")
    page.get_by_label("Password", exact=True).fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(f"/wallets/{wallet}$"))


def test_a_form_from_another_site_is_refused(server: object, pages: Pages) -> None:
    page, wallet, _ = sign_up(pages, "Erin")
    # The same browser, but the form posted without the page's CSRF token.
    response = page.request.post(f"/wallets/{wallet}/rename", form={"name": "pwned"})
    assert response.status == 403
    page.goto(f"/wallets/{wallet}")
    expect(page.get_by_role("heading", name="Erin")).to_be_visible()
