import bolt11
import pytest


async def test_account_creation_returns_lnbits_wallet_with_keys(fulmen_db):
    client = await fulmen_db.start()
    r = await client.post("/api/v1/account", json={"name": "alice"})
    assert r.status_code == 201
    data = r.json()
    for field in ("id", "user", "adminkey", "inkey", "name", "balance_msat", "currency"):
        assert field in data
    assert data["name"] == "alice" and data["balance_msat"] == 0
    assert len({data["adminkey"], data["inkey"], data["readkey"]}) == 3


async def test_keys_are_stored_only_as_hashes(fulmen_db):
    await fulmen_db.start()
    alice = await fulmen_db.wallet("alice")
    from fulmen.db import query

    rows = await query("SELECT key_hash FROM fulmen_api_key")
    stored = {r["key_hash"] for r in rows}
    assert alice.adminkey not in stored and alice.inkey not in stored
    assert len(stored) == 3


async def test_wallet_info_and_key_kinds(fulmen):
    client = await fulmen.start()
    alice = await fulmen.wallet("alice", sats=5)
    for headers in (alice.admin_headers, alice.invoice_headers, alice.read_headers):
        r = await client.get("/api/v1/wallet", headers=headers)
        assert r.json() == {"id": alice.id, "name": "alice", "balance": 5000, "currency": None}
    r = await client.get("/api/v1/wallet", params={"api-key": alice.inkey})
    assert r.status_code == 200


async def test_unknown_key_is_401_and_wrong_kind_is_403(fulmen):
    client = await fulmen.start()
    alice = await fulmen.wallet("alice", sats=10)
    r = await client.get("/api/v1/wallet", headers={"X-Api-Key": "nope"})
    assert r.status_code == 401 and "API key" in r.json()["detail"]
    r = await client.get("/api/v1/wallet")
    assert r.status_code == 401
    # read-only key cannot create an invoice
    r = await client.post("/api/v1/payments", headers=alice.read_headers, json={"out": False, "amount": 1})
    assert r.status_code == 403 and "invoice key" in r.json()["detail"]
    # invoice key cannot pay
    inv = await fulmen.invoice(alice, 1)
    r = await client.post("/api/v1/payments", headers=alice.invoice_headers,
                          json={"out": True, "bolt11": inv["bolt11"]})
    assert r.status_code == 403 and "admin key" in r.json()["detail"]
    # invoice key cannot rename
    r = await client.put("/api/v1/wallet/new", headers=alice.invoice_headers)
    assert r.status_code == 403


async def test_account_holds_many_wallets(fulmen):
    client = await fulmen.start()
    alice = await fulmen.wallet("alice")
    bearer = {"Authorization": f"Bearer {alice.account_token}"}
    r = await client.post("/api/v1/wallet", json={"name": "savings"}, headers=bearer)
    assert r.status_code == 201
    second = r.json()
    r = await client.get("/api/v1/wallets", headers=bearer)
    assert [w["name"] for w in r.json()] == ["alice", "savings"]
    assert "adminkey" not in r.json()[0]  # keys are shown once, at creation
    r = await client.get("/api/v1/wallets", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    # rename and update
    r = await client.put("/api/v1/wallet/spending", headers={"X-Api-Key": second["adminkey"]})
    assert r.json()["name"] == "spending"
    r = await client.patch("/api/v1/wallet", json={"currency": "EUR"},
                           headers={"X-Api-Key": second["adminkey"]})
    assert r.json()["currency"] == "EUR"
    # delete when empty; refuse when funded
    await fulmen.fund(alice, 1)
    r = await client.delete(f"/api/v1/wallet/{alice.id}", headers=bearer)
    assert r.status_code == 409 and "funds" in r.json()["detail"]
    r = await client.delete(f"/api/v1/wallet/{second['id']}", headers=bearer)
    assert r.status_code == 200
    r = await client.get("/api/v1/wallet", headers={"X-Api-Key": second["adminkey"]})
    assert r.status_code == 401
    # another account cannot delete alice's wallet
    bob = await fulmen.wallet("bob")
    r = await client.delete(f"/api/v1/wallet/{alice.id}",
                            headers={"Authorization": f"Bearer {bob.account_token}"})
    assert r.status_code == 404


async def test_key_rotation_stops_old_keys_at_once(fulmen):
    client = await fulmen.start()
    alice = await fulmen.wallet("alice", sats=3)
    r = await client.post("/api/v1/wallet/rotate-keys", headers=alice.admin_headers)
    assert r.status_code == 200
    new = r.json()
    for old in (alice.adminkey, alice.inkey, alice.readkey):
        assert (await client.get("/api/v1/wallet", headers={"X-Api-Key": old})).status_code == 401
    r = await client.get("/api/v1/wallet", headers={"X-Api-Key": new["inkey"]})
    assert r.json()["balance"] == 3000


async def test_signup_can_be_switched_off(fulmen):
    client = await fulmen.start(allow_signup=False)
    r = await client.post("/api/v1/account", json={"name": "x"})
    assert r.status_code == 403
    r = await client.post("/admin/api/v1/accounts", json={"name": "x"}, headers=fulmen.admin_headers)
    assert r.status_code == 201


async def test_health_ready_and_lnbits_health(fulmen):
    client = await fulmen.start()
    assert (await client.get("/health")).json() == {"status": "ok"}
    r = await client.get("/ready")
    assert r.status_code == 200 and r.json()["checks"]["database"] == "ok"
    r = await client.get("/api/v1/health")
    assert set(r.json()) == {"server_time", "up_time"}


async def test_ready_is_503_when_redis_is_configured_but_down(fulmen):
    client = await fulmen.start(redis_url="redis://127.0.0.1:1/0")
    r = await client.get("/ready")
    assert r.status_code == 503 and r.json()["checks"]["redis"].startswith("error")


async def test_fake_wallet_invoice_is_real_signed_bolt11(fulmen):
    await fulmen.start()
    alice = await fulmen.wallet("alice")
    inv = await fulmen.invoice(alice, 21, memo="coffee")
    decoded = bolt11.decode(inv["bolt11"])
    assert decoded.amount_msat == 21000 and decoded.description == "coffee"
    assert decoded.payment_hash == inv["payment_hash"]
    node_pubkey = fulmen.host.funding.pubkey
    assert decoded.signature.verify(node_pubkey)
    assert inv["preimage"] is None  # never before payment
    assert inv["payment_request"] == inv["bolt11"]


async def test_node_key_persists_across_restarts(tmp_path):
    from fulmen.funding.fake import load_or_create_node_key

    a = load_or_create_node_key(tmp_path)
    b = load_or_create_node_key(tmp_path)
    assert a == b and len(a) == 64
    assert oct((tmp_path / "node_key").stat().st_mode & 0o777) == "0o600"


async def test_admin_key_file_is_0600_and_env_overrides(tmp_path):
    from fulmen.host import load_admin_key
    from fulmen.settings import Settings

    key, created = load_admin_key(Settings(data_dir=tmp_path))
    assert created and oct((tmp_path / "admin_key").stat().st_mode & 0o777) == "0o600"
    assert load_admin_key(Settings(data_dir=tmp_path)) == (key, False)
    assert load_admin_key(Settings(data_dir=tmp_path, admin_key="given"))[0] == "given"


@pytest.mark.parametrize("path", ["/admin/api/v1/wallets", "/admin/api/v1/audit"])
async def test_admin_api_needs_admin_bearer(fulmen, path):
    client = await fulmen.start()
    assert (await client.get(path)).status_code == 401
    assert (await client.get(path, headers={"Authorization": "Bearer wrong"})).status_code == 401
    assert (await client.get(path, headers=fulmen.admin_headers)).status_code == 200


async def test_status_needs_account_credential(fulmen):
    client = await fulmen.start()
    alice = await fulmen.wallet("alice")
    r = await client.get("/api/v1/status", headers={"Authorization": f"Bearer {alice.account_token}"})
    assert r.status_code == 200 and r.json()["version"]
    assert (await client.get("/api/v1/status")).status_code == 401


async def test_web_page_and_qr_code(fulmen):
    client = await fulmen.start()
    r = await client.get("/")
    assert r.status_code == 200 and "Fulmen" in r.text and "Create an account" in r.text
    assert (await client.get("/static/fulmen.css")).status_code == 200
    assert (await client.get("/static/htmx.min.js")).status_code == 200
    r = await client.get("/api/v1/qrcode/lnbc1test")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in r.content


async def test_metrics_count_settled_payments(fulmen):
    client = await fulmen.start()

    def value(text, direction):
        wanted = (f'direction="{direction}"', 'status="success"')
        for line in text.splitlines():
            if line.startswith("fulmen_payments_total{") and all(w in line for w in wanted):
                return float(line.split()[-1])
        return 0.0

    before = (await client.get("/metrics")).text
    alice = await fulmen.wallet("alice", sats=10)
    bob = await fulmen.wallet("bob")
    await fulmen.pay(alice, (await fulmen.invoice(bob, 1))["bolt11"])
    await fulmen.drain()
    after = (await client.get("/metrics")).text
    assert value(after, "in") == value(before, "in") + 1
    assert value(after, "out") == value(before, "out") + 1


def test_processes_starting_together_agree_on_one_secret(tmp_path):
    """Several processes on one data folder create the key at the same moment:
    all get the same value, none fails, and the file is complete and 0600."""
    from concurrent.futures import ThreadPoolExecutor
    from itertools import count

    from fulmen.secret_files import read_or_create_secret

    path = tmp_path / "data" / "node_key"
    numbers = count()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: read_or_create_secret(path, lambda: f"key-{next(numbers)}"),
                                range(32)))
    values = {value for value, _ in results}
    assert len(values) == 1 and path.read_text() == values.pop()
    assert sum(created for _, created in results) == 1
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in path.parent.iterdir()] == ["node_key"]  # no temporary files left
