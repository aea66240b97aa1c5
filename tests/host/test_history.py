import csv
import io

import pytest


@pytest.fixture
async def wallet_with_history(fulmen_db):
    await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=1000)
    bob = await fulmen_db.wallet("bob")
    for i in range(6):
        inv = await fulmen_db.invoice(bob, 10 + i, memo=f"coffee {i}" if i % 2 else f"tea {i}")
        r = await fulmen_db.pay(alice, inv["bolt11"])
        assert r.status_code == 201
    await fulmen_db.invoice(bob, 99, memo="unpaid")
    return fulmen_db, alice, bob


async def test_filters_sorting_and_paging(wallet_with_history):
    f, alice, bob = wallet_with_history
    c = f.client
    r = await c.get("/api/v1/payments", headers=bob.read_headers)
    assert len(r.json()) == 7  # includes the pending invoice, as LNbits does
    r = await c.get("/api/v1/payments", headers=bob.read_headers, params={"status": "success"})
    assert len(r.json()) == 6
    r = await c.get("/api/v1/payments", headers=bob.read_headers, params={"amount[ge]": 13000, "status": "success"})
    assert sorted(p["amount"] for p in r.json()) == [13000, 14000, 15000]
    r = await c.get("/api/v1/payments", headers=bob.read_headers, params={"memo[like]": "COFFEE"})
    assert len(r.json()) == 3
    r = await c.get("/api/v1/payments", headers=bob.read_headers, params={"search": "tea"})
    assert len(r.json()) == 3
    r = await c.get("/api/v1/payments", headers=bob.read_headers,
                    params={"sortby": "amount", "direction": "asc", "status[ne]": "pending"})
    amounts = [p["amount"] for p in r.json()]
    assert amounts == sorted(amounts)
    r = await c.get("/api/v1/payments", headers=alice.read_headers, params={"out": "true"})
    assert len(r.json()) == 6 and all(p["amount"] < 0 for p in r.json())
    r = await c.get("/api/v1/payments", headers=bob.read_headers, params={"amount[in]": "10000,12000"})
    assert sorted(p["amount"] for p in r.json()) == [10000, 12000]
    # pages of 2 cover everything exactly once
    seen = []
    for offset in range(0, 8, 2):
        r = await c.get("/api/v1/payments/paginated", headers=bob.read_headers,
                        params={"limit": 2, "offset": offset})
        body = r.json()
        assert body["total"] == 7
        seen += [p["checking_id"] for p in body["data"]]
    assert len(seen) == len(set(seen)) == 7


async def test_time_range_filter(wallet_with_history):
    f, _, bob = wallet_with_history
    r = await f.client.get("/api/v1/payments", headers=bob.read_headers, params={"time[ge]": "2000-01-01"})
    assert len(r.json()) == 7
    r = await f.client.get("/api/v1/payments", headers=bob.read_headers, params={"time[lt]": "2000-01-01T00:00:00Z"})
    assert r.json() == []


@pytest.mark.parametrize("params, detail", [
    ({"nonsense": "1"}, "unknown filter"),
    ({"amount[zz]": "1"}, "unknown operator"),
    ({"amount[gt]": "abc"}, "whole number"),
    ({"limit": "0"}, "limit must be"),
    ({"limit": "x"}, "limit must be a whole number"),
    ({"offset": "-1"}, "offset"),
    ({"sortby": "password"}, "cannot sort"),
    ({"direction": "up"}, "direction"),
    ({"time[gt]": "yesterday"}, "ISO 8601"),
])
async def test_bad_filters_are_400(fulmen, params, detail):
    client = await fulmen.start()
    bob = await fulmen.wallet("bob")
    r = await client.get("/api/v1/payments", headers=bob.read_headers, params=params)
    assert r.status_code == 400 and detail in r.json()["detail"]


async def test_csv_export(wallet_with_history):
    f, _, bob = wallet_with_history
    r = await f.client.get("/api/v1/payments/export.csv", headers=bob.read_headers, params={"status": "success"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 6 and {row["status"] for row in rows} == {"success"}
    assert sum(int(row["amount"]) for row in rows) == sum(10000 + i * 1000 for i in range(6))


async def test_history_chart_groups_income_and_spending(wallet_with_history):
    f, alice, bob = wallet_with_history
    r = await f.client.get("/api/v1/payments/history", headers=bob.read_headers, params={"group": "day"})
    points = r.json()
    assert sum(p["income"] for p in points) == sum(10000 + i * 1000 for i in range(6))
    assert points[-1]["balance"] == await f.balance(bob)
    r = await f.client.get("/api/v1/payments/history", headers=alice.read_headers, params={"group": "month"})
    # the admin top-up is a payment too: the chart ends at the balance
    assert r.json()[-1]["balance"] == await f.balance(alice)
    r = await f.client.get("/api/v1/payments/history", headers=alice.read_headers, params={"group": "year"})
    assert r.status_code == 400
