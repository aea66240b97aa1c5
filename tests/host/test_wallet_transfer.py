"""Per-wallet export and import between two hosts: configuration and plugin
objects move, balances and history do not, clashes are reported, not renamed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fulmen import hookimpl
from fulmen.testing import Fulmen, plugin

PLUGINS = ["lnurlp", "withdraw", "tpos", "splitpayments"]
pytestmark = pytest.mark.timeout(300)


async def build_source(f: Fulmen) -> tuple[Any, Any, dict[str, Any]]:
    client = await f.start(plugins=PLUGINS)
    alice = await f.wallet("alice", sats=1000)
    friend = await f.wallet("friend")
    r = await client.post("/lnurlp/api/v1/links", headers=alice.admin_headers,
                          json={"description": "Tips", "min": 1, "max": 500, "username": "alice",
                                "comment_chars": 50})
    assert r.status_code == 201, r.text
    r = await client.post("/lnurlp/api/v1/links", headers=alice.admin_headers,
                          json={"description": "Shop", "min": 10, "max": 10,
                                "username": "alice-shop"})
    assert r.status_code == 201, r.text
    r = await client.post("/withdraw/api/v1/links", headers=alice.admin_headers,
                          json={"title": "voucher", "min_withdrawable": 1,
                                "max_withdrawable": 10, "uses": 3})
    assert r.status_code == 201, r.text
    r = await client.post("/tpos/api/v1/tposs", headers=alice.admin_headers,
                          json={"name": "Bar", "currency": "sat", "tip_options": "[5, 10]"})
    assert r.status_code == 201, r.text
    r = await client.put("/splitpayments/api/v1/targets", headers=alice.admin_headers,
                         json={"targets": [{"wallet": friend.id, "alias": "friend", "percent": 5}]})
    assert r.status_code == 200, r.text
    r = await client.post("/api/v1/webhooks", headers=alice.admin_headers,
                          json={"url": "http://127.0.0.1:9/hook", "events": ["payment.received"],
                                "description": "books"})
    assert r.status_code == 201, r.text
    r = await client.get("/api/v1/wallet/export", headers=alice.admin_headers)
    assert r.status_code == 200, r.text
    return alice, friend, r.json()


async def test_hook_wallet_export(tmp_path: Path) -> None:
    f = Fulmen(tmp_path, f"sqlite:///{tmp_path / 'a.sqlite3'}")
    try:
        alice, friend, doc = await build_source(f)
        r = await f.client.get("/api/v1/wallet/export", headers=alice.invoice_headers)
        assert r.status_code in (401, 403)  # the admin key only
    finally:
        await f.stop()
    assert doc["format"] == "fulmen-wallet" and doc["wallet"]["name"] == "alice"
    assert "balance" not in str(doc) and "payments" not in doc
    lnurlp = doc["plugins"]["lnurlp"]
    assert sorted(link["username"] for link in lnurlp) == ["alice", "alice-shop"]
    assert all("id" not in link and "served_pr" not in link for link in lnurlp)
    assert doc["plugins"]["withdraw"][0]["uses"] == 3
    assert doc["plugins"]["tpos"][0]["name"] == "Bar"
    assert doc["plugins"]["splitpayments"]["targets"][0]["wallet"] == friend.id
    assert doc["webhooks"] == [{"url": "http://127.0.0.1:9/hook", "events": ["payment.received"],
                                "description": "books"}]
    assert "secret" not in str(doc["webhooks"])
    assert doc["errors"] == []


@pytest.mark.postgres
async def test_hook_wallet_import(tmp_path: Path, postgres_url: str) -> None:
    """From a SQLite host to a PostgreSQL one, where the username "alice" is taken."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    src = Fulmen(tmp_path / "a", f"sqlite:///{tmp_path / 'a.sqlite3'}")
    try:
        _, _, doc = await build_source(src)
    finally:
        await src.stop()
    dst = Fulmen(tmp_path / "b", postgres_url)
    try:
        client = await dst.start(plugins=PLUGINS)
        squatter = await dst.wallet("squatter")
        r = await client.post("/lnurlp/api/v1/links", headers=squatter.admin_headers,
                              json={"description": "mine", "min": 1, "max": 2,
                                    "username": "alice"})
        assert r.status_code == 201, r.text
        bob = await dst.wallet("bob")
        r = await client.post("/api/v1/wallet/import", headers=bob.admin_headers, json=doc)
        assert r.status_code == 200, r.text
        result = r.json()
        # the taken username and the split to a wallet this host lacks are conflicts
        problems = {(c.get("plugin"), str(c.get("problem"))) for c in result["conflicts"]}
        assert any(p == "lnurlp" and "alice" in m and "taken" in m for p, m in problems), problems
        assert any(p == "splitpayments" and "wallet" in m for p, m in problems), problems
        assert len(result["conflicts"]) == 2
        assert [link["username"] for link in result["created"]["lnurlp"]] == ["alice-shop"]
        assert len(result["created"]["webhooks"]) == 1 and result["created"]["webhooks"][0]["secret"]
        # what was created works in bob's wallet; nothing was renamed; no money moved
        r = await client.get("/lnurlp/api/v1/links", headers=bob.invoice_headers)
        assert [link["username"] for link in r.json()] == ["alice-shop"]
        r = await client.get("/.well-known/lnurlp/alice-shop")
        assert r.status_code == 200 and r.json()["tag"] == "payRequest"
        r = await client.get("/withdraw/api/v1/links", headers=bob.invoice_headers)
        [voucher] = r.json()["data"]
        assert voucher["title"] == "voucher" and voucher["uses"] == 3
        r = await client.get("/tpos/api/v1/tposs", headers=bob.invoice_headers)
        [bar] = r.json()
        assert bar["name"] == "Bar" and bar["tip_options"] == "[5, 10]"
        r = await client.post(f"/tpos/api/v1/tposs/{bar['id']}/invoices", json={"amount": 21})
        assert r.status_code == 201 and r.json()["wallet_id"] == bob.id, r.text
        r = await client.get("/api/v1/webhooks", headers=bob.invoice_headers)
        assert [w["url"] for w in r.json()] == ["http://127.0.0.1:9/hook"]
        assert await dst.balance(bob) == 0
        # importing again: every pay link name is now taken, still nothing renamed
        r = await client.post("/api/v1/wallet/import", headers=bob.admin_headers,
                              json={**doc, "plugins": {"lnurlp": doc["plugins"]["lnurlp"]},
                                    "webhooks": []})
        assert r.status_code == 200 and r.json()["created"]["lnurlp"] == []
        assert len(r.json()["conflicts"]) == 2
    finally:
        await dst.stop()


async def test_import_refuses_bad_documents_and_reports_missing_plugins(fulmen: Fulmen) -> None:
    class Broken:
        @hookimpl
        def wallet_export(self) -> Any:
            raise RuntimeError("export broke")

        @hookimpl
        def wallet_import(self) -> Any:
            raise RuntimeError("import broke")

    client = await fulmen.start(plugins=["lnurlp", plugin("broken", Broken())])
    w = await fulmen.wallet("w")
    for body, problem in [
        ([], "wallet export"), ({"format": "other"}, "wallet export"),
        ({"format": "fulmen-wallet", "format_version": 99}, "format_version"),
        ({"format": "fulmen-wallet", "format_version": 1, "webhooks": "x"}, "webhooks"),
        ({"format": "fulmen-wallet", "format_version": 1, "plugins": []}, "plugins"),
    ]:
        r = await client.post("/api/v1/wallet/import", headers=w.admin_headers, json=body)
        assert r.status_code == 400 and problem in r.json()["detail"], (body, r.text)
    r = await client.get("/api/v1/wallet/export", headers=w.admin_headers)
    assert r.status_code == 200
    assert r.json()["errors"] == [{"plugin": "broken", "error": "export broke"}]
    assert r.json()["plugins"]["lnurlp"] == []
    doc = {"format": "fulmen-wallet", "format_version": 1,
           "plugins": {"nosuch": [1], "broken": [], "lnurlp": "not a list"},
           "webhooks": [{"url": "ftp://x", "events": ["payment.received"]}]}
    r = await client.post("/api/v1/wallet/import", headers=w.admin_headers, json=doc)
    assert r.status_code == 200, r.text
    conflicts = r.json()["conflicts"]
    assert {c.get("plugin") for c in conflicts} == {None, "nosuch", "broken", "lnurlp"}
    assert any("not installed" in c["problem"] for c in conflicts)


async def test_random_import_documents_never_cause_500(fulmen: Fulmen) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) \
        | st.text(max_size=20)
    values = st.recursive(leaves, lambda c: st.lists(c, max_size=3)
                          | st.dictionaries(st.text(max_size=12), c, max_size=3), max_leaves=8)
    keys = st.sampled_from(["description", "min", "max", "username", "title", "uses", "name",
                            "items", "tip_wallet", "targets", "wallet", "percent", "url",
                            "events", "min_withdrawable", "max_withdrawable", "webhook_url"])
    items = st.dictionaries(keys, values, max_size=5)
    section = st.lists(items, max_size=3) | items | values
    docs = st.fixed_dictionaries({
        "format": st.just("fulmen-wallet"), "format_version": st.just(1),
        "plugins": st.dictionaries(st.sampled_from(PLUGINS + ["other"]), section, max_size=4),
        "webhooks": st.lists(items, max_size=2),
    })
    client = await fulmen.start(plugins=PLUGINS)
    w = await fulmen.wallet("w")
    seen: list[Any] = []

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(doc=docs)
    def generate(doc: Any) -> None:
        seen.append(doc)

    generate()
    for doc in seen:
        r = await client.post("/api/v1/wallet/import", headers=w.admin_headers, json=doc)
        assert r.status_code < 500, (doc, r.text)
    assert await fulmen.host.wallets.audit() == []
