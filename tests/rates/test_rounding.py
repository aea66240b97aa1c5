"""The rounding rule: half-even, to a whole msat (fiat -> msat) and to the
currency's ISO 4217 minor unit (msat -> fiat)."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from fulmen.errors import BadRequest
from fulmen.rates import Quote, aggregate, minor_digits, parse_fiat
from hypothesis import given
from hypothesis import strategies as st


def quote(currency: str, price: str) -> Quote:
    return Quote(currency, Decimal(price), time.time())


def test_fiat_to_msat_is_half_even() -> None:
    # 2 * 10^11 per BTC: one unit is exactly 0.5 msat.
    q = quote("USD", "200000000000")
    assert q.to_msat(Decimal(1)) == 0  # 0.5 -> 0 (even)
    assert q.to_msat(Decimal(3)) == 2  # 1.5 -> 2 (even)
    assert q.to_msat(Decimal(5)) == 2  # 2.5 -> 2 (even)
    q = quote("USD", "30000")
    assert q.to_msat(Decimal("0.01")) == 33333  # 33333.33...
    assert q.to_msat(Decimal("0.02")) == 66667  # 66666.66...


def test_msat_to_fiat_is_half_even_to_the_minor_unit() -> None:
    usd = quote("USD", "50000")
    assert usd.to_fiat(10_000) == Decimal("0.00")  # 0.005 -> 0.00
    assert usd.to_fiat(30_000) == Decimal("0.02")  # 0.015 -> 0.02
    assert usd.to_fiat(50_000) == Decimal("0.02")  # 0.025 -> 0.02
    assert str(usd.to_fiat(1_000_000)) == "0.50"
    jpy = quote("JPY", "10000000")
    assert jpy.to_fiat(5_000) == Decimal("0")  # 0.5 JPY -> 0
    assert jpy.to_fiat(15_000) == Decimal("2")  # 1.5 JPY -> 2
    assert str(jpy.to_fiat(100_000)) == "10"
    bhd = quote("BHD", "40000")
    assert str(bhd.to_fiat(1_000_000)) == "0.400"
    assert bhd.to_fiat(1_250) == Decimal("0.000")  # 0.0005 -> 0.000


def test_display_precision_per_currency() -> None:
    assert minor_digits("USD") == 2
    assert minor_digits("EUR") == 2
    assert minor_digits("JPY") == 0
    assert minor_digits("KRW") == 0
    assert minor_digits("BHD") == 3
    assert minor_digits("KWD") == 3


def test_amount_precision_follows_the_currency() -> None:
    assert parse_fiat("12.34", "USD") == Decimal("12.34")
    assert parse_fiat(12.30, "USD") == Decimal("12.3")
    assert parse_fiat("1.000", "JPY") == Decimal(1)  # trailing zeros are not decimals
    assert parse_fiat("0.125", "BHD") == Decimal("0.125")
    for value, currency in (("12.345", "USD"), ("1.5", "JPY"), ("0.0001", "BHD")):
        with pytest.raises(BadRequest, match="decimal places"):
            parse_fiat(value, currency)


@given(cents=st.integers(min_value=1, max_value=10**9),
       price=st.integers(min_value=1_000, max_value=10_000_000))
def test_cents_survive_a_round_trip(cents: int, price: int) -> None:
    """Up to 10^7 per BTC a cent is at least 100 msat, so fiat -> msat -> fiat is exact."""
    q = quote("USD", str(price))
    amount = Decimal(cents) / 100
    assert q.to_fiat(q.to_msat(amount)) == amount


@given(msat=st.integers(min_value=0, max_value=10**15))
def test_msat_to_fiat_is_within_half_a_minor_unit(msat: int) -> None:
    q = quote("EUR", "87654.32")
    exact = Decimal(msat) * q.price / Decimal(10**11)
    assert abs(q.to_fiat(msat) - exact) <= Decimal("0.005")


def test_median_and_spread() -> None:
    d = Decimal
    assert aggregate({"a": d(1), "b": d(2), "c": d(3)}, 1.0) == (d(2), ["a", "b", "c"])
    price, kept = aggregate({"a": d(100), "b": d(101), "c": d(99), "d": d(150)}, 0.02)
    assert price == d(100) and kept == ["a", "b", "c"]
    with pytest.raises(ValueError):
        aggregate({"a": d(100), "b": d(200)}, 0.02)
    with pytest.raises(ValueError):
        aggregate({}, 0.02)
