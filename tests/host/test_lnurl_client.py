"""The host's LNURL client: decoding every code form, the outbound rules,
the checks on what a pay service returns, and real round trips between
`fulmen serve` processes, driven from the wallet side by the `lnurl` package."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import lnurl
import pytest
from fulmen.errors import BadRequest
from fulmen.lnurl_client import LnurlClient
from fulmen.net import SafeHttp
from fulmen.testing import ADMIN_KEY, ServerProcess

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "lnurlp"))
from lnurl_testing import Receiver, foreign_invoice  # noqa: E402


def client_for(allow_private: bool = True, insecure: set[str] | None = None) -> LnurlClient:
    return LnurlClient(SimpleNamespace(http=SafeHttp(allow_private=allow_private, insecure_hosts=insecure)))


# --- decoding ------------------------------------------------------------------------------


@pytest.mark.parametrize("code, url", [
    (lnurl.encode("https://pay.example.com/lnurlp/abc").bech32, "https://pay.example.com/lnurlp/abc"),
    ("lightning:" + lnurl.url_encode("https://pay.example.com/x?q=1").lower(), "https://pay.example.com/x?q=1"),
    ("LIGHTNING:" + lnurl.url_encode("https://pay.example.com/x"), "https://pay.example.com/x"),
    ("lnurlp://pay.example.com/lnurlp/abc", "https://pay.example.com/lnurlp/abc"),
    ("lnurlw://atm.example.com/w/1?x=2", "https://atm.example.com/w/1?x=2"),
    ("lnurlp:/pay.example.com/p", "https://pay.example.com/p"),  # a path segment lost a slash
    ("lnurlp://127.0.0.1:5001/lnurlp/abc", "http://127.0.0.1:5001/lnurlp/abc"),
    ("lnurlp://abcdefghij.onion/p", "http://abcdefghij.onion/p"),
    ("https://shop.example.com/pay", "https://shop.example.com/pay"),
    ("https://shop.example.com/?lightning=" + lnurl.url_encode("https://pay.example.com/y"),
     "https://pay.example.com/y"),
    ("Alice@Example.com", "https://example.com/.well-known/lnurlp/alice"),
    ("bob@127.0.0.1:5001", "http://127.0.0.1:5001/.well-known/lnurlp/bob"),
])
def test_decode_forms(code, url):
    assert client_for().decode(code).url == url


def test_decode_follows_the_outbound_rules_for_plain_http():
    strict = client_for(allow_private=False)
    assert strict.decode("lnurlp://127.0.0.1:5001/p").url == "https://127.0.0.1:5001/p"
    assert strict.decode("bob@127.0.0.1:5001").url == "https://127.0.0.1:5001/.well-known/lnurlp/bob"
    listed = client_for(allow_private=False, insecure={"pay.lan"})
    assert listed.decode("lnurlp://pay.lan/p").url == "http://pay.lan/p"
    assert client_for().decode("carol@example.com").address == "carol@example.com"


@pytest.mark.parametrize("code", ["", "hello", "lnurl1qqqqq", "ftp://example.com/x", "lnbc1garbage",
                                  "a@b@c", "lnurl" + "1" * 10])
def test_decode_refuses_other_things(code):
    with pytest.raises(BadRequest):
        client_for().decode(code)


# --- the outbound rules, through the API ---------------------------------------------------------


async def test_loopback_lnurl_refused_unless_private_addresses_allowed(fulmen):
    receiver = Receiver()
    try:
        receiver.gets["/p"] = {"tag": "payRequest", "callback": receiver.url + "/cb",
                               "minSendable": 1000, "maxSendable": 2000,
                               "metadata": json.dumps([["text/plain", "x"]])}
        client = await fulmen.start(allow_private_addresses=False)
        alice = await fulmen.wallet("alice", sats=10)
        port = receiver.url.rsplit(":", 1)[1]
        cases = {
            lnurl.url_encode(receiver.url + "/p"): "https",
            f"https://127.0.0.1:{port}/p": "internal address",
            f"lnurlp://127.0.0.1:{port}/p": "internal address",
            f"alice@127.0.0.1:{port}": "internal address",
            "https://localhost/p": "internal address",
        }
        for code, problem in cases.items():
            r = await client.post("/api/v1/lnurlscan", json={"lnurl": code}, headers=alice.invoice_headers)
            assert r.status_code == 400, (code, r.text)
            assert problem in r.json()["detail"], (code, r.json())
            r = await client.post("/api/v1/payments/lnurl", json={"lnurl": code, "amount": 1000},
                                  headers=alice.admin_headers)
            assert r.status_code == 400 and problem in r.json()["detail"]
        assert receiver.requests == []  # nothing was sent
        # the same code is fetched once private addresses are allowed
        fulmen.host.http.allow_private = True
        r = await client.get(f"/api/v1/lnurlscan/{lnurl.url_encode(receiver.url + '/p')}",
                             headers=alice.invoice_headers)
        assert r.status_code == 200 and r.json()["tag"] == "payRequest" and len(receiver.requests) == 1
    finally:
        receiver.close()


# --- what a pay service returns is checked before paying -----------------------------------------


async def test_pay_checks_the_invoice_against_the_request(fulmen_db):
    receiver = Receiver()
    try:
        client = await fulmen_db.start()
        alice = await fulmen_db.wallet("alice", sats=100)
        meta = json.dumps([["text/plain", "A book"]])
        good_hash = hashlib.sha256(meta.encode()).hexdigest()
        receiver.gets["/p"] = {"tag": "payRequest", "callback": receiver.url + "/cb", "minSendable": 1000,
                               "maxSendable": 50_000, "metadata": meta, "commentAllowed": 5}
        code = lnurl.url_encode(receiver.url + "/p")

        async def pay(callback_answer, amount=5000, **body):
            receiver.gets["/cb"] = callback_answer
            return await client.post("/api/v1/payments/lnurl", headers=alice.admin_headers,
                                     json={"lnurl": code, "amount": amount, **body})

        cases = [
            ({"pr": foreign_invoice(2000, good_hash), "routes": []}, "not the 5000 msat"),
            ({"pr": foreign_invoice(5000, hashlib.sha256(b"other").hexdigest()), "routes": []},
             "description hash"),
            ({"pr": foreign_invoice(5000), "routes": []}, "description hash"),
            ({"pr": foreign_invoice(5000, good_hash, expiry=60, date=int(time.time()) - 3600),
              "routes": []}, "expired"),
            ({"pr": "lnbc1notaninvoice", "routes": []}, "invalid LNURL response"),
            ({"status": "ERROR", "reason": "Out of stock"}, "Out of stock"),
        ]
        for answer, problem in cases:
            r = await pay(answer)
            assert r.status_code == 400, (problem, r.text)
            assert problem in r.json()["detail"], (problem, r.json())
        # refused before the callback is asked
        before = len(receiver.requests)
        r = await pay({"pr": foreign_invoice(5000, good_hash)}, amount=60_000)
        assert r.status_code == 400 and "outside" in r.json()["detail"]
        r = await pay({"pr": foreign_invoice(5000, good_hash)}, comment="too long")
        assert r.status_code == 400 and "at most 5" in r.json()["detail"]
        assert len([q for q in receiver.requests[before:] if q["path"].startswith("/cb")]) == 0
        r = await client.post("/api/v1/payments/lnurl", headers=alice.invoice_headers,
                              json={"lnurl": code, "amount": 5000})
        assert r.status_code == 403
        assert await fulmen_db.balance(alice) == 100_000

        # a correct invoice passes every check and goes to the funding source
        # (which cannot route it: the funds come back)
        r = await pay({"pr": foreign_invoice(5000, good_hash), "routes": []}, comment="hi")
        assert r.status_code == 400 and "Payment failed" in r.json()["detail"]
        callback = [q for q in receiver.requests if q["path"].startswith("/cb")][-1]
        assert "amount=5000" in callback["path"] and "comment=hi" in callback["path"]
        assert await fulmen_db.balance(alice) == 100_000
        # `res` instead of `lnurl` (LNbits clients send the scanned payRequest back)
        r = await client.post("/api/v1/payments/lnurl", headers=alice.admin_headers,
                              json={"res": receiver.gets["/p"], "amount": 2000})
        assert r.status_code == 400 and "not the 2000 msat" in r.json()["detail"]
    finally:
        receiver.close()


# --- real servers ----------------------------------------------------------------------------------


def server_env(tmp_path: Path, name: str, database_url: str, port: int) -> dict[str, str]:
    return {
        "FULMEN_DATA_DIR": str(tmp_path / name),
        "DATABASE_URL": database_url,
        "FULMEN_ADMIN_KEY": ADMIN_KEY,
        "FULMEN_PLUGINS": "lnurlp,withdraw",
        "FULMEN_ALLOW_PRIVATE_ADDRESSES": "true",
        "FULMEN_BASE_URL": f"http://127.0.0.1:{port}",
        "FULMEN_FAKE_NODE_KEY": "11" * 32,
        "FULMEN_RECONCILE_INTERVAL": "3600",
    }


async def start_server(tmp_path: Path, name: str, database_url: str) -> ServerProcess:
    from fulmen.testing import free_port

    port = free_port()
    proc = ServerProcess(server_env(tmp_path, name, database_url, port), port=port,
                         log_path=tmp_path / f"{name}.log")
    await asyncio.to_thread(proc.start)
    return proc


async def new_wallet(http: httpx.AsyncClient, name: str, sats: int = 0) -> dict:
    r = await http.post("/api/v1/account", json={"name": name})
    assert r.status_code == 201, r.text
    wallet = r.json()
    if sats:
        r = await http.put("/users/api/v1/balance", json={"id": wallet["id"], "amount": sats},
                           headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert r.status_code == 200, r.text
    return wallet


async def balance(http: httpx.AsyncClient, wallet: dict) -> int:
    r = await http.get("/api/v1/wallet", headers={"X-Api-Key": wallet["inkey"]})
    return r.json()["balance"]


async def invoice(http: httpx.AsyncClient, wallet: dict, sats: int) -> str:
    r = await http.post("/api/v1/payments", json={"out": False, "amount": sats},
                        headers={"X-Api-Key": wallet["inkey"]})
    assert r.status_code == 201, r.text
    return r.json()["bolt11"]


async def test_round_trips_on_a_real_server(tmp_path):
    proc = await start_server(tmp_path, "one", f"sqlite:///{tmp_path / 'one.sqlite3'}")
    receiver = Receiver()
    try:
        async with httpx.AsyncClient(base_url=proc.url, timeout=20) as http:
            shop = await new_wallet(http, "shop")
            alice = await new_wallet(http, "alice", sats=1000)
            bob = await new_wallet(http, "bob")
            r = await http.post("/lnurlp/api/v1/links", headers={"X-Api-Key": shop["adminkey"]}, json={
                "description": "Tea", "min": 10, "max": 200, "comment_chars": 20, "username": "tea",
                "success_text": "Brewing", "webhook_url": receiver.url + "/hook"})
            assert r.status_code == 201, r.text
            link = r.json()

            # 1. a wallet that is not Fulmen: the lnurl package fetches, checks and parses
            res = await lnurl.handle(link["lnurl"])
            assert isinstance(res, lnurl.LnurlPayResponse) and res.metadata.text == "Tea"
            action = await lnurl.execute_pay_request(res, 50_000, comment="green")
            assert action.successAction.message == "Brewing"
            r = await http.post("/api/v1/payments", json={"out": True, "bolt11": str(action.pr)},
                                headers={"X-Api-Key": alice["adminkey"]})
            assert r.status_code == 201, r.text
            # the Lightning Address, through the lnurl package's own request
            address = await lnurl.get(f"{proc.url}/.well-known/lnurlp/tea")
            assert isinstance(address, lnurl.LnurlPayResponse)
            assert ["text/identifier", f"tea@127.0.0.1:{proc.port}"] in [list(x) for x in address.metadata.list()]

            # 2. the server's own LNURL client, over real HTTP to itself
            r = await http.get(f"/api/v1/lnurlscan/tea@127.0.0.1:{proc.port}",
                               headers={"X-Api-Key": alice["inkey"]})
            assert r.status_code == 200 and r.json()["tag"] == "payRequest", r.text
            r = await http.post("/api/v1/payments/lnurl", headers={"X-Api-Key": alice["adminkey"]},
                                json={"lnurl": f"tea@127.0.0.1:{proc.port}", "amount": 100_000,
                                      "comment": "black"})
            assert r.status_code == 200, r.text
            assert await balance(http, alice) == 850_000 and await balance(http, shop) == 150_000
            hooks = await receiver.wait_for(2)
            assert sorted(h["json"]["comment"] for h in hooks) == ["black", "green"]
            assert sorted(h["json"]["amount"] for h in hooks) == [50_000, 100_000]

            # 3. withdraw: claimed by the lnurl package, then by the server's client
            r = await http.post("/withdraw/api/v1/links", headers={"X-Api-Key": shop["adminkey"]}, json={
                "title": "Refund", "min_withdrawable": 10, "max_withdrawable": 40, "uses": 2,
                "wait_time": 0, "is_unique": False})
            assert r.status_code == 201, r.text
            wlink = r.json()
            wres = await lnurl.handle(wlink["lnurl"])
            assert isinstance(wres, lnurl.LnurlWithdrawResponse) and wres.maxWithdrawable == 40_000
            done = await lnurl.execute_withdraw(wres, await invoice(http, bob, 40))
            assert done.ok
            with pytest.raises(lnurl.LnurlResponseException):  # the k1 is spent
                await lnurl.execute_withdraw(wres, await invoice(http, bob, 40))
            r = await http.post("/api/v1/payments/lnurlw", headers={"X-Api-Key": bob["adminkey"]},
                                json={"lnurl": wlink["lnurl"], "amount": 30_000})
            assert r.status_code == 200 and r.json()["status"] == "success", r.text
            assert await balance(http, bob) == 70_000 and await balance(http, shop) == 80_000
            r = await http.post("/api/v1/payments/lnurlw", headers={"X-Api-Key": bob["adminkey"]},
                                json={"lnurl": wlink["lnurl"], "amount": 30_000})
            assert r.status_code == 400 and "spent" in r.json()["detail"]
            assert await balance(http, bob) == 70_000
    finally:
        receiver.close()
        await asyncio.to_thread(proc.stop)


async def test_concurrent_claims_across_two_processes_pay_once(tmp_path, postgres_url):
    one = await start_server(tmp_path, "one", postgres_url)
    two = await start_server(tmp_path, "two", postgres_url)
    try:
        async with httpx.AsyncClient(base_url=one.url, timeout=30) as a, \
                httpx.AsyncClient(base_url=two.url, timeout=30) as b:
            src = await new_wallet(a, "src", sats=10_000)
            dst = await new_wallet(b, "dst")
            r = await a.post("/withdraw/api/v1/links", headers={"X-Api-Key": src["adminkey"]}, json={
                "title": "Voucher", "min_withdrawable": 1, "max_withdrawable": 100, "uses": 4,
                "wait_time": 0, "is_unique": False})
            assert r.status_code == 201, r.text
            link = r.json()
            unique = link["unique_hash"]

            # the same k1 sent to both processes at once: one pays
            for _ in range(3):
                k1 = (await a.get(f"/withdraw/api/v1/lnurl/{unique}")).json()["k1"]
                prs = [await invoice(b, dst, 100), await invoice(a, dst, 100)]
                answers = await asyncio.gather(
                    a.get(f"/withdraw/api/v1/lnurl/cb/{unique}", params={"k1": k1, "pr": prs[0]}),
                    b.get(f"/withdraw/api/v1/lnurl/cb/{unique}", params={"k1": k1, "pr": prs[1]}),
                )
                assert sorted(x.json()["status"] for x in answers) == ["ERROR", "OK"], [x.text for x in answers]
            assert await balance(a, dst) == 300_000

            # one use left, six fresh k1s split over both processes: one pays
            k1s = [(await (a if i % 2 else b).get(f"/withdraw/api/v1/lnurl/{unique}")).json()["k1"]
                   for i in range(6)]
            prs = [await invoice(a, dst, 100) for _ in k1s]
            answers = await asyncio.gather(*(
                (a if i % 2 else b).get(f"/withdraw/api/v1/lnurl/cb/{unique}", params={"k1": k1, "pr": pr})
                for i, (k1, pr) in enumerate(zip(k1s, prs))))
            assert [x.json()["status"] for x in answers].count("OK") == 1
            assert await balance(b, dst) == 400_000 and await balance(b, src) == 10_000_000 - 400_000
            r = await b.get(f"/withdraw/api/v1/links/{link['id']}", headers={"X-Api-Key": src["inkey"]})
            assert r.json()["used"] == 4 and r.json()["uses"] == 4
    finally:
        await asyncio.gather(asyncio.to_thread(one.stop), asyncio.to_thread(two.stop))
