"""No zap request or query string reaches a 500: random `nostr` parameters
(random JSON, and signed events with random tags) at a zap-enabled link's
callback, and random query strings on the nostrzaps API. (Here rather than in
nostrzaps/, whose tests also run in an install without hypothesis.)"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import pytest
from coincurve import PrivateKey
from fulmen import query
from fulmen.testing import ADMIN_KEY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def signed(key: PrivateKey, kind: int, tags: list[list[str]], content: str) -> dict[str, Any]:
    """A signed Nostr event (NIP-01 id, BIP-340 signature)."""
    event: dict[str, Any] = {"pubkey": key.public_key_xonly.format().hex(),
                             "created_at": int(time.time()), "kind": kind, "tags": tags,
                             "content": content}
    text = json.dumps([0, event["pubkey"], event["created_at"], kind, tags, content],
                      separators=(",", ":"), ensure_ascii=False)
    event["id"] = hashlib.sha256(text.encode()).hexdigest()
    event["sig"] = key.sign_schnorr(bytes.fromhex(event["id"])).hex()
    return event


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=8,
)
tag_names = st.sampled_from(["p", "e", "a", "P", "relays", "amount", "lnurl", "t"]) | st.text(
    max_size=3)
tag_values = st.sampled_from(["a" * 64, "1000", "30023:" + "b" * 64 + ":x", "wss://r.example",
                              "LNURL1XYZ", ""]) | st.text(max_size=20)
tags = st.lists(st.lists(tag_values, max_size=3).flatmap(
    lambda rest: tag_names.map(lambda name: [name, *rest])), max_size=6)


@pytest.mark.other_plugins
async def test_random_zap_requests_never_cause_500(fulmen):
    client = await fulmen.start(plugins=["lnurlp", "nostrzaps"])
    shop = await fulmen.wallet("shop")
    r = await client.post("/lnurlp/api/v1/links", headers=shop.admin_headers,
                          json={"description": "d", "min": 1, "max": 10, "zaps": True})
    link = r.json()
    key = PrivateKey()
    seen: list[tuple[str, int]] = []

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(raw=json_values.map(lambda v: json.dumps(v, allow_nan=True)) | tags.flatmap(
        lambda t: st.sampled_from([9734, 1, -1]).map(
            lambda kind: json.dumps(signed(key, kind, t, "hi")))),
        amount=st.sampled_from([1000, 5000, 0, 99_999]))
    def generate(raw: str, amount: int) -> None:
        seen.append((raw, amount))

    generate()
    accepted = 0
    for raw, amount in seen:
        r = await client.get(f"/lnurlp/api/v1/lnurl/cb/{link['id']}",
                             params={"amount": str(amount), "nostr": raw})
        assert r.status_code < 500, (raw, r.text)
        if r.status_code == 200:
            accepted += 1
        else:
            assert r.json()["status"] == "ERROR" and r.json()["reason"]
    rows = await query("SELECT COUNT(*) AS n FROM fulmen_payment WHERE wallet_id = {}", shop.id)
    assert int(rows[0]["n"]) == accepted  # an invoice for each accepted request only


async def test_random_query_strings_on_the_api_never_cause_500(fulmen):
    client = await fulmen.start(plugins=["nostrzaps"])
    w = await fulmen.wallet("w")
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    keys = st.sampled_from(["limit", "status"]) | st.text(max_size=8)
    seen: list[tuple[str, dict[str, Any]]] = []

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(path=st.sampled_from(["/nostrzaps/api/v1/zaps", "/nostrzaps/api/v1/deliveries",
                                 "/nostrzaps/api/v1/pubkey"]),
           params=st.dictionaries(keys, st.text(max_size=12), max_size=3))
    def generate(path: str, params: dict[str, Any]) -> None:
        seen.append((path, params))

    generate()
    for path, params in seen:
        r = await client.get(path, params=params, headers={**w.read_headers, **admin})
        assert r.status_code < 500, (path, params, r.text)
