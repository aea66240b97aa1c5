"""Settings, read once from the environment and `.env`.

Every setting is `FULMEN_<NAME>` except the conventional `DATABASE_URL` and
`REDIS_URL`. The table in docs/operations.md lists them all; keep it in step.

`Settings` here holds what the host itself needs. Three groups keep their
own classes beside the code they tune: `EventSettings` (fulmen/events.py),
`WebhookSettings` (fulmen/webhooks.py) and each funding backend's (fulmen/
funding/). All are read in one place, when the host is built
(`fulmen/host.py` and `fulmen.funding.make_funding_source`), and handed to
the services; no service reads the environment itself.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from .vault import VaultBackedSettings


class Settings(VaultBackedSettings):
    model_config = SettingsConfigDict(
        env_prefix="FULMEN_", env_file=".env", extra="ignore", populate_by_name=True
    )

    # Where the SQLite database, node key and admin key file live.
    data_dir: Path = Path("./data")
    host: str = "127.0.0.1"
    port: int = 5001
    # Public base URL used in LNURLs and links; derived from the request when empty.
    base_url: str = ""
    # Comma-separated Host names the server answers to (e.g. "pay.example.com,*.example.com");
    # empty = any. Set it (or base_url) on a public server: LNURLs name the request's host.
    allowed_hosts: str = ""

    database_url: str = Field(
        default="", validation_alias=AliasChoices("DATABASE_URL", "FULMEN_DATABASE_URL")
    )
    redis_url: str = Field(
        default="", validation_alias=AliasChoices("REDIS_URL", "FULMEN_REDIS_URL")
    )
    db_pool_size: int = 10
    # Connections opened at start: a burst of requests then finds them ready
    # instead of opening (and preparing statements on) new ones.
    db_pool_min_size: int = 10

    # Admin bearer credential; generated into data_dir/admin_key on first start when empty.
    admin_key: str = ""
    allow_signup: bool = True

    funding_source: str = "fake"
    # Optional secondary source that takes new invoices while the primary is down.
    funding_fallback: str = ""
    # FakeWallet: hex private key of the node; generated into data_dir/node_key when empty.
    fake_node_key: str = ""
    network: str = "bc"  # bolt11 currency prefix: bc, tb, bcrt, tbs

    # Fee reserve for external payments: max(min_msat, percent of amount).
    fee_reserve_min_msat: int = 2000
    fee_reserve_percent: float = 1.0
    max_invoice_msat: int = 10_000_000_000  # 0.1 BTC
    default_invoice_expiry: int = 3600

    # Plugins: comma-separated allow-list (empty = every installed plugin).
    plugins: str = ""
    plugins_enabled_by_default: bool = True
    # A plugin that fails to load, migrate or start stops the host (for CI).
    plugins_strict: bool = False
    # Installing plugins while the host runs (`fulmen plugin install`, the admin API):
    # distribution names or globs allowed (empty = installing is off), folders local
    # wheels and projects may come from, and a package index (empty = none: --no-index).
    plugin_install_allow: str = ""
    plugin_install_paths: str = ""
    plugin_index_url: str = ""
    # Seconds between checks of the installed plugins; a change restarts the worker gracefully.
    plugin_rescan_interval: float = 2.0
    # Seconds after which a silent process leaves the process list (fulmen_process).
    process_stale_after: float = 30.0

    # Outbound HTTP (LNURL, webhooks, rates).
    http_timeout: float = 10.0
    http_max_response_bytes: int = 1_000_000
    allow_private_addresses: bool = False
    allow_insecure_http_hosts: str = ""  # comma-separated hosts allowed over plain http

    # Exchange rates (fulmen/rates.py, docs/operations.md "Exchange rates").
    rates_providers: str = "coinbase,kraken,bitstamp,coingecko,blockchain"
    rates_custom_providers: str = ""  # JSON list of {name, url, path, currencies?}
    rates_manual: str = ""  # pinned prices of 1 BTC: "USD=65000,EUR=60000"
    rates_ttl: float = 60.0
    rates_max_age: float = 600.0  # older rates are never used: 503
    rates_timeout: float = 5.0
    rates_max_spread: float = 0.02  # answers further than this from the median are dropped
    rates_failure_backoff: float = 30.0  # first wait after a provider fails; doubles, <= 600 s
    rates_redis_prefix: str = "fulmen:rate:"
    # Rate limits per client address and per key (`limits` notation, ";" between
    # several; empty = none), shared through Redis when REDIS_URL is set.
    rate_limits_enabled: bool = True
    rate_limit_signup: str = "30/minute;300/day"
    rate_limit_invoice: str = "300/minute"
    rate_limit_payment: str = "120/minute"
    rate_limit_lnurl_callback: str = "120/minute"
    rate_limit_withdraw_claim: str = "30/minute"
    # Open WebSocket/SSE streams per client address and per key, in each process (0 = no cap).
    max_streams_per_address: int = 50
    max_streams_per_key: int = 20
    # Server: seconds a client has to send a request's headers, and an idle
    # keep-alive connection is kept (slow clients cannot hold connections open).
    header_timeout: float = 10.0
    keep_alive_timeout: int = 5
    # Comma-separated proxy addresses/networks whose X-Forwarded-For is believed.
    trusted_proxies: str = ""

    reconcile_interval: float = 30.0
    # PostgreSQL: seconds an X-Api-Key lookup is remembered in memory (0 = always
    # ask the database). Rotation and deletion reach every process at once
    # (LISTEN/NOTIFY). See fulmen/keycache.py.
    key_cache_seconds: float = Field(default=10.0, ge=0, le=300)
    # Seconds between checks of pending incoming invoices with the funding source.
    invoice_check_interval: float = 60.0
    log_level: str = "INFO"

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "fulmen.sqlite3"

    @property
    def uses_postgres(self) -> bool:
        return self.database_url.startswith(("postgres://", "postgresql://"))

    def plugin_allow_list(self) -> set[str] | None:
        names = {p.strip() for p in self.plugins.split(",") if p.strip()}
        return names or None

    def fee_reserve(self, amount_msat: int) -> int:
        return max(self.fee_reserve_min_msat, int(amount_msat * self.fee_reserve_percent / 100))
