"""Exchange rates: the price of bitcoin in fiat currencies, and conversions.

- Several providers (`Provider`: a URL and where the price sits in its JSON)
  are asked at once through the host's `SafeHttp`, each with a timeout. The
  rate is the median of those that answered; answers further than
  FULMEN_RATES_MAX_SPREAD from that median are dropped and the median is
  taken again over the rest.
- A rate is cached for FULMEN_RATES_TTL seconds (in this process and, when
  REDIS_URL is set, in Redis, so processes share it). When a refresh fails
  the last rate is used until it is FULMEN_RATES_MAX_AGE seconds old; past
  that every conversion is refused with 503 and a reason. There is never a
  made-up rate.
- FULMEN_RATES_MANUAL pins a price per currency (offline deployments).
- A provider that fails is logged, counted in `/metrics` and left alone for
  a back-off that doubles on each failure (never a tight retry loop).

Rounding (docs/api.md, "Fiat amounts"): prices and amounts are `Decimal`.
fiat -> msat is `amount * 10^11 / price`, rounded half-even to a whole msat;
msat -> fiat is `msat * price / 10^11`, rounded half-even to the currency's
ISO 4217 minor unit (2 for USD, 0 for JPY, 3 for BHD).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from babel import Locale
from babel.numbers import get_currency_precision, get_territory_currencies
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .errors import BadRequest, FulmenError
from .metrics import REGISTRY
from .net import SafeHttp

log = logging.getLogger(__name__)

MSAT_PER_BTC = Decimal(100_000_000_000)
SAT_PER_BTC = Decimal(100_000_000)
MAX_MSAT = 2_100_000_000_000_000_000


class RateUnavailable(FulmenError):
    """No rate young enough to convert with: 503, with the reason."""

    status_code = 503


# --- currencies -----------------------------------------------------------------


@lru_cache(maxsize=1)
def _iso_currencies(today: date) -> frozenset[str]:
    codes: set[str] = set()
    for territory in Locale("en").territories:
        codes.update(get_territory_currencies(str(territory), today))
    return frozenset(c for c in codes if len(c) == 3 and c.isalpha() and c.isupper())


def iso_currencies() -> frozenset[str]:
    """ISO 4217 currencies legal tender somewhere today (CLDR, through babel)."""
    return _iso_currencies(date.today())


def check_currency(value: Any, name: str = "currency") -> str:
    """An ISO 4217 code (any case) as upper case, or a 400 naming the field."""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{name} must be an ISO 4217 currency code such as USD")
    code = value.strip().upper()
    if code not in iso_currencies():
        raise BadRequest(f"{name}: {value!r} is not an ISO 4217 currency code in use")
    return code


def minor_digits(currency: str) -> int:
    """Decimal places of the currency's minor unit (display precision)."""
    return int(get_currency_precision(currency))


def parse_decimal(value: Any, name: str, places: int) -> Decimal:
    """A positive, finite number with at most `places` decimals (JSON number
    or decimal string), exactly as written, or a 400 naming the field."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadRequest(f"{name} must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise BadRequest(f"{name} must be a finite number")
    try:
        # str() of a float is its shortest round-trip text: 0.1 stays 0.1.
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise BadRequest(f"{name} must be a number") from None
    if not amount.is_finite():
        raise BadRequest(f"{name} must be a finite number")
    if amount <= 0:
        raise BadRequest(f"{name} must be greater than zero")
    if amount > Decimal(10) ** 15:
        raise BadRequest(f"{name} is out of range")
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        raise BadRequest(f"{name} has more than {places} decimal places")
    return amount


def parse_fiat(value: Any, currency: str, name: str = "amount") -> Decimal:
    """A fiat amount in `currency`, to at most its minor unit."""
    return parse_decimal(value, name, minor_digits(currency))


# --- providers --------------------------------------------------------------------


@dataclass(frozen=True)
class Provider:
    """A public price API: `url` and `path` may hold `{CURRENCY}` or
    `{currency}`; `path` is dot-separated keys, list indexes, or `*` (the
    first value of an object). `currencies`: those it quotes (None: any)."""

    name: str
    url: str
    path: str
    currencies: frozenset[str] | None = None

    def supports(self, currency: str) -> bool:
        return self.currencies is None or currency in self.currencies

    def url_for(self, currency: str) -> str:
        return self.url.replace("{CURRENCY}", currency).replace("{currency}", currency.lower())

    def parse(self, data: Any, currency: str) -> Decimal:
        """The price of 1 BTC in `currency` from the provider's JSON; ValueError if absent."""
        path = self.path.replace("{CURRENCY}", currency).replace("{currency}", currency.lower())
        node = data
        for step in path.split("."):
            if isinstance(node, dict):
                if step == "*":
                    if not node:
                        raise ValueError("empty object")
                    node = next(iter(node.values()))
                elif step in node:
                    node = node[step]
                else:
                    raise ValueError(f"no {step!r} in the answer")
            elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
                node = node[int(step)]
            else:
                raise ValueError(f"no {step!r} in the answer")
        if isinstance(node, bool) or not isinstance(node, (int, float, str)):
            raise ValueError("the price is not a number")
        try:
            price = Decimal(str(node))
        except InvalidOperation:
            raise ValueError(f"the price {str(node)[:40]!r} is not a number") from None
        if not price.is_finite() or price <= 0:
            raise ValueError(f"the price {price} is not a positive number")
        return price


def _codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: The built-in adapters (FULMEN_RATES_PROVIDERS names them).
BUILTIN_PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider("coinbase", "https://api.coinbase.com/v2/exchange-rates?currency=BTC",
                 "data.rates.{CURRENCY}"),
        Provider("kraken", "https://api.kraken.com/0/public/Ticker?pair=XBT{CURRENCY}",
                 "result.*.c.0", _codes("USD EUR GBP CAD JPY CHF AUD")),
        Provider("bitstamp", "https://www.bitstamp.net/api/v2/ticker/btc{currency}/", "last",
                 _codes("USD EUR GBP")),
        Provider("coingecko",
                 "https://api.coingecko.com/api/v3/simple/price?ids=bitcoin&vs_currencies={currency}",
                 "bitcoin.{currency}"),
        Provider("blockchain", "https://blockchain.info/ticker", "{CURRENCY}.last"),
        Provider("yadio", "https://api.yadio.io/exrates/{CURRENCY}", "BTC"),
    )
}


def providers_from_settings(names: str, custom: str) -> list[Provider]:
    """The built-ins named in `names` (comma-separated), then the custom
    adapters in `custom` (a JSON list of {name, url, path, currencies?})."""
    found: list[Provider] = []
    for name in (n.strip().lower() for n in names.split(",")):
        if not name:
            continue
        if name not in BUILTIN_PROVIDERS:
            raise ValueError(f"FULMEN_RATES_PROVIDERS: unknown provider {name!r}; "
                             f"built-in ones are {', '.join(BUILTIN_PROVIDERS)}")
        found.append(BUILTIN_PROVIDERS[name])
    if custom.strip():
        entries = json.loads(custom)
        if not isinstance(entries, list):
            raise ValueError("FULMEN_RATES_CUSTOM_PROVIDERS must be a JSON list")
        for entry in entries:
            if not isinstance(entry, dict) or not all(
                isinstance(entry.get(k), str) and entry[k] for k in ("name", "url", "path")
            ):
                raise ValueError("each custom rate provider needs a name, url and path")
            currencies = entry.get("currencies")
            found.append(Provider(entry["name"], entry["url"], entry["path"],
                                  frozenset(c.upper() for c in currencies) if currencies else None))
    return found


def manual_from_settings(text: str) -> dict[str, Decimal]:
    """FULMEN_RATES_MANUAL: `USD=65000.5,EUR=60000` (price of 1 BTC)."""
    pinned: dict[str, Decimal] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        code, _, price = part.partition("=")
        pinned[check_currency(code, "FULMEN_RATES_MANUAL")] = parse_decimal(
            price, f"FULMEN_RATES_MANUAL {code}", 12)
    return pinned


# --- quotes and the median ------------------------------------------------------------


@dataclass(frozen=True)
class Quote:
    """The price of 1 BTC in `currency`, when it was fetched and from where."""

    currency: str
    price: Decimal
    fetched_at: float  # Unix seconds
    sources: tuple[str, ...] = ()
    manual: bool = False

    def age(self, now: float | None = None) -> float:
        return 0.0 if self.manual else max(0.0, (now or time.time()) - self.fetched_at)

    @property
    def sats_per_unit(self) -> float:
        """LNbits's `rate`: sats for one unit of the currency."""
        return float(SAT_PER_BTC / self.price)

    def to_msat(self, amount: Decimal, rounding: str = ROUND_HALF_EVEN) -> int:
        """fiat -> msat, half-even to a whole msat (or `rounding`)."""
        return int((amount * MSAT_PER_BTC / self.price).to_integral_value(rounding=rounding))

    def to_fiat(self, msat: int) -> Decimal:
        """msat -> fiat, half-even to the currency's minor unit."""
        step = Decimal(1).scaleb(-minor_digits(self.currency))
        return (Decimal(msat) * self.price / MSAT_PER_BTC).quantize(step, rounding=ROUND_HALF_EVEN)

    def to_json(self) -> dict[str, Any]:
        return {"price": str(self.price), "fetched_at": self.fetched_at,
                "sources": list(self.sources)}

    @classmethod
    def from_json(cls, currency: str, raw: str | bytes) -> Quote:
        data = json.loads(raw)
        return cls(currency, Decimal(data["price"]), float(data["fetched_at"]),
                   tuple(data.get("sources") or ()))


def aggregate(prices: dict[str, Decimal], max_spread: float) -> tuple[Decimal, list[str]]:
    """The median of the answers within `max_spread` (a fraction) of the
    median of all answers; returns it and the providers kept."""
    if not prices:
        raise ValueError("no prices")
    first = statistics.median(prices.values())
    kept = {n: p for n, p in prices.items() if abs(p - first) <= first * Decimal(str(max_spread))}
    if not kept:  # two answers far apart: no median to trust
        raise ValueError("the providers disagree by more than the allowed spread")
    return statistics.median(kept.values()), sorted(kept)


# --- metrics ----------------------------------------------------------------------------

PROVIDER_FAILURES = Counter(
    "fulmen_rate_provider_failures_total", "Exchange-rate provider requests that failed",
    ["provider", "reason"], registry=REGISTRY,
)
PROVIDER_SUCCESSES = Counter(
    "fulmen_rate_provider_successes_total", "Exchange-rate provider requests that answered",
    ["provider"], registry=REGISTRY,
)
#: currency -> Unix time of this process's newest rate (for the age gauge)
_RATE_TIMES: dict[str, float] = {}


class _RateAgeCollector(Collector):
    def collect(self) -> Iterable[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("fulmen_rate_age_seconds",
                                  "Age of the newest exchange rate this process holds",
                                  labels=["currency"])
        now = time.time()
        for currency, at in sorted(_RATE_TIMES.items()):
            gauge.add_metric([currency], max(0.0, now - at))
        yield gauge


REGISTRY.register(_RateAgeCollector())


# --- the service --------------------------------------------------------------------------


@dataclass
class _ProviderState:
    failures: int = 0
    retry_at: float = 0.0  # loop-independent Unix seconds
    last_error: str | None = None


@dataclass
class RateService:
    """`host.rates`. Plugins use `quote`, `to_msat`, `to_fiat`, `check_currency`
    and `parse_fiat`."""

    http: SafeHttp
    providers: list[Provider]
    manual: dict[str, Decimal] = field(default_factory=dict)
    ttl: float = 60.0
    max_age: float = 600.0
    timeout: float = 5.0
    max_spread: float = 0.02
    backoff: float = 30.0
    max_backoff: float = 600.0
    redis_url: str = ""
    redis_prefix: str = "fulmen:rate:"
    _cache: dict[str, Quote] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _states: dict[str, _ProviderState] = field(default_factory=dict)
    _redis: Any = None

    @classmethod
    def from_settings(cls, settings: Any, http: SafeHttp) -> RateService:
        return cls(
            http=http,
            providers=providers_from_settings(settings.rates_providers,
                                              settings.rates_custom_providers),
            manual=manual_from_settings(settings.rates_manual),
            ttl=settings.rates_ttl, max_age=settings.rates_max_age,
            timeout=settings.rates_timeout, max_spread=settings.rates_max_spread,
            backoff=settings.rates_failure_backoff, redis_url=settings.redis_url,
            redis_prefix=settings.rates_redis_prefix,
        )

    # public helpers
    check_currency = staticmethod(check_currency)
    parse_fiat = staticmethod(parse_fiat)
    minor_digits = staticmethod(minor_digits)

    def currencies(self) -> list[str]:
        return sorted(iso_currencies())

    async def to_msat(self, amount: Decimal | int | str, currency: str) -> int:
        """fiat -> msat at the current rate (half-even); 503 when there is none."""
        quote = await self.quote(currency)
        return quote.to_msat(Decimal(str(amount)))

    async def to_fiat(self, msat: int, currency: str) -> Decimal:
        quote = await self.quote(currency)
        return quote.to_fiat(msat)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    def provider_states(self) -> dict[str, dict[str, Any]]:
        return {n: {"failures": s.failures, "retry_at": s.retry_at, "last_error": s.last_error}
                for n, s in self._states.items()}

    async def quote(self, currency: str) -> Quote:
        """The rate for `currency`: pinned, cached, or fetched now. Raises
        RateUnavailable (503) when no rate younger than max_age exists."""
        currency = check_currency(currency)
        if currency in self.manual:
            return Quote(currency, self.manual[currency], time.time(), ("manual",), manual=True)
        cached = self._cache.get(currency)
        if cached and cached.age() < self.ttl:
            return cached
        lock = self._locks.setdefault(currency, asyncio.Lock())
        async with lock:
            cached = self._cache.get(currency)
            if cached and cached.age() < self.ttl:
                return cached
            shared = await self._read_shared(currency)
            if shared and (not cached or shared.fetched_at > cached.fetched_at):
                self._remember(shared)
                cached = shared
                if shared.age() < self.ttl:
                    return shared
            if not await self._claim_refresh(currency):
                # Another process is fetching this rate now: use what it stores.
                shared = await self._wait_for_shared(currency)
                if shared is not None:
                    self._remember(shared)
                    return shared
            try:
                fresh = await self._fetch(currency)
            except ValueError as exc:
                await self._release_refresh(currency)
                if cached and cached.age() < self.max_age:
                    log.warning("rate %s: refresh failed (%s); using the rate of %.0f s ago",
                                currency, exc, cached.age())
                    return cached
                age = f"the last rate is {cached.age():.0f} s old" if cached else "no earlier rate"
                raise RateUnavailable(
                    f"No exchange rate for {currency}: {exc}; {age} and rates older than "
                    f"{self.max_age:.0f} s are not used. Try again later."
                ) from None
            self._remember(fresh)
            await self._write_shared(fresh)
            return fresh

    def _remember(self, quote: Quote) -> None:
        self._cache[quote.currency] = quote
        _RATE_TIMES[quote.currency] = max(_RATE_TIMES.get(quote.currency, 0.0), quote.fetched_at)

    async def _fetch(self, currency: str) -> Quote:
        now = time.time()
        asked = [p for p in self.providers if p.supports(currency)
                 and self._states.setdefault(p.name, _ProviderState()).retry_at <= now]
        if not asked:
            waiting = [p.name for p in self.providers if p.supports(currency)]
            raise ValueError("every provider of this currency is failing and waits for its retry"
                             if waiting else "no provider quotes this currency")
        answers = await asyncio.gather(*(self._ask(p, currency) for p in asked))
        prices = {p.name: price for p, price in zip(asked, answers) if price is not None}
        if not prices:
            raise ValueError(f"no provider answered ({', '.join(p.name for p in asked)})")
        try:
            price, kept = aggregate(prices, self.max_spread)
        except ValueError as exc:
            raise ValueError(f"{exc}: {', '.join(f'{n}={p}' for n, p in prices.items())}") from None
        for name in set(prices) - set(kept):
            self._failed(name, "outlier", f"{prices[name]} is more than {self.max_spread:.0%} "
                                          f"from the median")
        return Quote(currency, price, time.time(), tuple(kept))

    async def _ask(self, provider: Provider, currency: str) -> Decimal | None:
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.http.request("GET", provider.url_for(currency))
            if response.status_code != 200:
                self._failed(provider.name, "http", f"HTTP {response.status_code}")
                return None
            try:
                data = json.loads(response.content)
            except ValueError:
                self._failed(provider.name, "garbage", "the answer is not JSON")
                return None
            price = provider.parse(data, currency)
        except TimeoutError:
            self._failed(provider.name, "timeout", f"no answer within {self.timeout} s")
            return None
        except ValueError as exc:
            self._failed(provider.name, "garbage", str(exc))
            return None
        except FulmenError as exc:  # SafeHttp: refused URL, connection failed, too large
            reason = "timeout" if "did not answer" in exc.detail else "unreachable"
            self._failed(provider.name, reason, exc.detail)
            return None
        state = self._states.setdefault(provider.name, _ProviderState())
        state.failures, state.retry_at, state.last_error = 0, 0.0, None
        PROVIDER_SUCCESSES.labels(provider.name).inc()
        return price

    def _failed(self, name: str, reason: str, detail: str) -> None:
        state = self._states.setdefault(name, _ProviderState())
        state.failures += 1
        wait = min(self.max_backoff, self.backoff * 2 ** (state.failures - 1))
        state.retry_at = time.time() + wait
        state.last_error = f"{reason}: {detail}"
        PROVIDER_FAILURES.labels(name, reason).inc()
        log.warning("rate provider %s failed (%s: %s); not asked again for %.0f s",
                    name, reason, detail, wait)

    # --- shared cache (Redis) ------------------------------------------------------------

    async def _client(self) -> Any:
        if not self.redis_url:
            return None
        if self._redis is None:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(self.redis_url, socket_timeout=2,
                                            socket_connect_timeout=2)
        return self._redis

    async def _read_shared(self, currency: str) -> Quote | None:
        try:
            client = await self._client()
            if client is None:
                return None
            raw = await client.get(self.redis_prefix + currency)
            return Quote.from_json(currency, raw) if raw else None
        except Exception as exc:  # Redis down: each process fetches for itself
            log.warning("shared rate cache unavailable: %r", exc)
            return None

    async def _claim_refresh(self, currency: str) -> bool:
        """One process at a time refreshes a rate (a short Redis lease);
        True without Redis, or when Redis cannot be reached."""
        try:
            client = await self._client()
            if client is None:
                return True
            lease_ms = int((self.timeout + 1) * 1000)
            return bool(await client.set(self.redis_prefix + "refresh:" + currency, "1",
                                         nx=True, px=lease_ms))
        except Exception as exc:
            log.warning("shared rate cache unavailable: %r", exc)
            return True

    async def _wait_for_shared(self, currency: str) -> Quote | None:
        """The rate the refreshing process stores, if it does within its lease."""
        deadline = time.monotonic() + self.timeout + 1
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            shared = await self._read_shared(currency)
            if shared is not None and shared.age() < self.ttl:
                return shared
            try:
                client = await self._client()
                if not await client.exists(self.redis_prefix + "refresh:" + currency):
                    return None  # it gave up (its providers failed): fetch here
            except Exception as exc:
                log.warning("shared rate cache unavailable: %r", exc)
                return None
        return None

    async def _release_refresh(self, currency: str) -> None:
        try:
            client = await self._client()
            if client is not None:
                await client.delete(self.redis_prefix + "refresh:" + currency)
        except Exception as exc:
            log.warning("shared rate cache unavailable: %r", exc)

    async def _write_shared(self, quote: Quote) -> None:
        try:
            client = await self._client()
            if client is not None:
                await client.set(self.redis_prefix + quote.currency, json.dumps(quote.to_json()),
                                 ex=max(1, int(self.max_age)))
        except Exception as exc:
            log.warning("shared rate cache unavailable: %r", exc)
        await self._release_refresh(quote.currency)
