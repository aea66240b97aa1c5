"""No input reaches a 500 on the plugins' endpoints: random JSON bodies and
query strings, for the owner's API and the public LNURL and terminal routes."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=8,
)
fields = st.sampled_from([
    "description", "min", "max", "comment_chars", "username", "domain", "success_text", "success_url",
    "webhook_url", "webhook_headers", "webhook_body", "disposable", "wallet", "title",
    "min_withdrawable", "max_withdrawable", "uses", "wait_time", "is_unique", "enabled", "name",
    "currency", "tip_options", "tip_wallet", "items", "amount", "tip_amount", "memo", "details",
    "targets", "exchange_rate", "id",
])
bodies = st.dictionaries(fields, json_values, max_size=6) | json_values
PLUGINS = ["lnurlp", "withdraw", "tpos", "splitpayments"]


def no_rate(r):
    """A link or terminal that random input priced in a currency with no
    exchange rate is answered 503 with the reason, by design."""
    return r.status_code == 503 and "No exchange rate" in r.text


@pytest.fixture
def fulmen(fulmen_db):
    """Every test here on SQLite and on PostgreSQL (what one stores, the other may refuse)."""
    return fulmen_db


async def shop_with_links(fulmen):
    """A host with the plugins, a funded wallet, and a pay and a withdraw link."""
    client = await fulmen.start(plugins=PLUGINS)
    shop = await fulmen.wallet("shop", sats=10)
    r = await client.post("/lnurlp/api/v1/links", json={"description": "d", "min": 1, "max": 10},
                          headers=shop.admin_headers)
    pay_link = r.json()
    r = await client.post("/withdraw/api/v1/links", json={"title": "t", "min_withdrawable": 1,
                          "max_withdrawable": 5, "uses": 1}, headers=shop.admin_headers)
    return client, shop, pay_link, r.json()


async def test_random_bodies_never_cause_500(fulmen):
    client, shop, pay_link, withdraw_link = await shop_with_links(fulmen)
    pay_id, w_id = pay_link["id"], withdraw_link["id"]
    r = await client.post("/tpos/api/v1/tposs", json={"name": "n"}, headers=shop.admin_headers)
    t_id = r.json()["id"]
    endpoints = [
        ("POST", "/lnurlp/api/v1/links"), ("PUT", f"/lnurlp/api/v1/links/{pay_id}"),
        ("POST", "/withdraw/api/v1/links"), ("PUT", f"/withdraw/api/v1/links/{w_id}"),
        ("POST", "/tpos/api/v1/tposs"), ("PUT", f"/tpos/api/v1/tposs/{t_id}"),
        ("PUT", f"/tpos/api/v1/tposs/{t_id}/items"), ("POST", f"/tpos/api/v1/tposs/{t_id}/invoices"),
        ("PUT", "/splitpayments/api/v1/targets"),
    ]
    seen = []

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(endpoint=st.sampled_from(endpoints), body=bodies)
    def generate(endpoint, body):
        seen.append((endpoint, body))

    generate()
    for (method, path), body in seen:
        r = await client.request(method, path, headers={**shop.admin_headers, "content-type": "application/json"},
                                 content=json.dumps(body, allow_nan=True))
        assert r.status_code < 500 or no_rate(r), (method, path, body, r.text)
    assert await fulmen.host.wallets.audit() == []


async def test_random_query_strings_never_cause_500(fulmen):
    client, shop, pay_link, withdraw_link = await shop_with_links(fulmen)
    pay_id, unique = pay_link["id"], withdraw_link["unique_hash"]
    paths = [f"/lnurlp/api/v1/lnurl/cb/{pay_id}", f"/withdraw/api/v1/lnurl/cb/{unique}",
             "/withdraw/api/v1/links", "/tpos/api/v1/tposs"]
    seen = []
    keys = st.sampled_from(["amount", "comment", "webhook_data", "k1", "pr", "offset", "limit",
                            "all_wallets"]) | st.text(max_size=8)

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(path=st.sampled_from(paths), params=st.dictionaries(keys, st.text(max_size=20), max_size=3))
    def generate(path, params):
        seen.append((path, params))

    generate()
    for path, params in seen:
        r = await client.get(path, params=params, headers=shop.invoice_headers)
        assert r.status_code < 500 or no_rate(r), (path, params, r.text)
    assert await fulmen.host.wallets.audit() == []
