"""Review: who may call what, and the JSON shapes LNbits clients rely on."""

from datetime import datetime

import pytest


async def test_review_key_kind_matrix(fulmen):
    """read < invoice < admin on every core call that changes something."""
    client = await fulmen.start()
    alice = await fulmen.wallet("alice", sats=10)
    inv = await fulmen.invoice(alice, 1)
    calls = [
        ("post", "/api/v1/payments", {"out": False, "amount": 1}, "invoice"),
        ("post", "/api/v1/payments", {"out": True, "bolt11": inv["bolt11"]}, "admin"),
        ("post", "/api/v1/payments", {"bolt11": inv["bolt11"]}, "admin"),  # `out` inferred
        ("patch", "/api/v1/wallet", {"name": "x"}, "admin"),
        ("put", "/api/v1/wallet/x", None, "admin"),
        ("post", "/api/v1/wallet/rotate-keys", None, "admin"),
    ]
    keys = {"read": alice.readkey, "invoice": alice.inkey}
    rank = {"read": 0, "invoice": 1, "admin": 2}
    for method, path, body, needed in calls:
        for kind, key in keys.items():
            kwargs = {"headers": {"X-Api-Key": key}}
            if body is not None:
                kwargs["json"] = body
            r = await getattr(client, method)(path, **kwargs)
            if rank[kind] < rank[needed]:
                assert r.status_code == 403, (method, path, kind, r.text)
    assert await fulmen.balance(alice) == 10_000


async def test_review_no_wallet_key_or_account_token_opens_the_admin_api(fulmen):
    client = await fulmen.start()
    alice = await fulmen.wallet("alice", sats=1)
    for headers in (
        alice.admin_headers,
        {"Authorization": f"Bearer {alice.account_token}"},
        {"Authorization": f"Bearer {alice.adminkey}"},
        {"Authorization": "Basic " + fulmen.admin_headers["Authorization"][7:]},
    ):
        r = await client.put(
            "/users/api/v1/balance", json={"id": alice.id, "amount": 5}, headers=headers
        )
        assert r.status_code == 401, (headers, r.text)
        r = await client.get("/admin/api/v1/wallets", headers=headers)
        assert r.status_code == 401
    # the admin credential is not an account credential either
    r = await client.get("/api/v1/wallets", headers=fulmen.admin_headers)
    assert r.status_code == 401
    assert await fulmen.balance(alice) == 1000


async def test_review_wallet_keys_never_appear_outside_creation_and_rotation(fulmen):
    client = await fulmen.start()
    alice = await fulmen.wallet("alice", sats=1)
    bearer = {"Authorization": f"Bearer {alice.account_token}"}
    responses = [
        await client.get("/api/v1/wallets", headers=bearer),
        await client.get("/api/v1/wallet", headers=alice.admin_headers),
        await client.patch("/api/v1/wallet", json={"name": "a"}, headers=alice.admin_headers),
        await client.put("/api/v1/wallet/b", headers=alice.admin_headers),
        await client.get("/admin/api/v1/wallets", headers=fulmen.admin_headers),
        await client.get("/admin/api/v1/accounts", headers=fulmen.admin_headers),
    ]
    for r in responses:
        assert r.status_code == 200, r.text
        for secret in (alice.adminkey, alice.inkey, alice.readkey, alice.account_token):
            assert secret not in r.text


async def test_review_lnbits_payment_shapes(fulmen_db):
    """Fields and types an LNbits client reads from create, pay and check."""
    client = await fulmen_db.start()
    alice = await fulmen_db.wallet("alice", sats=10)
    bob = await fulmen_db.wallet("bob")
    r = await client.post(
        "/api/v1/payments",
        headers=bob.invoice_headers,
        json={"out": False, "amount": 3, "memo": "tea", "expiry": 600},
    )
    assert r.status_code == 201
    inv = r.json()
    for field in (
        "payment_hash",
        "bolt11",
        "payment_request",
        "checking_id",
        "wallet_id",
        "amount",
        "fee",
        "status",
        "memo",
        "expiry",
        "preimage",
        "webhook",
        "extra",
        "labels",
        "external_id",
        "time",
        "created_at",
        "updated_at",
        "tag",
        "extension",
        "fiat_provider",
    ):
        assert field in inv, field
    assert (
        inv["amount"] == 3000
        and inv["fee"] == 0
        and inv["status"] == "pending"
        and inv["preimage"] is None
    )
    assert inv["bolt11"] == inv["payment_request"]
    expiry, created = datetime.fromisoformat(inv["expiry"]), datetime.fromisoformat(inv["time"])
    assert 599 <= (expiry - created).total_seconds() <= 601

    r = await client.get(f"/api/v1/payments/{inv['payment_hash']}", headers=bob.read_headers)
    assert (
        r.json()["paid"] is False
        and r.json()["preimage"] is None
        and r.json()["details"]["preimage"] is None
    )

    r = await fulmen_db.pay(alice, inv["bolt11"])
    assert r.status_code == 201
    paid = r.json()
    assert paid["amount"] == -3000 and paid["fee"] == 0 and paid["status"] == "success"
    assert paid["payment_hash"] == inv["payment_hash"] and len(paid["preimage"]) == 64

    r = await client.get(f"/api/v1/payments/{inv['payment_hash']}", headers=bob.invoice_headers)
    body = r.json()
    assert (
        body["paid"] is True
        and body["status"] == "success"
        and body["preimage"] == paid["preimage"]
    )
    assert body["details"]["amount"] == 3000


@pytest.mark.parametrize(
    "extra", [{"description_hash": "cd" * 32}, {"memo": "ünïcode ⚡"}, {"expiry": 31_536_000}]
)
async def test_review_decode_answers_json_for_host_invoices(fulmen, extra):
    client = await fulmen.start()
    bob = await fulmen.wallet("bob")
    inv = await fulmen.invoice(bob, 21, **extra)
    r = await client.post(
        "/api/v1/payments/decode", json={"data": "LIGHTNING:" + inv["bolt11"].upper()}
    )
    assert r.status_code == 200, r.text
    assert r.json()["payment_hash"] == inv["payment_hash"] and r.json()["amount_msat"] == 21_000
