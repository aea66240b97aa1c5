"""withdraw: links API, the LNURL-withdraw protocol checked with the `lnurl`
package's models, claims into another wallet, one-time k1s, every refusal,
and concurrent claims that pay exactly once."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import lnurl
import pytest
from fulmen import query

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lnurlp"))
from lnurl_testing import Receiver, amountless_invoice, payment_count, start_looped  # noqa: E402

API = "/withdraw/api/v1/links"


async def make_link(client, wallet, **fields):
    body = {"title": "Voucher", "min_withdrawable": 10, "max_withdrawable": 100, "uses": 1,
            "wait_time": 0, "is_unique": False, **fields}
    r = await client.post(API, json=body, headers=wallet.admin_headers)
    assert r.status_code == 201, r.text
    return r.json()


async def withdraw_request(client, link) -> lnurl.LnurlWithdrawResponse:
    """Open the link's LNURL as a wallet would; parsed by the lnurl package."""
    r = await client.get(lnurl.url_decode(link["lnurl"]))
    assert r.status_code == 200, r.text
    res = lnurl.LnurlResponse.from_dict(r.json())
    assert isinstance(res, lnurl.LnurlWithdrawResponse)
    return res


async def claim(client, res, pr, k1=None):
    r = await client.get(str(res.callback), params={"k1": k1 or res.k1, "pr": pr})
    return r


async def link_state(client, wallet, link):
    r = await client.get(f"{API}/{link['id']}", headers=wallet.invoice_headers)
    assert r.status_code == 200
    return r.json()


# --- the links API ------------------------------------------------------------------------


async def test_crud_list_and_fields(fulmen_db):
    client = await fulmen_db.start(plugins=["withdraw"])
    src = await fulmen_db.wallet("src")
    other = await fulmen_db.wallet("other")
    link = await make_link(client, src, uses=3, wait_time=60, webhook_url="https://hooks.example.com/w")
    assert link["wallet"] == src.id and link["title"] == "Voucher"
    assert (link["min_withdrawable"], link["max_withdrawable"], link["uses"], link["used"]) == (10, 100, 3, 0)
    assert link["usescsv"] == "1,2,3" and link["wait_time"] == 60 and link["enabled"] is True
    assert lnurl.url_decode(link["lnurl"]) == link["lnurl_url"] == \
        f"http://testserver.local/withdraw/api/v1/lnurl/{link['unique_hash']}"
    second = await make_link(client, src, title="Second")

    r = await client.get(API, headers=src.invoice_headers)
    assert r.status_code == 200
    assert r.json()["total"] == 2 and [x["id"] for x in r.json()["data"]] == [link["id"], second["id"]]
    r = await client.get(API, params={"offset": 1, "limit": 1}, headers=src.invoice_headers)
    assert r.json()["total"] == 2 and [x["id"] for x in r.json()["data"]] == [second["id"]]
    assert (await client.get(API, headers=other.invoice_headers)).json() == {"data": [], "total": 0}

    r = await client.put(f"{API}/{link['id']}", json={"title": "Gift", "uses": 5}, headers=src.admin_headers)
    assert r.status_code == 200 and r.json()["title"] == "Gift" and r.json()["uses"] == 5
    assert r.json()["max_withdrawable"] == 100
    r = await client.delete(f"{API}/{link['id']}", headers=src.admin_headers)
    assert r.status_code == 200 and r.json()["success"] is True
    assert (await client.get(f"{API}/{link['id']}", headers=src.invoice_headers)).status_code == 404
    r = await client.get(lnurl.url_decode(link["lnurl"]))
    assert r.status_code == 404 and r.json()["status"] == "ERROR"


async def test_key_kinds_and_ownership(fulmen_db):
    client = await fulmen_db.start(plugins=["withdraw"])
    src = await fulmen_db.wallet("src")
    other = await fulmen_db.wallet("other")
    link = await make_link(client, src)
    assert (await client.get(API, headers=src.read_headers)).status_code == 403
    body = {"title": "x", "min_withdrawable": 1, "max_withdrawable": 2, "uses": 1}
    assert (await client.post(API, json=body, headers=src.invoice_headers)).status_code == 403
    assert (await client.get(f"{API}/{link['id']}", headers=other.invoice_headers)).status_code == 403
    assert (await client.put(f"{API}/{link['id']}", json={"uses": 2},
                             headers=other.admin_headers)).status_code == 403
    assert (await client.delete(f"{API}/{link['id']}", headers=other.admin_headers)).status_code == 403


async def test_invoice_key_cannot_reach_the_lnurl(fulmen_db):
    """Whoever has a withdraw link's LNURL takes the wallet's money: a key that
    cannot spend sees the link without it, and the page (which shows the QR
    code) is not found by the link id that key does see."""
    client = await fulmen_db.start(plugins=["withdraw"])
    src = await fulmen_db.wallet("src")
    link = await make_link(client, src)
    assert link["unique_hash"] and link["lnurl"]  # the admin key that made it
    r = await client.get(API, headers=src.invoice_headers)
    [seen] = r.json()["data"]
    r2 = await client.get(f"{API}/{link['id']}", headers=src.invoice_headers)
    for data in (seen, r2.json()):
        assert data["id"] == link["id"] and data["title"] == "Voucher"
        assert data["unique_hash"] is None and data["lnurl"] is None and data["lnurl_url"] is None
        assert link["unique_hash"] not in r.text + r2.text
    assert (await client.get(f"/withdraw/{link['id']}")).status_code == 404
    r = await client.get(API, headers=src.admin_headers)
    assert r.json()["data"][0]["lnurl"] == link["lnurl"]
    r = await client.get(f"/withdraw/{link['unique_hash']}")
    assert r.status_code == 200 and link["lnurl"] in r.text


@pytest.mark.parametrize("fields, problem", [
    ({"title": ""}, "title"),
    ({"min_withdrawable": 0}, "min_withdrawable"),
    ({"min_withdrawable": 50, "max_withdrawable": 20}, "max_withdrawable"),
    ({"uses": 0}, "uses"),
    ({"uses": 251}, "uses"),
    ({"wait_time": -1}, "wait_time"),
    ({"is_unique": "yes"}, "is_unique"),
    ({"webhook_url": "gopher://x"}, "webhook_url"),
    ({"webhook_headers": "nope"}, "webhook_headers"),
    ({"bogus": 1}, "bogus"),
])
async def test_bad_input_is_named(fulmen, fields, problem):
    client = await fulmen.start(plugins=["withdraw"])
    src = await fulmen.wallet("src")
    body = {"title": "Voucher", "min_withdrawable": 10, "max_withdrawable": 100, "uses": 1, **fields}
    r = await client.post(API, json=body, headers=src.admin_headers)
    assert r.status_code == 400, r.text
    assert problem in r.json()["detail"]


# --- the protocol -------------------------------------------------------------------------------


async def test_withdraw_request_issues_a_k1_per_scan(fulmen_db):
    client, base = await start_looped(fulmen_db, ["withdraw"])
    src = await fulmen_db.wallet("src")
    link = await make_link(client, src, min_withdrawable=5, max_withdrawable=50)
    first = await withdraw_request(client, link)
    second = await withdraw_request(client, link)
    assert first.k1 != second.k1 and len(first.k1) == 64
    assert (first.minWithdrawable, first.maxWithdrawable) == (5000, 50000)
    assert first.defaultDescription == "Voucher"
    assert str(first.callback) == f"{base}/withdraw/api/v1/lnurl/cb/{link['unique_hash']}"


async def test_public_scans_keep_a_bounded_number_of_open_k1s(fulmen_db):
    """Anyone holding the LNURL can scan it: each scan writes a k1, so a link
    keeps only its newest open k1s and repeated scans cannot fill the database."""
    import fulmen_withdraw.links as links

    client, _ = await start_looped(fulmen_db, ["withdraw"])
    src = await fulmen_db.wallet("src", sats=1000)
    dst = await fulmen_db.wallet("dst")
    link = await make_link(client, src)
    first = await withdraw_request(client, link)
    for _ in range(links.MAX_OPEN_K1 + 20):
        last = await withdraw_request(client, link)
    rows = await query("SELECT COUNT(*) AS n FROM withdraw_k1 WHERE link_id = {}", link["id"])
    assert int(rows[0]["n"]) == links.MAX_OPEN_K1
    r = await claim(client, first, (await fulmen_db.invoice(dst, 50))["bolt11"])
    assert r.status_code == 400 and "k1" in r.json()["reason"]
    r = await claim(client, last, (await fulmen_db.invoice(dst, 50))["bolt11"])
    assert r.status_code == 200 and await fulmen_db.balance(dst) == 50_000


async def test_claim_pays_the_invoice_once(fulmen_db):
    client, _ = await start_looped(fulmen_db, ["withdraw"])
    src = await fulmen_db.wallet("src", sats=1000)
    dst = await fulmen_db.wallet("dst")
    link = await make_link(client, src, uses=2, max_withdrawable=100)
    res = await withdraw_request(client, link)
    inv = await fulmen_db.invoice(dst, 80)
    r = await claim(client, res, inv["bolt11"])
    assert r.status_code == 200 and r.json() == {"status": "OK"}
    assert lnurl.LnurlResponse.from_dict(r.json()).ok
    assert await fulmen_db.balance(dst) == 80_000 and await fulmen_db.balance(src) == 920_000
    # the same k1 again, with a fresh invoice: refused, nothing paid
    inv2 = await fulmen_db.invoice(dst, 80)
    r = await claim(client, res, inv2["bolt11"])
    assert r.status_code == 400 and r.json()["status"] == "ERROR" and "k1" in r.json()["reason"]
    assert await fulmen_db.balance(dst) == 80_000
    state = await link_state(client, src, link)
    assert state["used"] == 1 and state["usescsv"] == "2"


async def test_claim_into_another_wallet_through_the_host_client(fulmen_db):
    client, _ = await start_looped(fulmen_db, ["withdraw"])
    src = await fulmen_db.wallet("src", sats=1000)
    dst = await fulmen_db.wallet("dst")
    link = await make_link(client, src, min_withdrawable=10, max_withdrawable=300, uses=1)

    r = await client.get(f"/api/v1/lnurlscan/{link['lnurl']}", headers=dst.invoice_headers)
    assert r.status_code == 200, r.text
    scan = r.json()
    assert scan["tag"] == "withdrawRequest" and scan["kind"] == "withdraw"
    assert (scan["minWithdrawable"], scan["maxWithdrawable"]) == (10_000, 300_000)

    r = await client.post("/api/v1/payments/lnurlw", json={"lnurl": link["lnurl"], "amount": 300_000},
                          headers=dst.admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "success" and r.json()["amount"] == 300_000
    assert r.json()["memo"] == "Voucher"
    assert await fulmen_db.balance(dst) == 300_000 and await fulmen_db.balance(src) == 700_000
    # used up: the next claim is refused by the service and the host reports why
    r = await client.post("/api/v1/payments/lnurlw", json={"lnurl": link["lnurl"], "amount": 10_000},
                          headers=dst.admin_headers)
    assert r.status_code == 400 and "spent" in r.json()["detail"]
    assert await fulmen_db.balance(dst) == 300_000
    # amounts outside the link's range are refused before anything is asked
    link2 = await make_link(client, src, max_withdrawable=50)
    r = await client.post("/api/v1/payments/lnurlw", json={"lnurl": link2["lnurl"], "amount": 60_000},
                          headers=dst.admin_headers)
    assert r.status_code == 400 and "outside" in r.json()["detail"]
    r = await client.post("/api/v1/payments/lnurlw", json={"lnurl": link2["lnurl"], "amount": 20_000},
                          headers=dst.invoice_headers)
    assert r.status_code == 403


async def test_refusals_pay_nothing(fulmen_db):
    client, _ = await start_looped(fulmen_db, ["withdraw"])
    src = await fulmen_db.wallet("src", sats=1000)
    dst = await fulmen_db.wallet("dst")
    link = await make_link(client, src, min_withdrawable=20, max_withdrawable=100, uses=2, wait_time=3600)
    res = await withdraw_request(client, link)
    cases = [
        ({"k1": "0" * 64, "pr": (await fulmen_db.invoice(dst, 50))["bolt11"]}, "k1"),
        ({"pr": (await fulmen_db.invoice(dst, 50))["bolt11"]}, "k1 is required"),
        ({"k1": res.k1}, "pr"),
        ({"k1": res.k1, "pr": "lnbc1garbage"}, "not a valid bolt11"),
        ({"k1": res.k1, "pr": amountless_invoice()}, "no amount"),
        ({"k1": res.k1, "pr": (await fulmen_db.invoice(dst, 101))["bolt11"]}, "outside"),
        ({"k1": res.k1, "pr": (await fulmen_db.invoice(dst, 19))["bolt11"]}, "outside"),
    ]
    for params, reason in cases:
        r = await client.get(str(res.callback), params=params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["status"] == "ERROR" and reason in r.json()["reason"], (params, r.json())
    r = await client.get("/withdraw/api/v1/lnurl/cb/nope", params={"k1": res.k1, "pr": "x"})
    assert r.status_code == 404 and r.json()["status"] == "ERROR"
    assert await fulmen_db.balance(src) == 1_000_000 and await fulmen_db.balance(dst) == 0
    assert (await link_state(client, src, link))["used"] == 0

    # the refused k1 was not spent by the refusals above: it still works
    r = await claim(client, res, (await fulmen_db.invoice(dst, 50))["bolt11"])
    assert r.json() == {"status": "OK"}
    # too early for the second use (wait_time 3600 s), with a fresh k1
    res2 = await withdraw_request(client, link)
    r = await claim(client, res2, (await fulmen_db.invoice(dst, 50))["bolt11"])
    assert r.status_code == 400 and "Too early" in r.json()["reason"]
    assert await fulmen_db.balance(dst) == 50_000
    assert (await link_state(client, src, link))["used"] == 1

    # disabled: no withdraw request, no claim
    await client.put(f"{API}/{link['id']}", json={"enabled": False, "wait_time": 0},
                     headers=src.admin_headers)
    r = await client.get(lnurl.url_decode(link["lnurl"]))
    assert r.status_code == 400 and "disabled" in r.json()["reason"]
    r = await claim(client, res2, (await fulmen_db.invoice(dst, 50))["bolt11"])
    assert r.status_code == 400 and "disabled" in r.json()["reason"]
    assert await fulmen_db.balance(dst) == 50_000


async def test_a_failed_payment_gives_the_use_back(fulmen_db):
    client, _ = await start_looped(fulmen_db, ["withdraw"])
    src = await fulmen_db.wallet("src", sats=10)
    dst = await fulmen_db.wallet("dst")
    link = await make_link(client, src, max_withdrawable=100, uses=1, wait_time=3600)
    res = await withdraw_request(client, link)
    r = await claim(client, res, (await fulmen_db.invoice(dst, 50))["bolt11"])
    assert r.status_code == 400 and "Insufficient balance" in r.json()["reason"]
    state = await link_state(client, src, link)
    assert state["used"] == 0
    rows = await query("SELECT status FROM withdraw_k1 WHERE k1 = {}", res.k1)
    assert rows[0]["status"] == "failed"
    # the k1 stays spent; a new scan can take the use, without waiting
    r = await claim(client, res, (await fulmen_db.invoice(dst, 50))["bolt11"])
    assert r.status_code == 400 and "k1" in r.json()["reason"]
    await fulmen_db.fund(src, 100)
    res2 = await withdraw_request(client, link)
    r = await claim(client, res2, (await fulmen_db.invoice(dst, 50))["bolt11"])
    assert r.json() == {"status": "OK"}
    assert await fulmen_db.balance(dst) == 50_000
    # spent: no more withdraw requests
    r = await client.get(lnurl.url_decode(link["lnurl"]))
    assert r.status_code == 400 and "spent" in r.json()["reason"]


async def test_webhook_after_a_claim(fulmen):
    client, _ = await start_looped(fulmen, ["withdraw"])
    receiver = Receiver()
    try:
        src = await fulmen.wallet("src", sats=1000)
        dst = await fulmen.wallet("dst")
        link = await make_link(client, src, webhook_url=receiver.url + "/w",
                               webhook_headers={"X-Key": "k"}, webhook_body={"note": "gift"})
        res = await withdraw_request(client, link)
        inv = await fulmen.invoice(dst, 30)
        assert (await claim(client, res, inv["bolt11"])).json() == {"status": "OK"}
        hooks = await receiver.wait_for(1)
        assert len(hooks) == 1 and hooks[0]["headers"].get("X-Key") == "k"
        assert hooks[0]["json"]["lnurlw"] == link["id"] and hooks[0]["json"]["body"] == {"note": "gift"}
        assert hooks[0]["json"]["payment_request"] == inv["bolt11"]
    finally:
        receiver.close()


# --- concurrency -----------------------------------------------------------------------------------


async def test_two_concurrent_claims_of_one_k1_pay_once(fulmen_db):
    client, _ = await start_looped(fulmen_db, ["withdraw"])
    src = await fulmen_db.wallet("src", sats=1000)
    dst = await fulmen_db.wallet("dst")
    link = await make_link(client, src, max_withdrawable=100, uses=5)
    for _ in range(3):
        res = await withdraw_request(client, link)
        invoices = [(await fulmen_db.invoice(dst, 100))["bolt11"] for _ in range(2)]
        answers = await asyncio.gather(*(claim(client, res, pr) for pr in invoices))
        assert sorted(a.json()["status"] for a in answers) == ["ERROR", "OK"]
    assert await fulmen_db.balance(dst) == 300_000 and await fulmen_db.balance(src) == 700_000
    assert (await link_state(client, src, link))["used"] == 3


async def test_a_link_never_pays_more_than_uses_times_max(fulmen_db):
    client, _ = await start_looped(fulmen_db, ["withdraw"])
    src = await fulmen_db.wallet("src", sats=10_000)
    dst = await fulmen_db.wallet("dst")
    link = await make_link(client, src, max_withdrawable=100, uses=3)
    scans = [await withdraw_request(client, link) for _ in range(8)]
    invoices = [(await fulmen_db.invoice(dst, 100))["bolt11"] for _ in scans]
    answers = await asyncio.gather(*(claim(client, res, pr) for res, pr in zip(scans, invoices)))
    statuses = [a.json()["status"] for a in answers]
    assert statuses.count("OK") == 3 and statuses.count("ERROR") == 5
    reasons = [a.json()["reason"] for a in answers if a.json()["status"] == "ERROR"]
    assert all("spent" in reason for reason in reasons), reasons
    assert await fulmen_db.balance(dst) == 300_000
    assert await fulmen_db.balance(src) == 10_000_000 - 300_000
    assert await payment_count(src.id) == 3 + 1  # three withdrawals and the top-up that funded it


async def test_pages(fulmen):
    client = await fulmen.start(plugins=["withdraw"])
    src = await fulmen.wallet("src")
    link = await make_link(client, src)
    r = await client.get(f"/withdraw/{link['unique_hash']}")
    assert r.status_code == 200 and "<svg" in r.text and link["lnurl"] in r.text
    assert (await client.get("/withdraw/nope")).status_code == 404
    assert "Withdraw links" in (await client.get("/withdraw/")).text


async def test_webhook_url_the_host_would_not_call_is_refused(fulmen):
    client = await fulmen.start(plugins=["withdraw"], allow_private_addresses=False)
    src = await fulmen.wallet("src")
    for url in ("http://hooks.example.com/w", "https://127.0.0.1/w", "https://192.168.1.1/w"):
        r = await client.post(API, json={"title": "V", "min_withdrawable": 1, "max_withdrawable": 2,
                                         "uses": 1, "webhook_url": url}, headers=src.admin_headers)
        assert r.status_code == 400 and "webhook_url" in r.json()["detail"], (url, r.text)
    link = await make_link(client, src, webhook_url="https://hooks.example.com/w")
    r = await client.put(f"{API}/{link['id']}", json={"webhook_url": "http://hooks.example.com/w"},
                         headers=src.admin_headers)
    assert r.status_code == 400 and "https" in r.json()["detail"]


@pytest.mark.parametrize("headers", ['{"Host": "internal.example"}', '{"Transfer-Encoding": "chunked"}',
                                     '{"X-A": "1\\nX-B: 2"}'])
async def test_webhook_headers_cannot_reframe_the_request(fulmen, headers):
    client = await fulmen.start(plugins=["withdraw"])
    src = await fulmen.wallet("src")
    r = await client.post(API, json={"title": "V", "min_withdrawable": 1, "max_withdrawable": 2,
                                     "uses": 1, "webhook_headers": headers}, headers=src.admin_headers)
    assert r.status_code == 400 and "webhook_headers" in r.json()["detail"], r.text


@pytest.mark.parametrize("value", ["³", "-1", "1.5", "x", "1001"])
async def test_bad_paging_is_a_400_naming_the_parameter(fulmen, value):
    client = await fulmen.start(plugins=["withdraw"])
    src = await fulmen.wallet("src")
    r = await client.get(API, params={"limit": value}, headers=src.admin_headers)
    assert r.status_code == 400 and "limit" in r.json()["detail"], r.text
