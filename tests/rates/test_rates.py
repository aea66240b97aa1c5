"""The rates service against local fake providers: median, outliers, failures,
cache, staleness, manual rates, metrics, and the fiat API on top."""

from __future__ import annotations

import asyncio
import re
import time
from decimal import Decimal
from typing import Any

import pytest
from fulmen.rates import BUILTIN_PROVIDERS
from rate_fakes import FakeProviders, closed_port_url, settings_for


@pytest.fixture
def fakes() -> Any:
    with FakeProviders() as f:
        yield f


def metric(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.rsplit(" ", 1)[1])
    return None


# --- the real adapters, on recorded-shape answers ---------------------------------------

RECORDED: dict[str, Any] = {
    "coinbase": {"data": {"currency": "BTC", "rates": {"USD": "97123.455", "EUR": "91000.1"}}},
    "kraken": {"error": [], "result": {"XXBTZUSD": {
        "a": ["97120.10000", "1", "1.000"], "b": ["97120.00000", "2", "2.000"],
        "c": ["97123.40000", "0.00100000"], "v": ["1", "2"], "o": "96000.0"}}},
    "bitstamp": {"timestamp": "1764669600", "open": "96000", "high": "98000", "low": "95500",
                 "last": "97123", "volume": "1234.5", "bid": "97120", "ask": "97125"},
    "coingecko": {"bitcoin": {"usd": 97123.5}},
    "blockchain": {"USD": {"15m": 97123.2, "last": 97123.2, "buy": 97123.2, "sell": 97123.2,
                           "symbol": "USD"},
                   "EUR": {"15m": 91000.0, "last": 91000.0, "buy": 91000.0, "sell": 91000.0,
                           "symbol": "EUR"}},
    "yadio": {"BTC": 97123.1, "USD": 1, "base": "USD", "timestamp": 1764669600000},
}
EXPECTED = {"coinbase": "97123.455", "kraken": "97123.40000", "bitstamp": "97123",
            "coingecko": "97123.5", "blockchain": "97123.2", "yadio": "97123.1"}


def test_every_builtin_adapter_parses_its_recorded_answer() -> None:
    assert set(RECORDED) == set(BUILTIN_PROVIDERS)
    for name, provider in BUILTIN_PROVIDERS.items():
        assert provider.parse(RECORDED[name], "USD") == Decimal(EXPECTED[name]), name
        assert provider.url_for("USD").startswith("https://")
    with pytest.raises(ValueError):
        BUILTIN_PROVIDERS["coinbase"].parse({"data": {"rates": {}}}, "USD")
    with pytest.raises(ValueError):
        BUILTIN_PROVIDERS["bitstamp"].parse({"last": "-3"}, "USD")
    with pytest.raises(ValueError):
        BUILTIN_PROVIDERS["coingecko"].parse({"bitcoin": {"usd": "NaN"}}, "USD")
    assert BUILTIN_PROVIDERS["kraken"].url_for("EUR").endswith("pair=XBTEUR")
    assert BUILTIN_PROVIDERS["bitstamp"].url_for("EUR").endswith("/btceur/")
    assert not BUILTIN_PROVIDERS["bitstamp"].supports("JPY")


async def test_builtin_adapters_over_http_give_the_median(
    fulmen: Any, fakes: FakeProviders
) -> None:
    """The real adapters' JSON paths, fetched from fake servers answering in their shape."""
    providers = []
    for name in ("coinbase", "kraken", "bitstamp", "coingecko", "blockchain"):
        fakes.json(f"/{name}", RECORDED[name])
        providers.append(fakes.provider(name + "-fake", f"/{name}", BUILTIN_PROVIDERS[name].path))
    c = await fulmen.start(**settings_for(providers))
    r = await c.get("/api/v1/rate/USD")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["price"] == 97123.4  # median of 97123, 97123.2, 97123.4, 97123.455, 97123.5
    assert body["rate"] == pytest.approx(1e8 / 97123.4)
    assert len(body["sources"]) == 5


# --- median, outliers, failures -----------------------------------------------------------


async def test_median_drops_the_outlier(fulmen: Any, fakes: FakeProviders) -> None:
    fakes.price("/a", 50000)
    fakes.price("/b", 50100)
    fakes.price("/c", 49900)
    fakes.price("/wrong", 90000)
    providers = [fakes.provider(n, f"/{n}") for n in ("a", "b", "c")]
    providers.append(fakes.provider("med-wrong", "/wrong"))
    c = await fulmen.start(**settings_for(providers))
    r = await c.get("/api/v1/rate/usd")
    assert r.status_code == 200, r.text
    assert r.json()["price"] == 50000.0
    assert sorted(r.json()["sources"]) == ["a", "b", "c"]
    text = (await c.get("/metrics")).text
    assert metric(text, "fulmen_rate_provider_failures_total", provider="med-wrong",
                  reason="outlier") == 1.0


async def test_two_answers_far_apart_are_not_averaged(fulmen: Any, fakes: FakeProviders) -> None:
    fakes.price("/x", 50000)
    fakes.price("/y", 70000)
    c = await fulmen.start(**settings_for([fakes.provider("far-x", "/x"),
                                           fakes.provider("far-y", "/y")]))
    r = await c.get("/api/v1/rate/USD")
    assert r.status_code == 503
    assert "disagree" in r.json()["detail"]


async def test_slow_down_and_garbage_providers_are_skipped_counted_and_not_retried(
    fulmen: Any, fakes: FakeProviders
) -> None:
    fakes.price("/ok", 61000)
    fakes.price("/ok2", 61010)
    fakes.price("/slow", 61000, delay=3)
    fakes.down("/http500")
    fakes.raw("/garbage", b"<html>rate limited</html>")
    fakes.json("/nofield", {"data": {"rates": {"GBP": "1"}}})
    providers = [
        fakes.provider("f-ok", "/ok"), fakes.provider("f-ok2", "/ok2"),
        fakes.provider("f-slow", "/slow"), fakes.provider("f-500", "/http500"),
        fakes.provider("f-garbage", "/garbage"), fakes.provider("f-nofield", "/nofield"),
        {"name": "f-down", "url": closed_port_url(), "path": "price"},
    ]
    c = await fulmen.start(**settings_for(providers, rates_timeout=0.5, rates_ttl=0.2))
    started = time.monotonic()
    r = await c.get("/api/v1/rate/USD")
    took = time.monotonic() - started
    assert r.status_code == 200, r.text
    assert r.json()["price"] == 61005.0
    assert sorted(r.json()["sources"]) == ["f-ok", "f-ok2"]
    assert took < 2.5, took  # the slow one was not waited for
    text = (await c.get("/metrics")).text
    for name, reason in (("f-slow", "timeout"), ("f-500", "http"), ("f-garbage", "garbage"),
                         ("f-nofield", "garbage"), ("f-down", "unreachable")):
        assert metric(text, "fulmen_rate_provider_failures_total", provider=name,
                      reason=reason) == 1.0, (name, text)
    assert metric(text, "fulmen_rate_provider_successes_total", provider="f-ok") == 1.0
    assert metric(text, "fulmen_rate_age_seconds", currency="USD") is not None
    # Past the TTL the rate is fetched again, but not from the failed providers (back-off).
    await asyncio.sleep(0.3)
    r = await c.get("/api/v1/rate/USD")
    assert r.status_code == 200
    assert fakes.hits["/ok"] == 2
    assert fakes.hits["/http500"] == 1 and fakes.hits["/garbage"] == 1
    assert fulmen.host.rates.provider_states()["f-500"]["failures"] == 1


# --- cache, staleness, manual ---------------------------------------------------------------


async def test_rate_is_cached_for_the_ttl(fulmen: Any, fakes: FakeProviders) -> None:
    fakes.price("/p", 40000)
    c = await fulmen.start(**settings_for([fakes.provider("ttl-p", "/p")], rates_ttl=1.0))
    assert (await c.get("/api/v1/rate/USD")).json()["price"] == 40000.0
    fakes.price("/p", 41000)
    results = await asyncio.gather(*(c.get("/api/v1/rate/USD") for _ in range(10)))
    assert {r.json()["price"] for r in results} == {40000.0}
    assert fakes.hits["/p"] == 1
    await asyncio.sleep(1.1)
    assert (await c.get("/api/v1/rate/USD")).json()["price"] == 41000.0
    assert fakes.hits["/p"] == 2


async def test_stale_rate_is_refused_with_a_reason(fulmen: Any, fakes: FakeProviders) -> None:
    fakes.price("/s", 30000)
    c = await fulmen.start(**settings_for([fakes.provider("stale-s", "/s")], rates_ttl=0.2,
                                          rates_max_age=1.0, rates_failure_backoff=0.1))
    w = await fulmen.wallet()
    r = await c.patch("/api/v1/wallet", headers=w.admin_headers, json={"currency": "USD"})
    assert r.status_code == 200, r.text
    assert (await c.get("/api/v1/rate/USD")).status_code == 200
    fakes.down("/s")
    await asyncio.sleep(0.3)
    # Past the TTL, the refresh fails: the last rate is still young enough.
    r = await c.get("/api/v1/rate/USD")
    assert r.status_code == 200
    assert r.json()["price"] == 30000.0 and r.json()["age"] >= 0.2
    await asyncio.sleep(0.9)
    r = await c.get("/api/v1/rate/USD")
    assert r.status_code == 503
    detail = r.json()["detail"]
    assert "USD" in detail and "older than 1 s" in detail and "HTTP 500" not in detail
    r = await c.post("/api/v1/payments", headers=w.invoice_headers,
                     json={"out": False, "amount": 5, "unit": "USD"})
    assert r.status_code == 503 and "No exchange rate for USD" in r.json()["detail"]
    r = await c.post("/api/v1/conversion", json={"from": "sat", "amount": 100, "to": "USD"})
    assert r.status_code == 503
    # The balance still answers, with the reason instead of a fiat amount.
    r = await c.get("/api/v1/wallet", headers=w.read_headers)
    assert r.status_code == 200
    assert r.json()["fiat"]["amount"] is None and "USD" in r.json()["fiat"]["error"]
    # The provider comes back: so does the rate.
    fakes.price("/s", 31000)
    for _ in range(50):  # once its back-off (0.1 s, doubling) is over
        r = await c.get("/api/v1/rate/USD")
        if r.status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert r.status_code == 200 and r.json()["price"] == 31000.0


async def test_no_provider_no_rate_never_one_sat_per_unit(fulmen: Any) -> None:
    c = await fulmen.start(rates_providers="", rates_custom_providers="")
    w = await fulmen.wallet()
    r = await c.post("/api/v1/payments", headers=w.invoice_headers,
                     json={"out": False, "amount": 5, "unit": "EUR"})
    assert r.status_code == 503
    assert "no provider" in r.json()["detail"]


async def test_manual_rate_wins_and_asks_nobody(fulmen: Any, fakes: FakeProviders) -> None:
    fakes.price("/m", 50000)
    c = await fulmen.start(**settings_for([fakes.provider("man-m", "/m")],
                                          rates_manual="USD=40000, eur=36000.5"))
    r = await c.get("/api/v1/rate/USD")
    assert r.json()["price"] == 40000.0 and r.json()["manual"] is True
    assert r.json()["rate"] == 2500.0
    assert (await c.get("/api/v1/rate/EUR")).json()["price"] == 36000.5
    assert fakes.hits.get("/m", 0) == 0
    # A currency without a pinned rate still goes to the providers.
    assert (await c.get("/api/v1/rate/GBP")).status_code == 503  # the fake quotes USD/EUR only
    assert fakes.hits["/m"] == 1


# --- the fiat API ------------------------------------------------------------------------------


async def test_currencies_rate_and_conversion(fulmen: Any) -> None:
    c = await fulmen.start(rates_providers="", rates_manual="USD=50000,JPY=7500000,BHD=20000")
    codes = (await c.get("/api/v1/currencies")).json()
    assert "USD" in codes and "EUR" in codes and "JPY" in codes
    assert "BTC" not in codes and "XAU" not in codes
    assert all(re.fullmatch("[A-Z]{3}", code) for code in codes)
    r = await c.post("/api/v1/conversion",
                     json={"from": "sat", "amount": 1000, "to": "usd,JPY,BHD"})
    assert r.status_code == 200, r.text
    assert r.json() == {"sats": 1000, "msat": 1_000_000, "BTC": 1e-05, "USD": 0.5, "JPY": 75.0,
                        "BHD": 0.2}
    r = await c.post("/api/v1/conversion", json={"from": "USD", "amount": 12.34, "to": "sat"})
    assert r.json() == {"USD": 12.34, "sats": 24680, "msat": 24_680_000, "BTC": 0.0002468}
    r = await c.post("/api/v1/conversion", json={"from_": "jpy", "amount": 1, "to": "sat"})
    assert r.json()["msat"] == 13333  # 10^11 / 7.5e6 = 13333.33 -> 13333 msat
    assert r.json()["sats"] == 13


async def test_fiat_invoice_fixes_msat_and_records_the_rate(fulmen: Any) -> None:
    c = await fulmen.start(rates_providers="", rates_manual="USD=60000")
    w = await fulmen.wallet()
    r = await c.post("/api/v1/payments", headers=w.invoice_headers,
                     json={"out": False, "amount": 0.99, "unit": "USD", "memo": "tea",
                           "extra": {"order": 7, "fiat_amount": 1000}})
    assert r.status_code == 201, r.text
    payment = r.json()
    # 0.99 * 10^11 / 60000 = 1,650,000 msat
    assert payment["amount"] == 1_650_000
    assert payment["extra"]["fiat_amount"] == 0.99
    assert payment["extra"]["fiat_currency"] == "USD"
    assert payment["extra"]["fiat_rate"] == pytest.approx(1e8 / 60000)
    assert payment["extra"]["order"] == 7
    # The rate changes: the invoice does not.
    fulmen.host.rates.manual["USD"] = Decimal(30000)
    r = await c.get(f"/api/v1/payments/{payment['payment_hash']}", headers=w.read_headers)
    assert r.json()["details"]["amount"] == 1_650_000
    assert r.json()["details"]["extra"]["fiat_amount"] == 0.99
    # The invoice really asks for that many msat.
    import bolt11

    assert bolt11.decode(payment["bolt11"]).amount_msat == 1_650_000


async def test_wallet_display_currency_and_fiat_balance(fulmen: Any) -> None:
    c = await fulmen.start(rates_providers="", rates_manual="EUR=80000")
    w = await fulmen.wallet(sats=12345)
    r = await c.get("/api/v1/wallet", headers=w.read_headers)
    assert "fiat" not in r.json()
    r = await c.patch("/api/v1/wallet", headers=w.admin_headers, json={"currency": "eur"})
    assert r.status_code == 200 and r.json()["currency"] == "EUR"
    r = await c.get("/api/v1/wallet", headers=w.read_headers)
    fiat = r.json()["fiat"]
    # 12,345,000 msat * 80000 / 10^11 = 9.876 -> 9.88 EUR (half-even to cents)
    assert fiat["currency"] == "EUR" and fiat["amount"] == 9.88
    assert fiat["rate_age"] == 0.0 and fiat["manual"] is True
    r = await c.patch("/api/v1/wallet", headers=w.admin_headers, json={"currency": ""})
    assert r.status_code == 200 and r.json()["currency"] is None


async def test_concurrent_requests_on_a_cold_cache_ask_each_provider_once(
    fulmen: Any, fakes: FakeProviders
) -> None:
    fakes.price("/cold", 45000, delay=0.3)
    c = await fulmen.start(**settings_for([fakes.provider("cold", "/cold")]))
    results = await asyncio.gather(*(c.get("/api/v1/rate/EUR") for _ in range(20)))
    assert {r.json()["price"] for r in results} == {45000.0}
    assert fakes.hits["/cold"] == 1
