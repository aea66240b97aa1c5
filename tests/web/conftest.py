"""Browser tests: a real host process and Debian's Chromium driven by Playwright.

Screenshots of every page visited go to `build/screenshots/` (the CI artefact);
set FULMEN_SCREENSHOT_DIR to put them elsewhere."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fulmen.testing import ADMIN_KEY, ServerProcess, services_required

CHROMIUM = Path(os.environ.get("FULMEN_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("FULMEN_SCREENSHOT_DIR", ROOT / "build" / "screenshots"))
NARROW = {"width": 375, "height": 812}
WIDE = {"width": 1100, "height": 900}


def need_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    if services_required():
        pytest.fail(message + " and FULMEN_REQUIRE_SERVICES=1")
    pytest.skip(message + ": the browser tests need it")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    need_chromium()
    tmp = tmp_path_factory.mktemp("web")
    env = {"FULMEN_ADMIN_KEY": ADMIN_KEY, "FULMEN_DATA_DIR": str(tmp / "data"),
           "DATABASE_URL": f"sqlite:///{tmp / 'fulmen.sqlite3'}",
           # the LNURL tests pay this host's own links over loopback
           "FULMEN_ALLOW_PRIVATE_ADDRESSES": "true"}
    proc = ServerProcess(env, log_path=tmp / "server.log").start(timeout=180)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def browser(server: ServerProcess) -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=15_000)  # generous: CI machines can be slow

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Pages:
    """Opens browser contexts (one per user), records console errors, takes screenshots."""

    def __init__(self, browser: Any, server: ServerProcess) -> None:
        self.browser = browser
        self.server = server
        self.errors: list[str] = []
        self.contexts: list[Any] = []

    def new(self, viewport: dict[str, int] | None = None) -> Any:
        context = self.browser.new_context(viewport=viewport or NARROW, base_url=self.server.url,
                                           accept_downloads=True)
        context.set_default_timeout(15_000)
        self.contexts.append(context)
        page = context.new_page()
        page.on("console", lambda m: self.errors.append(f"{page.url}: console {m.type}: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"{page.url}: page error: {e}"))
        return page

    def shot(self, page: Any, name: str) -> None:
        """Keep a screenshot, and check nothing is wider than the viewport."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        width = page.viewport_size["width"]
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= width, f"{name}: the page is {overflow}px wide in a {width}px window"

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def pages(browser: Any, server: ServerProcess) -> Iterator[Pages]:
    p = Pages(browser, server)
    try:
        yield p
    finally:
        p.close()
    assert p.errors == [], "errors in the browser console:\n" + "\n".join(p.errors)


@pytest.fixture
def admin_api(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                      timeout=30) as client:
        yield client


def sign_up(pages: Pages, name: str, viewport: dict[str, int] | None = None,
            shot: Callable[[Any, str], None] | None = None) -> tuple[Any, str, str]:
    """A new account through the pages; returns the page (on its wallet), the
    wallet id and its admin key (as shown on the keys page)."""
    from playwright.sync_api import expect

    page = pages.new(viewport)
    page.goto("/")
    page.get_by_label("Your name or shop").fill(name)
    page.get_by_role("button", name="Create an account").click()
    expect(page.get_by_role("heading", name="Your new account")).to_be_visible()
    admin_key = page.locator("#key-admin").inner_text().strip()
    if shot:
        shot(page, "account-keys")
    page.get_by_label("I have saved them somewhere safe").check()
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/wallets/[0-9a-f]{32}$"))
    return page, page.url.rsplit("/", 1)[1], admin_key
