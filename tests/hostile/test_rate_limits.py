"""Rate limits: 429 with Retry-After per address and per key, for host and
plugin routes; shared between processes through Redis."""

import uuid

import httpx
from fulmen.ratelimit import client_address, parse_networks
from fulmen.testing import ServerProcess


def test_client_address_believes_only_trusted_proxies() -> None:
    trusted = parse_networks("10.0.0.0/8, 127.0.0.1")
    headers = [(b"x-forwarded-for", b"6.6.6.6, 1.2.3.4, 10.1.1.1")]
    assert client_address({"client": ("127.0.0.1", 1), "headers": headers}, trusted) == "1.2.3.4"
    assert client_address({"client": ("5.5.5.5", 1), "headers": headers}, trusted) == "5.5.5.5"
    assert client_address({"client": ("127.0.0.1", 1), "headers": headers}, []) == "127.0.0.1"
    garbled = [(b"x-forwarded-for", b"not-an-ip")]
    assert client_address({"client": ("127.0.0.1", 1), "headers": garbled}, trusted) == "127.0.0.1"


async def test_signup_limited_per_address(fulmen) -> None:
    client = await fulmen.start(rate_limits_enabled=True, rate_limit_signup="3/minute",
                                trusted_proxies="127.0.0.1")
    codes = [(await client.post("/api/v1/account", json={"name": f"a{i}"})).status_code
             for i in range(4)]
    assert codes == [201, 201, 201, 429]
    r = await client.post("/api/v1/account", json={"name": "x"})
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60, r.text
    assert "signup" in r.json()["detail"]


async def test_invoices_limited_per_key_and_plugin_routes_limited(fulmen) -> None:
    client = await fulmen.start(plugins=["lnurlp"], rate_limits_enabled=True,
                                rate_limit_invoice="5/minute", rate_limit_lnurl_callback="2/minute")
    alice = await fulmen.wallet("alice")
    codes = []
    for _ in range(6):
        r = await client.post("/api/v1/payments", headers=alice.invoice_headers,
                              json={"out": False, "amount": 1})
        codes.append(r.status_code)
    assert codes == [201] * 5 + [429], codes
    assert "retry-after" in r.headers
    r = await client.post("/lnurlp/api/v1/links", headers=alice.admin_headers,
                          json={"description": "d", "min": 1, "max": 10})
    link = r.json()["id"]
    codes = [(await client.get(f"/lnurlp/api/v1/lnurl/cb/{link}", params={"amount": 1000}))
             .status_code for _ in range(3)]
    assert codes[:2] != [429, 429] and codes[2] == 429, codes


def test_limits_shared_between_processes_through_redis(tmp_path, postgres_url, redis_url) -> None:
    env = {"DATABASE_URL": postgres_url, "REDIS_URL": redis_url,
           "FULMEN_DATA_DIR": str(tmp_path / "data"), "FULMEN_RATE_LIMITS_ENABLED": "true",
           "FULMEN_TRUSTED_PROXIES": "127.0.0.1",
           "FULMEN_RATE_LIMIT_SIGNUP": "4/minute"}
    a = ServerProcess(env, log_path=tmp_path / "a.log").start()
    b = ServerProcess(env, log_path=tmp_path / "b.log").start()
    try:
        # A fresh address per run (through the trusted proxy header): counters in a
        # shared Redis never mix with another run's.
        me = {"x-forwarded-for": f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"}
        codes = []
        for i in range(6):
            server = a if i % 2 == 0 else b
            r = httpx.post(server.url + "/api/v1/account", json={"name": f"n{i}"}, headers=me,
                           timeout=30)
            codes.append(r.status_code)
        assert codes == [201] * 4 + [429, 429], codes
    finally:
        a.stop()
        b.stop()


async def test_payments_limited(fulmen) -> None:
    client = await fulmen.start(rate_limits_enabled=True, rate_limit_payment="2/minute")
    alice = await fulmen.wallet("alice", sats=10)
    codes = []
    for path, body in (("/api/v1/payments", {"out": True, "bolt11": "lnbc1bogus"}),
                       ("/api/v1/payments/lnurl", {"res": {}}),
                       ("/api/v1/payments", {"out": True, "bolt11": "lnbc1bogus"})):
        r = await client.post(path, headers=alice.admin_headers, json=body)
        codes.append(r.status_code)
    assert codes[:2] != [429, 429] and codes[2] == 429, codes
