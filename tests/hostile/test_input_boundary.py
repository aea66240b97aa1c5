"""The input boundary (fulmen/api/guard.py): the same 400 on SQLite and
PostgreSQL for what PostgreSQL cannot store, for host and plugin routes."""

import json

import pytest
from fulmen.api.guard import InputRefused, check_body

PLUGINS = ["lnurlp", "withdraw", "tpos"]


def test_check_body_names_the_field() -> None:
    with pytest.raises(InputRefused, match=r"extra\.a\.1 holds a NUL"):
        check_body(json.dumps({"extra": {"a": ["ok", "b\u0000"]}}).encode())
    with pytest.raises(InputRefused, match="nested deeper"):
        check_body(b"[" * 1500 + b"]" * 1500)
    with pytest.raises(InputRefused, match="nested deeper"):
        check_body(b'{"a":' * 40 + b"1" + b"}" * 40)
    check_body(json.dumps({"memo": "tab\tand\nnewline", "x": [[1]]}).encode())
    check_body(b"not json")
    with pytest.raises(InputRefused, match="not valid JSON"):
        check_body(b'{"a": "\xff"}')


async def test_nul_and_deep_json_answer_400_on_both_databases(fulmen_db) -> None:
    client = await fulmen_db.start(plugins=PLUGINS)
    shop = await fulmen_db.wallet("shop", sats=10)
    r = await client.post("/api/v1/account", json={"name": "a\u0000"})
    assert r.status_code == 400 and "name holds a NUL" in r.json()["detail"], r.text
    r = await client.post("/api/v1/payments", headers=shop.invoice_headers,
                          json={"out": False, "amount": 1, "extra": {"k": "v\u0000"}})
    assert r.status_code == 400 and "extra.k" in r.json()["detail"], r.text
    for body in (b"[" * 1500 + b"]" * 1500, b'{"a":' * 800 + b"1" + b"}" * 800):
        r = await client.post("/api/v1/account", content=body,
                              headers={"content-type": "application/json"})
        assert r.status_code == 400 and "nested" in r.json()["detail"], r.text
    r = await client.post("/lnurlp/api/v1/links", headers=shop.admin_headers,
                          json={"description": "d\u0000", "min": 1, "max": 10})
    assert r.status_code == 400 and "description" in r.json()["detail"], r.text
    r = await client.post("/lnurlp/api/v1/links", headers=shop.admin_headers,
                          json={"description": "d", "min": 1, "max": 10, "comment_chars": 100})
    link = r.json()
    for path in (f"/lnurlp/{link['id']}%00", "/withdraw/x%00", "/tpos/x%00", "/lnurlp/a%0ab"):
        r = await client.get(path)
        assert r.status_code == 400 and "control character" in r.json()["detail"], (path, r.text)
    r = await client.post("/tpos/api/v1/tposs/x%00/invoices", json={"amount": 1})
    assert r.status_code == 400, r.text
    r = await client.get(f"/lnurlp/api/v1/lnurl/cb/{link['id']}",
                         params={"amount": 1000, "comment": "hi\u0000"})
    assert r.status_code == 400 and "'comment'" in r.json()["detail"], r.text
    # Everything else is stored faithfully on both databases.
    r = await client.post("/api/v1/payments", headers=shop.invoice_headers,
                          json={"out": False, "amount": 1, "memo": "tab\there\nnew \u2603",
                                "extra": {"k": "\u0001\u001f"}})
    assert r.status_code == 201, r.text
    r = await client.get(f"/api/v1/payments/{r.json()['payment_hash']}", headers=shop.read_headers)
    assert r.json()["details"]["memo"] == "tab\there\nnew \u2603", r.text
    assert await fulmen_db.host.wallets.audit() == []


async def test_out_of_range_numbers_answer_400(fulmen_db) -> None:
    client = await fulmen_db.start()
    for offset in (2**63, 2**62 + 1):
        r = await client.get("/admin/api/v1/accounts", params={"offset": offset},
                             headers=fulmen_db.admin_headers)
        assert r.status_code == 400, r.text
    shop = await fulmen_db.wallet("shop", sats=5)
    r = await client.get("/admin/api/v1/accounts", headers=fulmen_db.admin_headers)
    assert [a["balance_msat"] for a in r.json()] == [5000], r.text
    r = await client.post("/api/v1/payments", headers=shop.invoice_headers,
                          json={"out": False, "amount": 1, "unit": {}})
    assert r.status_code == 400 and "unit" in r.json()["detail"], r.text
    r = await client.post("/api/v1/payments", headers=shop.invoice_headers,
                          json={"out": False, "amount": 1, "expiry": 2**64})
    assert r.status_code == 400, r.text


def test_database_refusals_become_400_messages() -> None:
    import asyncpg.exceptions
    from fulmen.api.guard import unstorable_value

    assert unstorable_value(OverflowError("Python int too large to convert to SQLite INTEGER"))
    wrapped = RuntimeError("query failed")
    wrapped.__cause__ = asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte")
    assert unstorable_value(wrapped)
    assert unstorable_value(ValueError("something else")) is None


def test_form_and_query_nul() -> None:
    from fulmen.api.guard import check_target, check_urlencoded

    with pytest.raises(InputRefused, match="form field 'memo'"):
        check_urlencoded(b"a=1&memo=x%00y", "form field")
    with pytest.raises(InputRefused, match="path holds a control character"):
        check_target({"path": "/a\nb", "query_string": b""})
    check_urlencoded(b"a=1&memo=x%01y", "form field")


async def test_invalid_utf8_and_surrogates_never_500(fulmen_db) -> None:
    client = await fulmen_db.start(plugins=PLUGINS)
    shop = await fulmen_db.wallet("shop", sats=10)
    r = await client.post("/lnurlp/api/v1/links", headers=shop.admin_headers,
                          json={"description": "d", "min": 1, "max": 10, "comment_chars": 100})
    link = r.json()["id"]
    for path in (f"/lnurlp/api/v1/lnurl/cb/{link}?amount=1000&comment=%ED%A0%80",
                 f"/lnurlp/api/v1/lnurl/cb/{link}?amount=1000&comment=%FF%FE",
                 "/lnurlp/%ED%A0%80", "/withdraw/%FF", "/api/v1/payments?memo=%ED%A0%80"):
        r = await client.get(path, headers=shop.read_headers)
        assert r.status_code < 500, (path, r.text)
    for raw in (b'{"name": "\\ud800"}', b'{"name": "\xff"}', b'{"name": "\\udc80x"}'):
        r = await client.post("/api/v1/account", content=raw,
                              headers={"content-type": "application/json"})
        assert r.status_code == 400, (raw, r.text)
