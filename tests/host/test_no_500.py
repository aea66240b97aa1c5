"""No input reaches a 500: random JSON thrown at every core endpoint."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=8,
)
fields = st.sampled_from(["out", "amount", "memo", "bolt11", "expiry", "unit", "description_hash",
                          "unhashed_description", "extra", "webhook", "name", "currency", "data", "id"])
bodies = st.dictionaries(fields, json_values, max_size=6) | json_values

ENDPOINTS = [
    ("POST", "/api/v1/payments", "admin"),
    ("POST", "/api/v1/payments", "invoice"),
    ("POST", "/api/v1/payments/decode", None),
    ("PATCH", "/api/v1/wallet", "admin"),
    ("POST", "/api/v1/account", None),
    ("POST", "/api/v1/wallet", "account"),
    ("PUT", "/users/api/v1/balance", "root"),
]


@pytest.fixture
def fulmen(fulmen_db):
    """Every test here on SQLite and on PostgreSQL (what one stores, the other may refuse)."""
    return fulmen_db


async def test_random_bodies_never_cause_500(fulmen):
    client = await fulmen.start()
    alice = await fulmen.wallet("alice", sats=10)
    headers = {
        "admin": alice.admin_headers, "invoice": alice.invoice_headers, None: {},
        "account": {"Authorization": f"Bearer {alice.account_token}"}, "root": fulmen.admin_headers,
    }
    seen = []

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(endpoint=st.sampled_from(ENDPOINTS), body=bodies)
    def generate(endpoint, body):
        seen.append((endpoint, body))

    generate()
    for (method, path, auth), body in seen:
        r = await client.request(method, path, headers={**headers[auth], "content-type": "application/json"},
                                 content=json.dumps(body, allow_nan=True))
        assert r.status_code < 500, (method, path, body, r.text)
        if r.status_code >= 400:
            assert "detail" in r.json() or "message" in r.json()
    assert await fulmen.host.wallets.audit() == []


async def test_random_query_strings_never_cause_500(fulmen):
    client = await fulmen.start()
    alice = await fulmen.wallet("alice", sats=10)
    seen = []

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(params=st.dictionaries(st.text(max_size=15), st.text(max_size=15), max_size=4))
    def generate(params):
        seen.append(params)

    generate()
    for params in seen:
        for path in ("/api/v1/payments", "/api/v1/payments/paginated", "/api/v1/payments/history"):
            r = await client.get(path, headers=alice.read_headers, params=params)
            assert r.status_code < 500, (path, params, r.text)
