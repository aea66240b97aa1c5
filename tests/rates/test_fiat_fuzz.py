"""Random input at the fiat endpoints: never a 500, and nothing priced without a rate."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

codes = st.sampled_from(["USD", "usd", "EUR", "JPY", "sat", "sats", "msat", "XYZ", "", "US D",
                         "BTC", "usd,eur", "USD,XYZ"])
numbers = (st.integers(min_value=-10**25, max_value=10**25) | st.floats(allow_nan=True)
           | st.decimals(allow_nan=True).map(str) | st.text(max_size=12))
values = codes | numbers | st.none() | st.booleans() | st.lists(numbers, max_size=2)
fields = st.sampled_from(["amount", "unit", "from", "from_", "to", "currency", "out", "memo"])
bodies = st.dictionaries(fields, values, max_size=5) | values

ENDPOINTS = [
    ("POST", "/api/v1/conversion", None),
    ("POST", "/api/v1/payments", "invoice"),
    ("PATCH", "/api/v1/wallet", "admin"),
]


async def test_random_fiat_bodies_never_cause_500(fulmen: Any) -> None:
    client = await fulmen.start(rates_manual="USD=50000,EUR=45000,JPY=7000000")
    alice = await fulmen.wallet("alice")
    headers = {"admin": alice.admin_headers, "invoice": alice.invoice_headers, None: {}}
    seen: list[tuple[tuple[str, str, str | None], Any]] = []

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(endpoint=st.sampled_from(ENDPOINTS), body=bodies)
    def generate(endpoint: tuple[str, str, str | None], body: Any) -> None:
        seen.append((endpoint, body))

    generate()
    for (method, path, auth), body in seen:
        r = await client.request(method, path,
                                 headers={**headers[auth], "content-type": "application/json"},
                                 content=json.dumps(body, allow_nan=True, default=str))
        assert r.status_code < 500, (method, path, body, r.text)
        if r.status_code >= 400:
            assert "detail" in r.json(), r.text
    for code in ("%20", "U%00SD", "usd.", "x" * 300, "EURO"):
        r = await client.get(f"/api/v1/rate/{code}")
        assert r.status_code in (400, 404), (code, r.text)
    assert await fulmen.host.wallets.audit() == []
