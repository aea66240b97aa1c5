"""nostrzaps: NIP-57 zaps on lnurlp pay links and Lightning Addresses,
against a real relay (the `nostr-relay` package), with events built and
checked by the tests' own client (coincurve's BIP-340 functions)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import stat
import time
from typing import Any
from urllib.parse import quote

import bolt11
import httpx
import lnurl
import pytest
from coincurve import PrivateKey
from fulmen import query
from fulmen.testing import ADMIN_KEY, ServerProcess
from nostr_testing import (
    Relay,
    query_relay,
    signed,
    verifies,
    wait_for_receipts,
    zap_request,
)

LINKS = "/lnurlp/api/v1/links"
#: needs the lnurlp plugin installed too (left out when nostrzaps is tested alone)
other_plugins = pytest.mark.other_plugins
ZAPS = "/nostrzaps/api/v1"
# starting a relay and hosts on a shared, busy machine takes a while
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(autouse=True)
def plain_ws(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test relay listens on loopback without TLS."""
    monkeypatch.setenv("FULMEN_NOSTRZAPS_ALLOW_PLAIN_WS", "true")
    monkeypatch.setenv("FULMEN_NOSTRZAPS_RELAY_TIMEOUT", "5")


async def zap_link(client: httpx.AsyncClient, wallet: Any, **fields: Any) -> dict[str, Any]:
    body = {"description": "Tips", "min": 1, "max": 100_000, "zaps": True, **fields}
    r = await client.post(LINKS, json=body, headers=wallet.admin_headers)
    assert r.status_code == 201, r.text
    assert r.json()["zaps"] is True
    return r.json()


async def callback(client: httpx.AsyncClient, pay: dict[str, Any], amount: int,
                   nostr: str | None) -> httpx.Response:
    url = pay["callback"] + f"?amount={amount}"
    if nostr is not None:
        url += "&nostr=" + quote(nostr, safe="")
    return await client.get(url)


def tags_of(event: dict[str, Any], name: str) -> list[list[str]]:
    return [t for t in event["tags"] if t[0] == name]


async def payment_rows(wallet_id: str) -> int:
    rows = await query("SELECT COUNT(*) AS n FROM fulmen_payment WHERE wallet_id = {}", wallet_id)
    return int(rows[0]["n"])


def check_receipt(receipt: dict[str, Any], request_raw: str, server_pubkey: str, pr: str,
                  payment_hash: str, recipient: str, event_id: str | None,
                  address: str | None) -> None:
    request = json.loads(request_raw)
    assert verifies(receipt), "receipt id or BIP-340 signature does not verify"
    assert receipt["kind"] == 9735 and receipt["pubkey"] == server_pubkey
    assert receipt["content"] == ""
    assert tags_of(receipt, "p") == [["p", recipient]]
    assert tags_of(receipt, "e") == ([["e", event_id]] if event_id else [])
    assert tags_of(receipt, "a") == ([["a", address]] if address else [])
    assert tags_of(receipt, "P") == [["P", request["pubkey"]]]
    assert tags_of(receipt, "bolt11") == [["bolt11", pr]]
    assert tags_of(receipt, "description") == [["description", request_raw]]
    [[_, preimage]] = tags_of(receipt, "preimage")
    assert hashlib.sha256(bytes.fromhex(preimage)).hexdigest() == payment_hash
    # The invoice commits to the zap request exactly as sent.
    assert bolt11.decode(pr).description_hash == hashlib.sha256(request_raw.encode()).hexdigest()


# --- end to end -----------------------------------------------------------------------------


@other_plugins
async def test_zap_a_pay_link_end_to_end(fulmen_db, relay):
    client = await fulmen_db.start(plugins=["lnurlp", "nostrzaps"])
    creator = await fulmen_db.wallet("creator")
    fan = await fulmen_db.wallet("fan", sats=1000)
    link = await zap_link(client, creator)

    pay = (await client.get(f"/lnurlp/{link['id']}")).json()
    assert pay["allowsNostr"] is True
    server_pubkey = (await client.get(f"{ZAPS}/pubkey")).json()["pubkey"]
    assert pay["nostrPubkey"] == server_pubkey and len(server_pubkey) == 64

    fan_key, recipient = PrivateKey(), PrivateKey().public_key_xonly.format().hex()
    note = secrets.token_hex(32)
    request = zap_request(fan_key, recipient, [relay.url], 21_000, lnurl=link["lnurl"],
                          event_id=note, content="Great post!")
    raw = json.dumps(request)
    r = await callback(client, pay, 21_000, raw)
    assert r.status_code == 200, r.text
    pr = r.json()["pr"]
    payment_hash = bolt11.decode(pr).payment_hash

    started = time.monotonic()
    assert (await fulmen_db.pay(fan, pr)).status_code == 201
    await fulmen_db.drain()

    [receipt] = await wait_for_receipts(relay.url, {"kinds": [9735], "#p": [recipient]})
    print(f"receipt on the relay {time.monotonic() - started:.2f} s after the payment request")
    check_receipt(receipt, raw, server_pubkey, pr, payment_hash, recipient, note, None)
    paid = await query("SELECT updated_at FROM fulmen_payment WHERE payment_hash = {} AND out = {}",
                       payment_hash, False)
    assert receipt["created_at"] == int(paid[0]["updated_at"]) // 1000

    zaps = (await client.get(f"{ZAPS}/zaps", headers=creator.read_headers)).json()
    assert len(zaps) == 1
    zap = zaps[0]
    assert zap["sender"] == request["pubkey"] and zap["amount"] == 21_000
    assert zap["content"] == "Great post!" and zap["receipt_id"] == receipt["id"]
    assert [(d["relay"], d["status"]) for d in zap["relays"]] == [(relay.url, "ok")]
    # the fan's wallet sees no zaps of its own; another wallet's key cannot read them
    assert (await client.get(f"{ZAPS}/zaps", headers=fan.read_headers)).json() == []


@other_plugins
async def test_zap_a_lightning_address(fulmen, relay):
    client = await fulmen.start(plugins=["lnurlp", "nostrzaps"])
    creator = await fulmen.wallet("creator")
    fan = await fulmen.wallet("fan", sats=1000)
    await zap_link(client, creator, username="satoshi")

    pay = (await client.get("/.well-known/lnurlp/satoshi")).json()
    assert pay["allowsNostr"] is True and len(pay["nostrPubkey"]) == 64
    address_lnurl = lnurl.url_encode("http://testserver.local/.well-known/lnurlp/satoshi")
    fan_key, recipient = PrivateKey(), PrivateKey().public_key_xonly.format().hex()
    address = f"30023:{recipient}:my-article"
    request = zap_request(fan_key, recipient, [relay.url], 5_000, lnurl=address_lnurl.lower(),
                          address=address, content="")
    raw = json.dumps(request, separators=(",", ":"))
    r = await callback(client, pay, 5_000, raw)
    assert r.status_code == 200, r.text
    pr = r.json()["pr"]
    assert (await fulmen.pay(fan, pr)).status_code == 201
    await fulmen.drain()

    [receipt] = await wait_for_receipts(relay.url, {"kinds": [9735], "#p": [recipient]})
    check_receipt(receipt, raw, pay["nostrPubkey"], pr, bolt11.decode(pr).payment_hash,
                  recipient, None, address)


# --- Appendix D: every rule refused -----------------------------------------------------------


def tampered_sig(e: dict[str, Any]) -> dict[str, Any]:
    other = signed(PrivateKey(), 9734, e["tags"], e["content"], e["created_at"])
    return {**e, "sig": other["sig"]}


def resigned(key: PrivateKey, e: dict[str, Any], **changes: Any) -> dict[str, Any]:
    fields = {"tags": e["tags"], "content": e["content"], "created_at": e["created_at"],
              "kind": 9734, **changes}
    return signed(key, fields["kind"], fields["tags"], fields["content"], fields["created_at"])


REFUSALS = {
    "bad signature": (lambda k, e: tampered_sig(e), "signature"),
    "id not the hash": (lambda k, e: {**e, "content": "changed after signing"}, "id is not"),
    "wrong kind": (lambda k, e: resigned(k, e, kind=1), "kind must be 9734"),
    "no p tag": (lambda k, e: resigned(k, e, tags=[t for t in e["tags"] if t[0] != "p"]),
                 "exactly one p tag"),
    "two p tags": (lambda k, e: resigned(k, e, tags=e["tags"] + [["p", "b" * 64]]),
                   "exactly one p tag"),
    "two e tags": (lambda k, e: resigned(k, e, tags=e["tags"] + [["e", "c" * 64], ["e", "d" * 64]]),
                   "at most one e tag"),
    "no relays tag": (lambda k, e: resigned(k, e, tags=[t for t in e["tags"] if t[0] != "relays"]),
                      "relays tag"),
    "amount differs": (lambda k, e: resigned(
        k, e, tags=[t if t[0] != "amount" else ["amount", "999"] for t in e["tags"]]),
        "amount tag"),
    "other lnurl": (lambda k, e: resigned(
        k, e, tags=e["tags"] + [["lnurl", lnurl.url_encode("https://other.example/x").lower()]]),
        "lnurl tag"),
    "bad a tag": (lambda k, e: resigned(k, e, tags=e["tags"] + [["a", "not-an-address"]]),
                  "a tag"),
    "not json": (lambda k, e: "{not json", "not JSON"),
    "not an event": (lambda k, e: [1, 2], "JSON object"),
}


@other_plugins
@pytest.mark.parametrize("case", sorted(REFUSALS))
async def test_appendix_d_refusals(fulmen, case):
    client = await fulmen.start(plugins=["lnurlp", "nostrzaps"])
    creator = await fulmen.wallet("creator")
    link = await zap_link(client, creator)
    pay = (await client.get(f"/lnurlp/{link['id']}")).json()
    key = PrivateKey()
    good = zap_request(key, "a" * 64, ["wss://relay.example.com"], 2_000)
    change, reason = REFUSALS[case]
    bad = change(key, good)
    raw = bad if isinstance(bad, str) else json.dumps(bad)
    r = await callback(client, pay, 2_000, raw)
    assert r.status_code == 400, r.text
    assert r.json()["status"] == "ERROR"
    assert reason in r.json()["reason"] and "invalid zap request" in r.json()["reason"]
    assert await payment_rows(creator.id) == 0
    # the unchanged request is accepted on the same link
    ok = await callback(client, pay, 2_000, json.dumps(good))
    assert ok.status_code == 200, ok.text
    assert await payment_rows(creator.id) == 1


# --- delivery -------------------------------------------------------------------------------


@other_plugins
@pytest.mark.timeout(300)
async def test_a_relay_that_is_down_gets_the_receipt_when_it_is_back_after_a_restart(fulmen, relay_installed,
                                                                      tmp_path):
    client = await fulmen.start(plugins=["lnurlp", "nostrzaps"])
    creator = await fulmen.wallet("creator")
    fan = await fulmen.wallet("fan", sats=1000)
    link = await zap_link(client, creator)
    pay = (await client.get(f"/lnurlp/{link['id']}")).json()
    down = Relay(tmp_path / "late-relay")  # not started yet
    recipient = PrivateKey().public_key_xonly.format().hex()
    raw = json.dumps(zap_request(PrivateKey(), recipient, [down.url], 3_000))
    pr = (await callback(client, pay, 3_000, raw)).json()["pr"]
    assert (await fulmen.pay(fan, pr)).status_code == 201
    await fulmen.drain()

    [zap] = (await client.get(f"{ZAPS}/zaps", headers=creator.read_headers)).json()
    [delivery] = zap["relays"]
    assert delivery["status"] == "pending" and delivery["attempts"] == 1
    assert delivery["message"]  # why it failed
    [hook_row] = await query("SELECT * FROM fulmen_hook_delivery WHERE plugin_id = 'nostrzaps'")
    assert hook_row["status"] == "pending" and "not reached yet" in hook_row["last_error"]

    # the host restarts meanwhile: the pending delivery is in the database, not in memory
    await fulmen.stop()
    down.start()
    try:
        client = await fulmen.start(plugins=["lnurlp", "nostrzaps"])
        # the host's retries (2 s, then doubling) publish it; nobody asks for it by hand
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 90
        while loop.time() < deadline:
            await fulmen.host.hooks.deliver_due()
            [zap] = (await client.get(f"{ZAPS}/zaps", headers=creator.read_headers)).json()
            if zap["relays"][0]["status"] == "ok":
                break
            await asyncio.sleep(0.5)
        assert zap["relays"][0]["status"] == "ok", zap
        [receipt] = await query_relay(down.url, {"kinds": [9735], "#p": [recipient]})
        assert receipt["id"] == zap["receipt_id"] and verifies(receipt)
        [hook_row] = await query("SELECT * FROM fulmen_hook_delivery WHERE plugin_id = 'nostrzaps'")
        assert hook_row["status"] == "done"
    finally:
        down.stop()


@other_plugins
async def test_non_zap_payment_and_refused_relays_and_redeliver(fulmen, relay):
    client = await fulmen.start(plugins=["lnurlp", "nostrzaps"])
    creator = await fulmen.wallet("creator")
    fan = await fulmen.wallet("fan", sats=1000)
    link = await zap_link(client, creator)
    pay = (await client.get(f"/lnurlp/{link['id']}")).json()

    # a plain LNURL payment to a zap-enabled link: no receipt
    r = await callback(client, pay, 4_000, None)
    pr = r.json()["pr"]
    assert bolt11.decode(pr).description_hash == hashlib.sha256(pay["metadata"].encode()).hexdigest()
    assert (await fulmen.pay(fan, pr)).status_code == 201
    await fulmen.drain()
    assert (await client.get(f"{ZAPS}/zaps", headers=creator.read_headers)).json() == []
    assert await query_relay(relay.url, {"kinds": [9735]}) == []

    # a zap naming an allowed relay, a wss relay on a private address refused by
    # the host's rules once they forbid private addresses, and a non-websocket URL
    recipient = PrivateKey().public_key_xonly.format().hex()
    raw = json.dumps(zap_request(PrivateKey(), recipient,
                                 [relay.url, "https://relay.example.com"], 4_000))
    pr = (await callback(client, pay, 4_000, raw)).json()["pr"]
    assert (await fulmen.pay(fan, pr)).status_code == 201
    await fulmen.drain()
    [zap] = (await client.get(f"{ZAPS}/zaps", headers=creator.read_headers)).json()
    statuses = {d["relay"]: d["status"] for d in zap["relays"]}
    assert statuses == {relay.url: "ok", "https://relay.example.com": "skipped"}

    # admin views and redeliver
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert (await client.get(f"{ZAPS}/deliveries")).status_code == 401
    assert (await client.get(f"{ZAPS}/deliveries", headers=creator.admin_headers)).status_code == 401
    skipped = (await client.get(f"{ZAPS}/deliveries?status=skipped", headers=admin)).json()
    assert [z["id"] for z in skipped] == [zap["id"]]
    assert (await client.get(f"{ZAPS}/deliveries?status=nope", headers=admin)).status_code == 400
    assert (await client.post(f"{ZAPS}/deliveries/999/redeliver", headers=admin)).status_code == 404
    again = await client.post(f"{ZAPS}/deliveries/{zap['id']}/redeliver", headers=admin)
    assert again.status_code == 200, again.text
    by_relay = {d["relay"]: d for d in again.json()["relays"]}
    assert by_relay[relay.url]["attempts"] == 1  # accepted before: not sent again
    assert by_relay["https://relay.example.com"]["status"] == "skipped"
    assert len(await query_relay(relay.url, {"kinds": [9735]})) == 1


@other_plugins
async def test_relays_follow_the_outbound_rules(fulmen, monkeypatch):
    """wss:// only unless plain ws:// is allowed; private addresses only when the host
    allows them (FULMEN_ALLOW_PRIVATE_ADDRESSES); at most FULMEN_NOSTRZAPS_MAX_RELAYS."""
    monkeypatch.setenv("FULMEN_NOSTRZAPS_ALLOW_PLAIN_WS", "false")
    monkeypatch.setenv("FULMEN_NOSTRZAPS_MAX_RELAYS", "2")
    client = await fulmen.start(plugins=["lnurlp", "nostrzaps"], allow_private_addresses=False)
    creator = await fulmen.wallet("creator")
    fan = await fulmen.wallet("fan", sats=1000)
    link = await zap_link(client, creator)
    pay = (await client.get(f"/lnurlp/{link['id']}")).json()
    relays = ["ws://relay.example.com", "wss://10.1.2.3/", "wss://relay.example.org"]
    raw = json.dumps(zap_request(PrivateKey(), "a" * 64, relays, 1_000))
    pr = (await callback(client, pay, 1_000, raw)).json()["pr"]
    assert (await fulmen.pay(fan, pr)).status_code == 201
    await fulmen.drain()
    [zap] = (await client.get(f"{ZAPS}/zaps", headers=creator.read_headers)).json()
    by_relay = {d["relay"]: d for d in zap["relays"]}
    assert by_relay["ws://relay.example.com"]["status"] == "skipped"
    assert "wss://" in by_relay["ws://relay.example.com"]["message"]
    assert by_relay["wss://10.1.2.3/"]["status"] == "skipped"
    assert "internal address" in by_relay["wss://10.1.2.3/"]["message"]
    assert by_relay["wss://relay.example.org"]["status"] == "skipped"
    assert "more than 2 relays" in by_relay["wss://relay.example.org"]["message"]
    assert all(d["attempts"] == 0 for d in zap["relays"])  # nothing was sent anywhere


@other_plugins
async def test_lnurlp_refuses_zaps_without_the_plugin(fulmen_db):
    client = await fulmen_db.start(plugins=["lnurlp"])
    shop = await fulmen_db.wallet("shop")
    r = await client.post(LINKS, json={"description": "x", "min": 1, "zaps": True},
                          headers=shop.admin_headers)
    assert r.status_code == 400 and "nostrzaps" in r.text
    r = await client.post(LINKS, json={"description": "x", "min": 1, "zaps": "yes"},
                          headers=shop.admin_headers)
    assert r.status_code == 400 and "zaps" in r.text
    r = await client.post(LINKS, json={"description": "x", "min": 1}, headers=shop.admin_headers)
    link = r.json()
    pay = (await client.get(f"/lnurlp/{link['id']}")).json()
    assert "allowsNostr" not in pay
    # without nostrzaps a `nostr` parameter is ignored: an ordinary invoice
    r = await callback(client, pay, 1000, json.dumps({"kind": 9734}))
    assert r.status_code == 200
    assert bolt11.decode(r.json()["pr"]).description_hash == \
        hashlib.sha256(pay["metadata"].encode()).hexdigest()
    await fulmen_db.stop()
    # with the plugin enabled the same link may turn zaps on
    client = await fulmen_db.start(plugins=["lnurlp", "nostrzaps"])
    r = await client.put(f"{LINKS}/{link['id']}", json={"zaps": True}, headers=shop.admin_headers)
    assert r.status_code == 200 and r.json()["zaps"] is True
    assert (await client.get(f"/lnurlp/{link['id']}")).json()["allowsNostr"] is True


# --- without lnurlp: keys, API, the zap request rules ---------------------------------------


async def test_server_key_is_created_once_with_mode_0600(fulmen_db):
    client = await fulmen_db.start(plugins=["nostrzaps"])
    key_file = fulmen_db.tmp_path / "data" / "nostrzaps_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    first = (await client.get(f"{ZAPS}/pubkey")).json()
    assert first["relays"] == []
    pubkey = first["pubkey"]
    assert PrivateKey(bytes.fromhex(key_file.read_text())).public_key_xonly.format().hex() == pubkey
    await fulmen_db.stop()
    client = await fulmen_db.start(plugins=["nostrzaps"])
    assert (await client.get(f"{ZAPS}/pubkey")).json()["pubkey"] == pubkey


async def test_key_from_setting_or_file(fulmen, monkeypatch, tmp_path):
    key = PrivateKey()
    monkeypatch.setenv("FULMEN_NOSTRZAPS_PRIVATE_KEY", key.secret.hex())
    monkeypatch.setenv("FULMEN_NOSTRZAPS_RELAYS", "wss://relay.example.com, wss://nos.example")
    client = await fulmen.start(plugins=["nostrzaps"])
    body = (await client.get(f"{ZAPS}/pubkey")).json()
    assert body == {"pubkey": key.public_key_xonly.format().hex(),
                    "relays": ["wss://relay.example.com", "wss://nos.example"]}
    assert not (fulmen.tmp_path / "data" / "nostrzaps_key").exists()
    await fulmen.stop()

    other = PrivateKey()
    (tmp_path / "zap.key").write_text(other.secret.hex() + "\n")
    monkeypatch.delenv("FULMEN_NOSTRZAPS_PRIVATE_KEY")
    monkeypatch.setenv("FULMEN_NOSTRZAPS_KEY_FILE", str(tmp_path / "zap.key"))
    client = await fulmen.start(plugins=["nostrzaps"])
    body = (await client.get(f"{ZAPS}/pubkey")).json()
    assert body["pubkey"] == other.public_key_xonly.format().hex()


async def test_zaps_and_deliveries_api(fulmen):
    client = await fulmen.start(plugins=["nostrzaps"])
    w = await fulmen.wallet("w")
    assert (await client.get(f"{ZAPS}/zaps")).status_code == 401
    assert (await client.get(f"{ZAPS}/zaps", headers=w.read_headers)).json() == []
    assert (await client.get(f"{ZAPS}/zaps?limit=x", headers=w.read_headers)).status_code == 400
    assert (await client.get(f"{ZAPS}/zaps?limit=0", headers=w.read_headers)).status_code == 400
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert (await client.get(f"{ZAPS}/deliveries")).status_code == 401
    assert (await client.get(f"{ZAPS}/deliveries", headers={"Authorization": "Bearer nope"})
            ).status_code == 401
    assert (await client.get(f"{ZAPS}/deliveries", headers=admin)).json() == []
    r = await client.post(f"{ZAPS}/deliveries/1/redeliver", headers=admin)
    assert r.status_code == 404 and "does not exist" in r.text
    assert (await client.post(f"{ZAPS}/deliveries/1/redeliver")).status_code == 401


async def test_a_bad_key_setting_quarantines_the_plugin(fulmen, monkeypatch):
    monkeypatch.setenv("FULMEN_NOSTRZAPS_PRIVATE_KEY", "not-a-key")
    client = await fulmen.start(plugins=["nostrzaps"])
    [info] = (await client.get("/admin/api/v1/plugins", headers=fulmen.admin_headers)).json()
    assert info["state"] == "failed"
    assert "FULMEN_NOSTRZAPS_PRIVATE_KEY" in info["last_error"]
    assert (await client.get(f"{ZAPS}/pubkey")).status_code == 404


async def test_an_invoice_claiming_a_zap_it_was_not_made_for_gets_no_receipt(fulmen):
    """`extra` is the invoice creator's to write: only requests that passed the
    callback's checks, for this wallet and amount, get a receipt."""
    client = await fulmen.start(plugins=["nostrzaps"])
    owner = await fulmen.wallet("owner")
    payer = await fulmen.wallet("payer", sats=100)
    raw = json.dumps(zap_request(PrivateKey(), "a" * 64, ["wss://relay.example.com"], 5_000))
    r = await client.post("/api/v1/payments", headers=owner.invoice_headers, json={
        "out": False, "amount": 5, "memo": "forged",
        "description_hash": hashlib.sha256(raw.encode()).hexdigest(),
        "extra": {"tag": "lnurlp", "nostrzaps": {"request": raw}}})
    assert r.status_code == 201, r.text
    assert (await fulmen.pay(payer, r.json()["bolt11"])).status_code == 201
    await fulmen.drain()
    [delivery] = await query("SELECT * FROM fulmen_hook_delivery WHERE plugin_id = 'nostrzaps'")
    assert delivery["status"] == "done"  # the hook ran, and decided against a receipt
    assert (await client.get(f"{ZAPS}/zaps", headers=owner.read_headers)).json() == []
    assert await query("SELECT * FROM nostrzaps_zap") == []


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_zap_request_rules(case):
    """The same Appendix D cases, checked by the plugin's rules directly."""
    from fulmen import BadRequest
    from fulmen_nostrzaps.nostr import check_zap_request

    key = PrivateKey()
    link_lnurl = lnurl.url_encode("https://pay.example.com/lnurlp/abc").lower()
    good = zap_request(key, "a" * 64, ["wss://relay.example.com"], 2_000, lnurl=link_lnurl,
                       event_id="e" * 64, address=f"30023:{'b' * 64}:post")
    assert check_zap_request(json.dumps(good), 2_000, [link_lnurl])["id"] == good["id"]
    change, reason = REFUSALS[case]
    bad = change(key, good)
    with pytest.raises(BadRequest) as refused:
        check_zap_request(bad if isinstance(bad, str) else json.dumps(bad), 2_000, [link_lnurl])
    assert reason in refused.value.detail


# --- several processes ------------------------------------------------------------------------


@other_plugins
@pytest.mark.timeout(600)
async def test_two_processes_on_postgres_publish_one_receipt_per_payment(
        tmp_path, postgres_url, relay):
    env = {"DATABASE_URL": postgres_url, "FULMEN_ADMIN_KEY": ADMIN_KEY,
           "FULMEN_DATA_DIR": str(tmp_path / "data"), "FULMEN_PLUGINS": "lnurlp,nostrzaps",
           "FULMEN_ALLOW_PRIVATE_ADDRESSES": "true", "FULMEN_NOSTRZAPS_ALLOW_PLAIN_WS": "true"}
    servers = []
    try:
        for i in range(2):
            log = tmp_path / f"server{i}.log"
            servers.append(ServerProcess(env, log_path=log).start(timeout=180))
        a = servers[0]
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(timeout=30) as c:
            creator = (await c.post(a.url + "/api/v1/account", json={"name": "c"})).json()
            fan = (await c.post(a.url + "/api/v1/account", json={"name": "f"})).json()
            r = await c.put(a.url + "/users/api/v1/balance", json={"id": fan["id"], "amount": 1000},
                            headers=admin)
            assert r.status_code == 200, r.text
            r = await c.post(a.url + LINKS, headers={"X-Api-Key": creator["adminkey"]},
                             json={"description": "Tips", "min": 1, "max": 1000, "zaps": True})
            assert r.status_code == 201, r.text
            link = r.json()
            keys = {(await c.get(s.url + f"{ZAPS}/pubkey")).json()["pubkey"] for s in servers}
            assert len(keys) == 1  # one data folder: one server key
            recipient = PrivateKey().public_key_xonly.format().hex()
            paid = []
            for i in range(6):
                server = servers[i % 2]
                pay = (await c.get(server.url + f"/lnurlp/{link['id']}")).json()
                raw = json.dumps(zap_request(PrivateKey(), recipient, [relay.url], 1000 + i))
                r = await c.get(pay["callback"], params={"amount": 1000 + i, "nostr": raw})
                assert r.status_code == 200, r.text
                pr = r.json()["pr"]
                payer = servers[(i + 1) % 2]
                r = await c.post(payer.url + "/api/v1/payments", headers={"X-Api-Key": fan["adminkey"]},
                                 json={"out": True, "bolt11": pr})
                assert r.status_code == 201, r.text
                paid.append(pr)
            receipts = await wait_for_receipts(relay.url, {"kinds": [9735], "#p": [recipient]},
                                               count=len(paid), timeout=60)
            zaps = []
            for _ in range(60):
                zaps = (await c.get(a.url + f"{ZAPS}/zaps",
                                    headers={"X-Api-Key": creator["inkey"]})).json()
                if len(zaps) == len(paid) and all(z["relays"][0]["status"] == "ok" for z in zaps):
                    break
                await asyncio.sleep(0.5)
    finally:
        for s in servers:
            s.stop()
    assert sorted(tags_of(r, "bolt11")[0][1] for r in receipts) == sorted(paid)
    assert all(verifies(r) and r["pubkey"] in keys for r in receipts)
    assert len(zaps) == len(paid)
    # each receipt was made once and sent to the relay once
    assert sorted(z["receipt_id"] for z in zaps) == sorted(r["id"] for r in receipts)
    assert all(len(z["relays"]) == 1 and z["relays"][0]["attempts"] == 1 for z in zaps), zaps


# --- a key per link ---------------------------------------------------------------------------


@other_plugins
async def test_a_link_with_its_own_key(fulmen_db, relay):
    client = await fulmen_db.start(plugins=["lnurlp", "nostrzaps"])
    creator = await fulmen_db.wallet("creator")
    stranger = await fulmen_db.wallet("stranger")
    fan = await fulmen_db.wallet("fan", sats=1000)
    link = await zap_link(client, creator)
    other = await zap_link(client, creator, description="other link")
    key_path = f"{ZAPS}/links/{link['id']}/key"
    server = (await client.get(f"{ZAPS}/pubkey")).json()["pubkey"]
    r = await client.get(key_path, headers=creator.invoice_headers)
    assert r.json() == {"link": link["id"], "pubkey": server, "own_key": False}

    # refusals: another wallet's link, a missing link, bad keys, unknown fields
    assert (await client.put(key_path, json={}, headers=stranger.admin_headers)).status_code == 403
    assert (await client.put(key_path, json={}, headers=creator.invoice_headers)).status_code == 403
    r = await client.put(f"{ZAPS}/links/nope/key", json={}, headers=creator.admin_headers)
    assert r.status_code == 404
    for body, reason in (({"private_key": "xyz"}, "64 hex"), ({"private_key": "0" * 64}, "valid"),
                         ({"pubkey": "a"}, "unknown field"), ([1], "JSON object")):
        r = await client.put(key_path, json=body, headers=creator.admin_headers)
        assert r.status_code == 400 and reason in r.text, (body, r.text)

    own = PrivateKey()
    own_pub = own.public_key_xonly.format().hex()
    r = await client.put(key_path, json={"private_key": own.secret.hex()},
                         headers=creator.admin_headers)
    assert r.status_code == 200 and r.json() == {"link": link["id"], "pubkey": own_pub,
                                                  "own_key": True}
    pay = (await client.get(f"/lnurlp/{link['id']}")).json()
    assert pay["nostrPubkey"] == own_pub
    assert (await client.get(f"/lnurlp/{other['id']}")).json()["nostrPubkey"] == server

    recipient = PrivateKey().public_key_xonly.format().hex()
    raw = json.dumps(zap_request(PrivateKey(), recipient, [relay.url], 2_000))
    pr = (await callback(client, pay, 2_000, raw)).json()["pr"]
    # the key changes after the payer saw it: the receipt is still signed by the key shown
    generated = await client.put(key_path, json={}, headers=creator.admin_headers)
    assert generated.json()["own_key"] and generated.json()["pubkey"] not in (own_pub, server)
    assert (await fulmen_db.pay(fan, pr)).status_code == 201
    await fulmen_db.drain()
    [receipt] = await wait_for_receipts(relay.url, {"kinds": [9735], "#p": [recipient]})
    assert verifies(receipt) and receipt["pubkey"] == own_pub

    r = await client.delete(key_path, headers=creator.admin_headers)
    assert r.status_code == 200 and r.json()["pubkey"] == server
    assert (await client.get(f"/lnurlp/{link['id']}")).json()["nostrPubkey"] == server


# --- what a relay answers ---------------------------------------------------------------------


ANSWERS = {
    "accepted": ([["OK", "{id}", True, ""]], "ok", ""),
    "duplicate": ([["OK", "{id}", False, "duplicate: have it"]], "ok", "duplicate"),
    "blocked": ([["NOTICE", "slow down"], ["OK", "{id}", False, "blocked: not here"]], "refused",
                "OK false: blocked: not here; NOTICE: slow down"),
    "rate limited": ([["OK", "{id}", False, "rate-limited: later"]], "pending", "rate-limited"),
    "notice only": ([["NOTICE", "we are busy"]], "pending", "NOTICE: we are busy"),
    "other event's OK": ([["OK", "f" * 64, True, ""]], "pending", "no OK"),
}


@pytest.mark.parametrize("case", sorted(ANSWERS))
async def test_each_relay_answer_is_recorded(fulmen, monkeypatch, case):
    """Relay answers nostr-relay does not give on demand, from a minimal websocket server."""
    from fulmen_nostrzaps.config import Config
    from fulmen_nostrzaps.relay import publish
    from websockets.asyncio.server import serve

    replies, status, message = ANSWERS[case]
    received: list[Any] = []

    async def handler(ws: Any) -> None:
        event = json.loads(await ws.recv())[1]
        received.append(event)
        for reply in replies:
            await ws.send(json.dumps([event["id"] if part == "{id}" else part for part in reply]))
        await asyncio.sleep(5)

    await fulmen.start(plugins=["nostrzaps"])
    config = Config.from_env()
    config = Config(**{**config.__dict__, "relay_timeout": 1.0})
    event = signed(PrivateKey(), 9735, [["p", "a" * 64]])
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        outcome = await publish(fulmen.host, f"ws://127.0.0.1:{port}", event, config)
    assert received == [event]
    assert outcome.status == status and message in outcome.message, outcome
