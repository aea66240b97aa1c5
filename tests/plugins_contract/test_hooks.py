"""One test per hook in fulmen/hookspecs.py (the meta-test in test_docs.py
checks that each has a `test_hook_<name>`), using throwaway plugins."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from fulmen import InvoiceRejected, PaymentRejected, hookimpl, now_ms, query
from fulmen.funding.fake import FakeWallet
from fulmen.testing import plugin
from litestar import get

from .conftest import probe_env
from .helpers import eventually, make_app


async def external_invoice(sats: int) -> str:
    """An invoice of another node: FakeWallet cannot pay it, so paying fails."""
    return (await FakeWallet("33" * 32).create_invoice(sats * 1000, "elsewhere", None, 600)).bolt11


# --- set-up hooks -------------------------------------------------------------------------


async def test_hook_register_apps(fulmen_db, tmp_path):
    class Notes:
        @hookimpl
        def register_apps(self):
            return make_app(tmp_path / "notes", "notes", "notes_entry")

    client = await fulmen_db.start(plugins=[plugin("notes", Notes())])
    await query("INSERT INTO notes_entry (id, note) VALUES ({}, {})", "n1", "hello")
    assert [dict(r) for r in await query("SELECT note FROM notes_entry")] == [{"note": "hello"}]
    r = await client.get("/admin/api/v1/plugins", headers=fulmen_db.admin_headers)
    [notes] = r.json()
    assert notes["migrations"] == ["2026-01-01T00:00:00:000000"]
    assert notes["state"] == "enabled"


async def test_register_apps_with_unprefixed_table_is_refused(fulmen, tmp_path):
    class Bad:
        @hookimpl
        def register_apps(self):
            return make_app(tmp_path / "bad", "bad", "entries")

    client = await fulmen.start(plugins=[plugin("bad", Bad())])
    [bad] = (await client.get("/admin/api/v1/plugins", headers=fulmen.admin_headers)).json()
    assert bad["state"] == "failed"
    assert "table 'entries' must start with 'bad_'" in bad["last_error"]
    assert not await query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'entries'")


async def test_hook_register_routes(fulmen):
    @get("/hello")
    async def hello() -> dict:
        return {"hello": "world"}

    class Routes:
        @hookimpl
        def register_routes(self, host):
            # its own PluginHost: the contract's services, none of the host's secrets
            assert host.plugin_id == "greeter"
            assert callable(host.base_url) and callable(host.spawn)
            assert not hasattr(host, "admin_key") and not hasattr(host, "registry")
            return [hello]

    client = await fulmen.start(plugins=[plugin("greeter", Routes())])
    r = await client.get("/greeter/hello")
    assert r.status_code == 200 and r.json() == {"hello": "world"}
    assert (await client.get("/hello")).status_code == 404  # mounted under the plugin id only


async def test_async_register_routes_is_refused_clearly(fulmen):
    class Async:
        @hookimpl
        async def register_routes(self):
            return []

    client = await fulmen.start(plugins=[plugin("early", Async())])
    [info] = (await client.get("/admin/api/v1/plugins", headers=fulmen.admin_headers)).json()
    assert info["state"] == "failed"
    assert "register_routes must be a plain def" in info["last_error"]


def test_hook_register_commands(probe_site):
    env = {**os.environ, **probe_env(probe_site)}
    out = subprocess.run([sys.executable, "-m", "fulmen", "contract-probe", "hi"], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "probe says hi"
    # without the plugin in the allow-list, the command does not exist
    env["FULMEN_PLUGINS"] = "none"
    out = subprocess.run([sys.executable, "-m", "fulmen", "contract-probe", "hi"], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode != 0 and "No such command" in out.stderr


async def test_hook_nav_entries(fulmen):
    class Nav:
        @hookimpl
        def nav_entries(self, host):
            return [{"href": "/nav/", "label": "Nav"}, {"label": "no href"}]

    class AsyncNav:
        @hookimpl
        async def nav_entries(self):
            return [{"href": "/other/", "label": "Other"}]

    class Broken:
        @hookimpl
        def nav_entries(self):
            raise RuntimeError("boom")

    await fulmen.start(plugins=[plugin("nav", Nav()), plugin("other", AsyncNav()),
                                plugin("broken", Broken())])
    entries = await fulmen.host.hooks.nav_entries()
    assert sorted(entries, key=lambda e: e["href"]) == [
        {"href": "/nav/", "label": "Nav", "plugin": "nav"},
        {"href": "/other/", "label": "Other", "plugin": "other"},
    ]
    assert "boom" in fulmen.host.plugins["broken"].error
    await fulmen.host.set_plugin_enabled("other", False)
    assert [e["plugin"] for e in await fulmen.host.hooks.nav_entries()] == ["nav"]


# --- lifecycle --------------------------------------------------------------------------


async def test_hook_startup(fulmen):
    seen = []

    class Starter:
        @hookimpl
        async def startup(self, host):
            seen.append(("startup", host.is_enabled()))

            async def worker():
                seen.append("background task ran")

            host.spawn(worker())

    class Failing:
        @hookimpl
        def startup(self):
            raise RuntimeError("no config")

    client = await fulmen.start(plugins=[plugin("starter", Starter()), plugin("failing", Failing())])
    await eventually(lambda: "background task ran" in seen)
    assert seen[0] == ("startup", False)  # before its routes and hooks serve
    assert seen.count(("startup", False)) == 1
    plugins = {p["id"]: p for p in (await client.get("/admin/api/v1/plugins",
                                                     headers=fulmen.admin_headers)).json()}
    assert plugins["starter"]["state"] == "enabled"
    assert plugins["failing"]["state"] == "failed"
    assert "startup failed" in plugins["failing"]["last_error"] and "no config" in plugins["failing"]["last_error"]
    # the host still serves
    assert (await client.get("/health")).status_code == 200


async def test_startup_failure_is_fatal_when_strict(fulmen):
    class Failing:
        @hookimpl
        def startup(self):
            raise RuntimeError("no config")

    with pytest.raises(Exception, match="startup failed.*no config"):
        await fulmen.start(plugins=[plugin("failing", Failing())], plugins_strict=True)
    await fulmen.host.stop()


async def test_hook_shutdown(fulmen):
    calls = []

    class Stopper:
        @hookimpl
        def startup(self):
            calls.append("startup")

        @hookimpl
        async def shutdown(self, host):
            calls.append("shutdown")

    await fulmen.start(plugins=[plugin("stopper", Stopper())])
    await fulmen.host.set_plugin_enabled("stopper", False)
    assert calls == ["startup", "shutdown"]
    await fulmen.host.set_plugin_enabled("stopper", True)
    assert calls == ["startup", "shutdown", "startup"]
    await fulmen.stop()
    assert calls == ["startup", "shutdown", "startup", "shutdown"]


# --- before money moves -------------------------------------------------------------


async def test_hook_before_invoice_created(fulmen):
    class Tagger:
        @hookimpl
        def before_invoice_created(self, wallet, request):
            if request.memo == "forbidden":
                raise InvoiceRejected("memo 'forbidden' is not allowed here")
            request.extra["tagged_by"] = "tagger"
            request.memo = request.memo + " (tagged)"

    class Crashing:
        @hookimpl
        async def before_invoice_created(self, wallet, request):
            raise RuntimeError("bug in a plugin")

    await fulmen.start(plugins=[plugin("tagger", Tagger()), plugin("crashing", Crashing())])
    alice = await fulmen.wallet("alice")
    inv = await fulmen.invoice(alice, 10, memo="coffee")
    payment = (await fulmen.host.payments.find_by_hash(inv["payment_hash"]))[0]
    assert payment.memo == "coffee (tagged)" and payment.extra["tagged_by"] == "tagger"
    r = await fulmen.client.post("/api/v1/payments", headers=alice.invoice_headers,
                                 json={"out": False, "amount": 10, "memo": "forbidden"})
    assert r.status_code == 400
    assert r.json()["detail"] == "memo 'forbidden' is not allowed here"
    assert "bug in a plugin" in fulmen.host.plugins["crashing"].error


async def test_hook_before_payment_sent(fulmen):
    class Limit:
        @hookimpl
        async def before_payment_sent(self, host, wallet, invoice):
            if invoice.amount_msat > 50_000:
                raise PaymentRejected(f"{invoice.amount_msat} msat is over this wallet's limit")

    await fulmen.start(plugins=[plugin("limit", Limit())])
    alice = await fulmen.wallet("alice", sats=1000)
    bob = await fulmen.wallet("bob")
    big = await fulmen.invoice(bob, 100)
    r = await fulmen.pay(alice, big["bolt11"])
    assert r.status_code == 403 and "100000 msat is over" in r.json()["detail"]
    assert await fulmen.balance(alice) == 1000_000  # nothing was debited
    small = await fulmen.invoice(bob, 50)
    assert (await fulmen.pay(alice, small["bolt11"])).status_code == 201
    assert await fulmen.balance(bob) == 50_000


# --- after money moved: durable ------------------------------------------------------


async def test_hook_on_invoice_paid(fulmen_db):
    got = []

    class Counter:
        @hookimpl
        def on_invoice_paid(self, host, payment):  # a plain def works too
            got.append((payment.id, payment.amount_msat, payment.status, payment.out))

    class Flaky:
        fails = 1

        @hookimpl
        async def on_invoice_paid(self, payment):
            if self.fails:
                self.fails -= 1
                raise RuntimeError("database of the plugin is down")
            got.append(("flaky", payment.id))

    flaky = Flaky()
    await fulmen_db.start(plugins=[plugin("counter", Counter()), plugin("flaky", flaky)])
    alice = await fulmen_db.wallet("alice", sats=100)
    bob = await fulmen_db.wallet("bob")
    inv = await fulmen_db.invoice(bob, 21)
    r = await fulmen_db.pay(alice, inv["bolt11"])
    assert r.status_code == 201  # the flaky plugin does not affect the payment
    await fulmen_db.drain()
    incoming = (await fulmen_db.host.payments.find_by_hash(inv["payment_hash"], bob.id))[0]
    assert got == [(incoming.id, 21_000, "success", False)]
    rows = (await fulmen_db.client.get("/admin/api/v1/hook-deliveries?plugin=flaky",
                                       headers=fulmen_db.admin_headers)).json()
    [row] = [x for x in rows if x["hook"] == "on_invoice_paid"]
    assert row["status"] == "pending" and row["attempts"] == 1
    assert "database of the plugin is down" in row["last_error"]
    assert row["next_attempt_at"] >= now_ms() + 1000  # backs off
    # due again: the retry delivers it, once
    await query("UPDATE fulmen_hook_delivery SET next_attempt_at = 0 WHERE id = {}", row["id"])
    await fulmen_db.drain()
    assert got[1:] == [("flaky", incoming.id)]
    await fulmen_db.drain()
    assert len(got) == 2
    done = (await fulmen_db.client.get("/admin/api/v1/hook-deliveries?status=done",
                                       headers=fulmen_db.admin_headers)).json()
    assert {(d["plugin_id"], d["hook"]) for d in done} >= {("counter", "on_invoice_paid"),
                                                           ("flaky", "on_invoice_paid")}
    # an invoice paid from outside is delivered as well
    inv2 = await fulmen_db.invoice(bob, 5)
    assert (await fulmen_db.settle_from_outside(inv2["payment_hash"])).status_code == 200
    await fulmen_db.drain()
    assert [g for g in got if g[0] != "flaky"][-1][1] == 5_000


async def test_hook_on_payment_sent(fulmen):
    sent = []

    class Sent:
        @hookimpl
        async def on_payment_sent(self, payment):
            sent.append((payment.out, payment.amount_msat, payment.status))

        @hookimpl
        def on_invoice_paid(self, payment):
            sent.append(("paid", payment.amount_msat))

    await fulmen.start(plugins=[plugin("sent", Sent())])
    alice = await fulmen.wallet("alice", sats=100)
    bob = await fulmen.wallet("bob")
    inv = await fulmen.invoice(bob, 7)
    assert (await fulmen.pay(alice, inv["bolt11"])).status_code == 201
    await fulmen.drain()
    assert sorted(sent, key=str) == sorted([(True, -7000, "success"), ("paid", 7000)], key=str)


async def test_hook_on_payment_failed(fulmen_db):
    failed = []

    class Failed:
        @hookimpl
        async def on_payment_failed(self, host, payment):
            failed.append((payment.status, payment.amount_msat, payment.error))

        @hookimpl
        def on_payment_sent(self, payment):
            failed.append("sent: wrong hook")

    await fulmen_db.start(plugins=[plugin("failed", Failed())])
    alice = await fulmen_db.wallet("alice", sats=100)
    r = await fulmen_db.pay(alice, await external_invoice(10))
    assert r.status_code == 400
    await fulmen_db.drain()
    assert len(failed) == 1
    status, amount, error = failed[0]
    assert status == "failed" and amount == -10_000 and "FakeWallet" in error
    assert await fulmen_db.balance(alice) == 100_000


# --- questions with one answer ----------------------------------------------------------


async def test_hook_resolve_lightning_address(fulmen):
    asked = []

    class Owner:
        @hookimpl
        async def resolve_lightning_address(self, username, base_url):
            asked.append("owner")
            if username == "alice":
                return {"tag": "payRequest", "callback": f"{base_url}/owner/cb/alice",
                        "minSendable": 1000, "maxSendable": 1000000, "metadata": "[]"}
            return None

    class Crashing:
        @hookimpl
        def resolve_lightning_address(self, username):
            asked.append("crashing")
            raise RuntimeError("lookup failed")

    client = await fulmen.start(plugins=[plugin("owner", Owner()), plugin("crashing", Crashing())])
    r = await client.get("/.well-known/lnurlp/Alice")
    assert r.status_code == 200
    assert r.json()["callback"] == "http://testserver.local/owner/cb/alice"
    r = await client.get("/.well-known/lnurlp/nobody")
    assert r.status_code == 404 and r.json()["status"] == "ERROR"
    assert "crashing" in asked  # its failure did not hide the owner's answer


async def test_resolve_lightning_address_first_result_wins(fulmen):
    calls = []

    def owner(name):
        class Owner:
            @hookimpl
            def resolve_lightning_address(self, username):
                calls.append(name)
                return {"tag": "payRequest", "owner": name}

        return Owner()

    client = await fulmen.start(plugins=[plugin("one", owner("one")), plugin("two", owner("two"))])
    r = await client.get("/.well-known/lnurlp/bob")
    assert r.status_code == 200 and r.json()["owner"] in ("one", "two")
    assert len(calls) == 1  # the first answer stops the search
