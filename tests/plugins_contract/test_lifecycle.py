"""Migrations in dependency order, and live enable/disable in one process
(test_multiprocess.py covers several processes)."""

from __future__ import annotations

from fulmen import hookimpl, query
from fulmen.testing import plugin
from litestar import get

from .helpers import make_app


async def test_host_then_plugins_in_dependency_order(fulmen_db, tmp_path):
    base = make_app(tmp_path / "base", "base", "base_item")
    # `extra` references base's table, so base must migrate first although
    # extra is registered first.
    extra = make_app(
        tmp_path / "extra", "extra", "extra_item", depends=["fulmen", "base"],
        ddl="CREATE TABLE extra_item (id VARCHAR(32) PRIMARY KEY, "
            "base_id VARCHAR(32) NOT NULL REFERENCES base_item(id), "
            "wallet_id VARCHAR(32) REFERENCES fulmen_wallet(id))",
    )

    def owner(app):
        class Owner:
            @hookimpl
            def register_apps(self):
                return app

        return Owner()

    client = await fulmen_db.start(plugins=[plugin("extra", owner(extra)), plugin("base", owner(base))])
    rows = await query("SELECT app_name FROM migration ORDER BY id")
    order = [r["app_name"] for r in rows]
    assert order[0] == "fulmen" and order.index("base") < order.index("extra")
    assert set(order) == {"fulmen", "base", "extra"}
    await query("INSERT INTO base_item (id, note) VALUES ('b1', 'x')")
    await query("INSERT INTO extra_item (id, base_id) VALUES ('e1', 'b1')")
    listed = {p["id"]: p for p in (await client.get("/admin/api/v1/plugins",
                                                    headers=fulmen_db.admin_headers)).json()}
    assert listed["base"]["migrations"] == listed["extra"]["migrations"] == ["2026-01-01T00:00:00:000000"]
    # a restart applies nothing twice
    assert await fulmen_db.host.migrate() == {"fulmen": [], "base": [], "extra": []}


async def test_disabled_plugin_migrates_when_enabled(fulmen_db, tmp_path):
    class Late:
        @hookimpl
        def register_apps(self):
            return make_app(tmp_path / "late", "late", "late_item")

    client = await fulmen_db.start(plugins=[plugin("late", Late())], plugins_enabled_by_default=False)
    [late] = (await client.get("/admin/api/v1/plugins", headers=fulmen_db.admin_headers)).json()
    assert late["enabled"] is False and late["state"] == "disabled" and late["migrations"] == []
    r = await client.put("/admin/api/v1/plugins/late", json={"enabled": True},
                         headers=fulmen_db.admin_headers)
    assert r.status_code == 200 and r.json()["state"] == "enabled"
    await query("INSERT INTO late_item (id, note) VALUES ('a', 'b')")
    [late] = (await client.get("/admin/api/v1/plugins", headers=fulmen_db.admin_headers)).json()
    assert late["migrations"] == ["2026-01-01T00:00:00:000000"]


@get("/things")
async def things() -> list[dict]:
    return [dict(r) for r in await query("SELECT id, note FROM shop_item ORDER BY id")]


class Shop:
    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.paid = []

    @hookimpl
    def register_apps(self):
        return make_app(self.tmp_path / "shop", "shop", "shop_item")

    @hookimpl
    def register_routes(self):
        return [things]

    @hookimpl
    def on_invoice_paid(self, payment):
        self.paid.append(payment.id)


async def test_admin_api_lists_and_toggles_plugins(fulmen, tmp_path):
    shop = Shop(tmp_path)
    client = await fulmen.start(plugins=[plugin("shop", shop)])
    admin = fulmen.admin_headers
    assert (await client.get("/admin/api/v1/plugins")).status_code == 401
    [info] = (await client.get("/admin/api/v1/plugins", headers=admin)).json()
    assert {k: info[k] for k in ("id", "version", "summary", "enabled", "state", "last_error")} == {
        "id": "shop", "version": "0.0.0", "summary": "test plugin", "enabled": True,
        "state": "enabled", "last_error": None}
    await query("INSERT INTO shop_item (id, note) VALUES ('i1', 'kept')")
    assert (await client.get("/shop/things")).json() == [{"id": "i1", "note": "kept"}]

    r = await client.put("/admin/api/v1/plugins/shop", json={"enabled": False}, headers=admin)
    assert r.status_code == 200 and r.json()["enabled"] is False and r.json()["state"] == "disabled"
    assert (await client.get("/shop/things")).status_code == 404
    alice = await fulmen.wallet("alice", sats=10)
    bob = await fulmen.wallet("bob")
    inv = await fulmen.invoice(bob, 1)
    assert (await fulmen.pay(alice, inv["bolt11"])).status_code == 201
    await fulmen.drain()
    assert shop.paid == []  # disabled: its hooks are not called
    assert await query("SELECT * FROM fulmen_hook_delivery WHERE plugin_id = 'shop'") == []

    r = await client.put("/admin/api/v1/plugins/shop", json={"enabled": True}, headers=admin)
    assert r.json()["state"] == "enabled"
    assert (await client.get("/shop/things")).json() == [{"id": "i1", "note": "kept"}]
    inv = await fulmen.invoice(bob, 2)
    assert (await fulmen.pay(alice, inv["bolt11"])).status_code == 201
    await fulmen.drain()
    assert len(shop.paid) == 1

    # bad input names the problem
    r = await client.put("/admin/api/v1/plugins/nope", json={"enabled": True}, headers=admin)
    assert r.status_code == 404 and "nope" in r.json()["detail"]
    for body in ({}, {"enabled": "maybe"}):
        r = await client.put("/admin/api/v1/plugins/shop", json=body, headers=admin)
        assert r.status_code == 400 and "enabled" in r.json()["detail"]
    r = await client.get("/admin/api/v1/hook-deliveries?status=odd", headers=admin)
    assert r.status_code == 400 and "status" in r.json()["detail"]


class Bare:
    @hookimpl
    def on_invoice_paid(self, payment):
        pass


async def test_enabled_by_default_setting_and_persistence(tmp_path):
    from fulmen.testing import Fulmen

    db_url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    first = Fulmen(tmp_path, db_url)
    client = await first.start(plugins=[plugin("shop", Shop(tmp_path)), plugin("other", Bare())],
                               plugins_enabled_by_default=False)
    assert (await client.get("/shop/things")).status_code == 404
    r = await client.put("/admin/api/v1/plugins/shop", json={"enabled": True}, headers=first.admin_headers)
    assert r.status_code == 200
    await first.stop()
    # restarted with the opposite default: stored choices win, new plugins follow the default
    second = Fulmen(tmp_path, db_url)
    client = await second.start(plugins=[plugin("shop", Shop(tmp_path)), plugin("other", Bare()),
                                         plugin("newer", Bare())],
                                plugins_enabled_by_default=True)
    try:
        listed = {p["id"]: p["enabled"] for p in (await client.get(
            "/admin/api/v1/plugins", headers=second.admin_headers)).json()}
        assert listed == {"shop": True, "other": False, "newer": True}
        states = {p.id: p.state for p in second.host.plugins.values()}
        assert states == {"shop": "started", "other": "discovered", "newer": "started"}
    finally:
        await second.stop()
