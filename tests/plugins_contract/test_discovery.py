"""Discovery through entry points: ids, collisions, allow-list under test,
host-version compatibility, and quarantine of plugins that fail."""

from __future__ import annotations

import logging
import re

import pytest
from fulmen import hookimpl
from fulmen.app import create_app
from fulmen.host import Host
from fulmen.plugins import PLUGIN_ID, RESERVED_IDS, PluginError, PluginState, discover
from fulmen.settings import Settings
from fulmen.testing import plugin

from .conftest import make_distribution
from .helpers import LogRecorder, make_app


@pytest.fixture
def host_log():
    recorder = LogRecorder()
    logger = logging.getLogger("fulmen")
    logger.addHandler(recorder)
    yield recorder
    logger.removeHandler(recorder)


@pytest.fixture
def site(tmp_path, monkeypatch):
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def test_nothing_is_loaded_under_test_without_an_allow_list(probe):
    assert discover(None) == []
    [info] = discover({"contract_probe"})
    assert (info.id, info.version, info.distribution) == ("contract_probe", "0.1.0", "fulmen-contract-probe")
    assert info.summary == "Records every hook call (contract tests)"
    assert info.usable and info.module.__name__ == "fulmen_contract_probe"


@pytest.mark.parametrize("bad_id, message", [
    ("Shop", "must match [a-z][a-z0-9_]*"),
    ("9lives", "must match [a-z][a-z0-9_]*"),
    ("my-shop", "must match [a-z][a-z0-9_]*"),
    ("admin", "reserved for the host's own paths"),
    ("api", "reserved for the host's own paths"),
    ("static", "reserved for the host's own paths"),
])
def test_bad_ids_are_refused_with_a_clear_message(site, bad_id, message):
    (site / "okmod.py").write_text("")
    make_distribution(site, "fulmen-bad", "1.0", {bad_id: "okmod"}, ["fulmen"])
    [info] = discover({bad_id})
    assert info.state is PluginState.QUARANTINED and info.quarantine_kind == "failed"
    assert message in info.error and repr(bad_id) in info.error
    assert info.module is None  # never imported


def test_two_distributions_claiming_one_id_are_refused(site):
    (site / "shop_a.py").write_text("")
    (site / "shop_b.py").write_text("")
    make_distribution(site, "fulmen-shop-a", "1.0", {"shop": "shop_a"}, [])
    make_distribution(site, "fulmen-shop-b", "1.0", {"shop": "shop_b"}, [])
    [info] = discover({"shop"})
    assert info.state is PluginState.QUARANTINED
    assert re.search(r"claimed by both 'fulmen-shop-[ab]' and 'fulmen-shop-[ab]'", info.error)


def test_every_core_path_is_reserved(tmp_path):
    """A plugin mounted at /{id} must never shadow a route of the host."""
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'db'}", admin_key="k")
    app = create_app(host=Host(settings, plugins=[]))
    segments = {route.path.strip("/").split("/")[0] for route in app.routes}
    segments.discard("")
    assert segments, "no routes found"
    clash = sorted(s for s in segments if PLUGIN_ID.match(s) and s not in RESERVED_IDS)
    assert clash == [], f"core paths a plugin id could take: {clash}"
    for listed in ("api", "admin", "static", "health", "ready", "metrics", "docs", "schema"):
        assert listed in RESERVED_IDS


async def test_incompatible_host_version_is_refused(site, fulmen):
    (site / "future_mod.py").write_text("raise RuntimeError('must not be imported')\n")
    make_distribution(site, "fulmen-future", "3.0", {"future": "future_mod"}, ["fulmen>=99"])
    [info] = discover({"future"})
    assert info.state is PluginState.QUARANTINED and info.quarantine_kind == "incompatible"
    assert info.error == ("needs fulmen>=99, but this host is 0.1.0; install a matching plugin version")
    client = await fulmen.start(plugins=["future"])
    [listed] = (await client.get("/admin/api/v1/plugins", headers=fulmen.admin_headers)).json()
    assert listed["state"] == "incompatible" and "fulmen>=99" in listed["last_error"]
    r = await client.put("/admin/api/v1/plugins/future", json={"enabled": True},
                         headers=fulmen.admin_headers)
    assert r.status_code == 400 and "incompatible" in r.json()["detail"]


async def test_import_failure_is_quarantined_and_others_serve(site, probe, fulmen, host_log):
    (site / "broken_mod_x1.py").write_text("import no_such_module_anywhere\n")
    make_distribution(site, "fulmen-broken", "1.0", {"broken": "broken_mod_x1"}, ["fulmen>=0.1"])
    client = await fulmen.start(plugins=["broken", "contract_probe"])
    plugins = {p["id"]: p for p in (await client.get("/admin/api/v1/plugins",
                                                     headers=fulmen.admin_headers)).json()}
    assert plugins["broken"]["state"] == "failed"
    assert "import failed" in plugins["broken"]["last_error"]
    assert "no_such_module_anywhere" in plugins["broken"]["last_error"]
    assert "plugin broken quarantined" in host_log.text
    assert plugins["contract_probe"]["state"] == "enabled"
    assert (await client.get("/contract_probe/pid")).status_code == 200
    assert (await client.get("/broken/anything")).status_code == 404


def test_import_failure_is_fatal_when_strict(site, tmp_path):
    (site / "broken_mod_x2.py").write_text("raise ImportError('half installed')\n")
    make_distribution(site, "fulmen-broken2", "1.0", {"broken2": "broken_mod_x2"}, [])
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'db'}",
                        admin_key="k", plugins="broken2", plugins_strict=True)
    with pytest.raises(PluginError, match="plugin broken2 is failed: import failed.*half installed"):
        Host(settings)


async def test_migration_failure_is_quarantined_and_others_serve(fulmen, tmp_path, host_log):
    class BadMigration:
        @hookimpl
        def register_apps(self):
            return make_app(tmp_path / "badmig", "badmig", "badmig_x", ddl="CREATE TABLE (((")

    class Good:
        @hookimpl
        def register_apps(self):
            return make_app(tmp_path / "good", "good", "good_x")

    client = await fulmen.start(plugins=[plugin("badmig", BadMigration()), plugin("good", Good())])
    plugins = {p["id"]: p for p in (await client.get("/admin/api/v1/plugins",
                                                     headers=fulmen.admin_headers)).json()}
    assert plugins["badmig"]["state"] == "failed"
    assert "migration of badmig failed" in plugins["badmig"]["last_error"]
    assert plugins["badmig"]["migrations"] == []
    assert plugins["good"]["state"] == "enabled" and len(plugins["good"]["migrations"]) == 1
    assert "plugin badmig quarantined" in host_log.text
    alice = await fulmen.wallet("alice", sats=10)  # the host still serves
    assert await fulmen.balance(alice) == 10_000


async def test_migration_failure_is_fatal_when_strict(fulmen, tmp_path):
    class BadMigration:
        @hookimpl
        def register_apps(self):
            return make_app(tmp_path / "badmig", "badmig", "badmig_x", ddl="CREATE TABLE (((")

    with pytest.raises(PluginError, match="plugin badmig: migration of badmig failed"):
        await fulmen.start(plugins=[plugin("badmig", BadMigration())], plugins_strict=True)
    await fulmen.host.stop()
