"""lndhub: the flows BTCPay Server and BlueWallet run against the LndHub API,
every field type they parse, tokens, the invoice login, and refusals in
LndHub's error format."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from typing import Any

import bolt11
import httpx
import pytest
from fulmen import query
from fulmen.funding import FundingError, PaymentState, PaymentStatus
from fulmen.funding.fake import FakeWallet

BASE = "/lndhub/ext"


class PayingNode(FakeWallet):
    """FakeWallet that pays invoices from elsewhere with a routing fee (or fails)."""

    def __init__(self, fee_msat: int = 1_500) -> None:
        super().__init__("22" * 32)
        self.fee_msat = fee_msat
        self.fail_with: str | None = None
        self.down = False

    async def create_invoice(self, amount_msat: int, memo: str, description_hash: bytes | None,
                             expiry: int) -> Any:
        if self.down:
            raise FundingError("the node is down")
        return await super().create_invoice(amount_msat, memo, description_hash, expiry)

    async def pay_invoice(self, bolt11: str, fee_limit_msat: int) -> PaymentStatus:
        if self.fail_with:
            return PaymentStatus(PaymentState.FAILED, error=self.fail_with)
        return PaymentStatus(PaymentState.SUCCESS, fee_msat=self.fee_msat, preimage="ab" * 32)


async def elsewhere(sats: int, memo: str = "payout") -> str:
    """An invoice from another node."""
    return (await FakeWallet("33" * 32).create_invoice(sats * 1000, memo, None, 600)).bolt11


def from_buffer(value: Any) -> str:
    """Read a node-style Buffer as BTCPay Server does (it refuses anything else)."""
    assert isinstance(value, dict) and value["type"] == "Buffer", value
    assert all(isinstance(b, int) and 0 <= b <= 255 for b in value["data"])
    return bytes(value["data"]).hex()


def assert_error(r: httpx.Response, code: int) -> dict[str, Any]:
    assert r.status_code >= 400, (r.status_code, r.text)
    # BTCPay Server tells errors by the body's first bytes
    assert r.text.startswith('{"error":true,'), r.text
    body = r.json()
    assert body["code"] == code and isinstance(body["message"], str) and body["message"], body
    return body


class Hub:
    """An LndHub client: logs in, keeps the access token, sends it as BlueWallet does."""

    def __init__(self, client: httpx.AsyncClient, login: str, password: str) -> None:
        self.client, self.login, self.password = client, login, password
        self.access = self.refresh = ""

    async def auth(self) -> dict[str, Any]:
        r = await self.client.post(f"{BASE}/auth?type=auth",
                                   json={"login": self.login, "password": self.password})
        assert r.status_code == 200, r.text
        body = r.json()
        self.access, self.refresh = body["access_token"], body["refresh_token"]
        return body

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(f"{BASE}/{path}", headers=self.headers, params=params)

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(f"{BASE}/{path}", headers=self.headers, json=body)


async def start(fulmen: Any, node: FakeWallet | None = None) -> httpx.AsyncClient:
    return await fulmen.start(plugins=["lndhub"], funding=node)


def check_user_invoice(inv: dict[str, Any]) -> None:
    for name in ("amt", "timestamp", "expire_time", "add_index"):
        assert type(inv[name]) is int, (name, inv[name])
    assert type(inv["ispaid"]) is bool
    assert inv["type"] == "user_invoice"
    assert from_buffer(inv["r_hash"]) == inv["payment_hash"]
    assert inv["pay_req"] == inv["payment_request"]
    assert isinstance(inv["description"], str)


# --- BTCPay Server ------------------------------------------------------------------------


async def test_btcpay_flow_invoice_paid_then_payout(fulmen_db):
    """Log in (BTCPay posts to `auth` without `type`), getinfo, create an
    invoice with a description hash, poll getuserinvoices until it is paid,
    then pay a payout to another node and read its fee and preimage."""
    node = PayingNode(fee_msat=1_500)
    client = await start(fulmen_db, node)
    shop = await fulmen_db.wallet("shop")
    customer = await fulmen_db.wallet("customer", sats=10_000)

    r = await client.post(f"{BASE}/auth", json={"login": "admin", "password": shop.adminkey})
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert tokens["access_token"] not in (shop.adminkey, tokens["refresh_token"])
    assert type(tokens["expires_in"]) is int and tokens["expires_in"] > 0
    assert type(tokens["expires_at"]) is int
    hub = Hub(client, "admin", shop.adminkey)
    hub.access = tokens["access_token"]

    info = (await hub.get("getinfo")).json()
    assert isinstance(info["uris"], list) and type(info["block_height"]) is int
    assert type(info["num_peers"]) is int and type(info["num_active_channels"]) is int

    metadata = '[["text/plain","LNURL-pay through BTCPay"]]'
    dhash = hashlib.sha256(metadata.encode()).hexdigest()
    r = await hub.post("addinvoice", {"amt": 2100, "memo": "order 42", "description_hash": dhash})
    assert r.status_code == 200, r.text
    added = r.json()
    assert from_buffer(added["r_hash"]) == added["payment_hash"]
    assert type(added["add_index"]) is int
    decoded = bolt11.decode(added["payment_request"])
    assert decoded.description_hash == dhash and decoded.amount_msat == 2_100_000

    invoices = (await hub.get("getuserinvoices")).json()
    mine = [i for i in invoices if i["payment_hash"] == added["payment_hash"]]
    assert len(mine) == 1 and mine[0]["ispaid"] is False
    check_user_invoice(mine[0])
    assert mine[0]["amt"] == 2100 and mine[0]["expire_time"] == 3600

    assert (await fulmen_db.pay(customer, added["payment_request"])).status_code == 201
    invoices = (await hub.get("getuserinvoices")).json()
    paid = next(i for i in invoices if i["payment_hash"] == added["payment_hash"])
    assert paid["ispaid"] is True
    assert (await hub.get(f"checkpayment/{added['payment_hash']}")).json() == {"paid": True}
    assert (await hub.get("balance")).json() == {"BTC": {"AvailableBalance": 2100}}

    # the payout: 1,000 sat to another node, 1.5 sat routing fee
    payout = await elsewhere(1000)
    r = await hub.post("payinvoice", {"invoice": payout})
    assert r.status_code == 200, r.text
    paid_out = r.json()
    assert paid_out["payment_error"] == ""
    assert from_buffer(paid_out["payment_preimage"]) == "ab" * 32
    assert from_buffer(paid_out["payment_hash"]) == bolt11.decode(payout).payment_hash
    route = paid_out["payment_route"]
    assert route["total_fees"] == 2 and route["total_fees_msat"] == 1_500  # sats round up
    assert route["total_amt"] == 1002 and route["total_amt_msat"] == 1_001_500
    for name in ("total_fees", "total_amt", "total_fees_msat", "total_amt_msat"):
        assert type(route[name]) is int
    assert paid_out["decoded"]["num_satoshis"] == 1000
    assert type(paid_out["decoded"]["num_satoshis"]) is int
    assert await fulmen_db.balance(shop) == 2_100_000 - 1_001_500

    txs = (await hub.get("gettxs")).json()
    assert len(txs) == 1
    tx = txs[0]
    assert tx["type"] == "paid_invoice" and tx["value"] == 1002 and tx["fee"] == 2
    assert type(tx["value"]) is int and type(tx["fee"]) is int and type(tx["timestamp"]) is int
    assert from_buffer(tx["payment_hash"]) == bolt11.decode(payout).payment_hash
    assert tx["payment_preimage"] == "ab" * 32


async def test_failed_payout_is_an_error_and_nothing_is_debited(fulmen_db):
    node = PayingNode()
    node.fail_with = "no route to the destination"
    client = await start(fulmen_db, node)
    shop = await fulmen_db.wallet("shop", sats=5_000)
    hub = Hub(client, "admin", shop.adminkey)
    await hub.auth()

    body = assert_error(await hub.post("payinvoice", {"invoice": await elsewhere(1000)}), 10)
    assert "no route" in body["message"]
    assert await fulmen_db.balance(shop) == 5_000_000
    assert (await hub.get("gettxs")).json() == []

    # more than the balance: code 2, nothing debited
    assert_error(await hub.post("payinvoice", {"invoice": await elsewhere(9_000)}), 2)
    # not an invoice: code 4
    assert_error(await hub.post("payinvoice", {"invoice": "lnbc1notaninvoice"}), 4)
    assert_error(await hub.post("payinvoice", {}), 8)
    assert await fulmen_db.balance(shop) == 5_000_000

    # the node cannot make an invoice: code 7, not a 200 and not a 500
    node.down = True
    r = await hub.post("addinvoice", {"amt": 10})
    assert r.status_code == 503 and assert_error(r, 7)


async def test_getuserinvoices_keeps_an_old_open_invoice(fulmen):
    """A merchant watching an older open invoice must still see it after many newer ones."""
    client = await start(fulmen)
    shop = await fulmen.wallet("shop")
    hub = Hub(client, "invoice", shop.inkey)
    await hub.auth()
    first = (await hub.post("addinvoice", {"amt": "5", "memo": "the old one"})).json()
    for i in range(12):
        inv = (await hub.post("addinvoice", {"amt": 1, "memo": f"n{i}"})).json()
        # settled long ago: no longer "recently paid"
        await query("UPDATE fulmen_payment SET status = 'success', updated_at = 0 "
                    "WHERE payment_hash = {}", inv["payment_hash"])
    page = (await hub.get("getuserinvoices", limit=3)).json()
    hashes = [i["payment_hash"] for i in page]
    assert first["payment_hash"] in hashes  # open, so always there
    assert len(page) == 4
    older = (await hub.get("getuserinvoices", limit=3, offset=3)).json()
    assert {i["payment_hash"] for i in older} - set(hashes)
    assert_error(await hub.get("getuserinvoices", limit="-1"), 8)


# --- BlueWallet ---------------------------------------------------------------------------


async def test_bluewallet_flow_auth_refresh_balance_pay_transactions(fulmen_db):
    client = await start(fulmen_db)
    alice = await fulmen_db.wallet("alice", sats=3_000)
    bob = await fulmen_db.wallet("bob")
    hub = Hub(client, "admin", alice.adminkey)
    first = await hub.auth()

    r = await client.post(f"{BASE}/auth?type=refresh_token",
                          json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200, r.text
    renewed = r.json()
    assert renewed["access_token"] != first["access_token"]
    hub.access = renewed["access_token"]
    # a refresh token is used once
    assert_error(await client.post(f"{BASE}/auth?type=refresh_token",
                                   json={"refresh_token": first["refresh_token"]}), 1)

    # two refreshes racing with one token: exactly one gets a new pair
    pair = await Hub(client, "admin", alice.adminkey).auth()
    racing = await asyncio.gather(*(client.post(f"{BASE}/auth?type=refresh_token",
                                                json={"refresh_token": pair["refresh_token"]})
                                    for _ in range(4)))
    assert sorted(r.status_code for r in racing) == [200, 401, 401, 401]

    balance = (await hub.get("balance")).json()
    assert balance == {"BTC": {"AvailableBalance": 3000}}

    invoice = await fulmen_db.invoice(bob, 700, "coffee")
    decoded = (await hub.get("decodeinvoice", invoice=invoice["bolt11"])).json()
    assert decoded["num_satoshis"] == 700 and type(decoded["num_satoshis"]) is int
    assert decoded["payment_hash"] == invoice["payment_hash"] and decoded["description"] == "coffee"
    assert type(decoded["timestamp"]) is int and type(decoded["expiry"]) is int

    r = await hub.post("payinvoice", {"invoice": invoice["bolt11"]})
    assert r.status_code == 200, r.text
    assert r.json()["payment_route"]["total_fees"] == 0
    assert from_buffer(r.json()["payment_preimage"])  # internal payments have one too
    assert (await hub.get("balance")).json()["BTC"]["AvailableBalance"] == 2300
    txs = (await hub.get("gettxs")).json()
    assert [(t["value"], t["fee"], t["memo"]) for t in txs] == [(700, 0, "coffee")]
    assert (await hub.get("getpending")).json() == []
    # paying it twice is refused, not answered as paid
    body = assert_error(await hub.post("payinvoice", {"invoice": invoice["bolt11"]}), 4)
    assert "already paid" in body["message"]
    assert (await hub.get("balance")).json()["BTC"]["AvailableBalance"] == 2300


# --- logins and tokens --------------------------------------------------------------------


async def test_logins_and_tokens(fulmen_db):
    client = await start(fulmen_db)
    w = await fulmen_db.wallet("w", sats=100)
    other = await fulmen_db.wallet("other")

    async def login(name: str, password: str) -> httpx.Response:
        return await client.post(f"{BASE}/auth?type=auth", json={"login": name, "password": password})

    assert_error(await login("admin", w.inkey), 1)      # admin needs the admin key
    assert_error(await login("admin", "nope"), 1)
    assert_error(await login("invoice", w.readkey), 1)  # the read key opens nothing here
    assert_error(await login("root", w.adminkey), 1)
    assert_error(await client.post(f"{BASE}/auth", json={"login": "admin"}), 8)
    assert_error(await client.post(f"{BASE}/auth", content=b"{not json"), 8)
    assert_error(await client.post(f"{BASE}/auth?type=magic", json={}), 8)
    assert (await login("invoice", w.adminkey)).status_code == 200

    # the invoice login reads and receives, but cannot pay
    hub = Hub(client, "invoice", w.inkey)
    body = await hub.auth()
    row = await query("SELECT * FROM lndhub_token WHERE token_hash = {}",
                      hashlib.sha256(body["access_token"].encode()).hexdigest())
    assert row and body["access_token"] not in str(row[0]) and w.inkey not in str(row[0])
    assert (await hub.get("balance")).status_code == 200
    assert (await hub.post("addinvoice", {"amt": 10})).status_code == 200
    bolt = (await fulmen_db.invoice(other, 5))["bolt11"]
    assert_error(await hub.post("payinvoice", {"invoice": bolt}), 1)
    assert await fulmen_db.balance(w) == 100_000

    # no token, a bad one, an expired one: code 1
    assert_error(await client.get(f"{BASE}/balance"), 1)
    assert_error(await client.get(f"{BASE}/balance", headers={"Authorization": "Bearer x"}), 1)
    await query("UPDATE lndhub_token SET expires_at = 0 WHERE token_hash = {}",
                hashlib.sha256(hub.access.encode()).hexdigest())
    assert_error(await hub.get("balance"), 1)

    # rotating the wallet's keys ends its tokens
    admin_hub = Hub(client, "admin", w.adminkey)
    await admin_hub.auth()
    assert (await admin_hub.get("balance")).status_code == 200
    await fulmen_db.host.wallets.rotate_keys(w.id)
    assert_error(await admin_hub.get("balance"), 1)
    assert_error(await client.post(f"{BASE}/auth?type=refresh_token",
                                   json={"refresh_token": admin_hub.refresh}), 1)


async def test_bad_input_is_a_4xx_lndhub_error(fulmen_db):
    client = await start(fulmen_db)
    w = await fulmen_db.wallet("w", sats=100)
    hub = Hub(client, "admin", w.adminkey)
    await hub.auth()
    for body in ({"amt": -1}, {"amt": "ten"}, {"amt": 0}, {}, {"amt": True}, {"amt": 1.5},
                 {"amt": 10, "description_hash": "zz"}, {"amt": 10, "memo": 5},
                 {"amt": 10, "expiry": "0"}, {"amt": 10**20}):
        assert_error(await hub.post("addinvoice", body), 8)
    assert_error(await client.post(f"{BASE}/addinvoice", headers=hub.headers, content=b"[1]"), 8)
    assert_error(await hub.get("decodeinvoice"), 8)
    assert_error(await hub.get("decodeinvoice", invoice="lnbcnonsense"), 4)
    assert_error(await hub.get("checkpayment/xyz"), 8)
    assert_error(await hub.get("checkpayment/" + "00" * 32), 8)
    assert_error(await hub.get("gettxs", limit="a"), 8)
    assert_error(await hub.get("getbtc"), 6)
    # form-encoded bodies work too
    r = await client.post(f"{BASE}/addinvoice", headers=hub.headers, data={"amt": "3", "memo": "f"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("login", ["admin", "invoice"])
async def test_description_hash_and_memo_kept(fulmen, login):
    client = await start(fulmen)
    w = await fulmen.wallet("w")
    hub = Hub(client, login, w.adminkey if login == "admin" else w.inkey)
    await hub.auth()
    r = await hub.post("addinvoice", {"amt": 21, "memo": "tea"})
    assert bolt11.decode(r.json()["payment_request"]).description == "tea"


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 2 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 10**30, -(10**30), rng.randrange(-5000, 5000)])
    if kind == 3:
        return rng.choice([1.5, -0.0, 1e308, float("inf"), float("nan")])
    if kind in (4, 5):
        return rng.choice(["", "abc", "10", " 7 ", "lnbc1", "00" * 32, "ünï", "²", "a" * 700,
                           "lightning:lnbc"])
    if kind == 6:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {rng.choice(["amt", "memo", "x"]): random_value(rng, depth + 1)}


async def test_random_input_never_causes_500(fulmen):
    """Random JSON bodies and query strings on every call: a 4xx LndHub error or a 200."""
    client = await start(fulmen)
    w = await fulmen.wallet("w", sats=50)
    hub = Hub(client, "admin", w.adminkey)
    await hub.auth()
    rng = random.Random(20)
    fields = ["amt", "memo", "description_hash", "expiry", "invoice", "login", "password",
              "refresh_token", "limit", "offset"]
    posts = ["auth", "auth?type=auth", "auth?type=refresh_token", "addinvoice", "payinvoice"]
    gets = ["getinfo", "balance", "gettxs", "getuserinvoices", "getpending", "decodeinvoice",
            "checkpayment/abc", "getbtc"]
    for _ in range(150):
        body = ({rng.choice(fields): random_value(rng) for _ in range(rng.randrange(4))}
                if rng.random() < 0.8 else random_value(rng))
        r = await client.post(f"{BASE}/{rng.choice(posts)}", headers=hub.headers,
                              content=json.dumps(body, allow_nan=True))
        assert r.status_code < 500, (body, r.text)
        if r.status_code >= 400:
            assert r.json()["error"] is True
        params = {rng.choice(fields): str(random_value(rng)) for _ in range(rng.randrange(3))}
        path = rng.choice(gets)
        r = await hub.get(path, **params)
        assert r.status_code < 500 or (path, r.status_code) == ("getbtc", 501), (params, r.text)
    assert await fulmen.host.wallets.audit() == []
