"""The types of the plugin contract, beside the hooks in hookspecs.py.

`PluginHost` is what a plugin's hooks and route handlers receive as `host`:
the host's services a plugin may use, bound to that plugin, and nothing
else (no admin key, no plugin manager, no other plugin's state). Each
plugin gets its own. `PaymentFilter` is how a plugin narrows the payment
hooks it is sent (the `payment_filter` hook).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import httpx
    from litestar import Request

    from .events import HashSubscription, WalletSubscription
    from .models import InvoiceRequest, Payment, Wallet, WalletAuth
    from .rates import RateService


@dataclass(frozen=True)
class PaymentFilter:
    """Which payments a plugin's `on_invoice_paid` / `on_payment_sent` /
    `on_payment_failed` hooks get. Each delivery is a row written in the
    payment's transaction, so saying what you need keeps payments fast.

    - `tags`: only payments whose `tag` is one of these (None: any tag);
    - `watched_wallets_only`: only payments of wallets the plugin watches
      (`await host.watch_wallet(wallet_id)`, in the transaction that changes
      what the plugin keeps for that wallet).

    Both may be given: a payment must pass both.
    """

    tags: frozenset[str] | None = None
    watched_wallets_only: bool = False

    def takes(self, tag: str | None) -> bool:
        return self.tags is None or tag in self.tags


@dataclass(frozen=True)
class PublicSettings:
    """The host settings a plugin may read (no credentials)."""

    data_dir: Path
    network: str
    max_invoice_msat: int
    default_invoice_expiry: int
    allow_signup: bool
    allow_private_addresses: bool
    #: the funding node's public key (hex), "" when the source does not say
    node_pubkey: str = ""


class Wallets(Protocol):
    async def get(self, wallet_id: str) -> Wallet:
        """The wallet (404 `NotFound` when it does not exist or was deleted)."""

    async def list_for_account(self, account_id: str) -> list[Wallet]: ...

    async def balance(self, wallet_id: str) -> int:
        """The wallet's balance in msat."""

    async def authenticate_key(self, key: str) -> WalletAuth:
        """The wallet and key kind an API key opens (401 `Unauthorized` if none)."""

    def key_digest(self, key: str) -> str:
        """A one-way digest of a wallet key, for a plugin that issues its own
        credentials from a key and must stop honouring them once the key is
        rotated or its wallet deleted."""

    async def authenticate_key_digest(self, digest: str) -> WalletAuth:
        """`authenticate_key` for a key known only by its `key_digest`."""


class Payments(Protocol):
    async def create_invoice(self, wallet: WalletAuth, request: InvoiceRequest) -> Payment: ...

    async def pay(self, wallet: WalletAuth, bolt11: str, extra: dict[str, Any] | None = None,
                  idempotency_key: str | None = None) -> Payment: ...

    async def transfer(self, from_wallet_id: str, to_wallet_id: str, amount_msat: int, *,
                       memo: str = "", extra: dict[str, Any] | None = None,
                       idempotency_key: str | None = None) -> Payment:
        """Move money between two wallets of this host, as an invoice in the
        payee's wallet paid at once from the payer's (both histories show it).
        With `idempotency_key`, a repeated call returns the first transfer."""

    async def find_by_hash(self, payment_hash: str, wallet_id: str | None = None) -> list[Payment]: ...

    async def get_by_id(self, payment_id: int) -> Payment: ...

    async def list_for_wallet(self, wallet_id: str, *, out: bool | None = None,
                              status: str | None = None, open_or_settled_since: int | None = None,
                              limit: int = 100, offset: int = 0) -> list[Payment]:
        """A wallet's payments, newest first (`open_or_settled_since`, Unix ms:
        only invoices still pending or that changed since then)."""


class Events(Protocol):
    def subscribe_wallet(self, wallet_id: str, after: int | None = None) -> WalletSubscription: ...

    def subscribe_hash(self, payment_hash: str) -> HashSubscription: ...


class Http(Protocol):
    """Outbound HTTP with the host's rules: timeouts, a size cap, https only,
    no private addresses unless the operator allows them."""

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response: ...

    async def check_url(self, url: str) -> str | None: ...

    def check_url_now(self, url: str) -> None:
        """The checks that need no DNS (scheme, literal addresses); raises a 400."""


#: a job handler: gets the payload given to `enqueue`; raising means "retry later"
JobHandler = Callable[[dict[str, Any]], Awaitable[None]]


class Jobs(Protocol):
    """The plugin's durable jobs (fulmen/jobs.py): enqueue inside your own
    transaction, and the host runs the handler after the commit, retried
    with backoff for a day, in exactly one process at a time."""

    def handler(self, kind: str) -> Callable[[JobHandler], JobHandler]:
        """Decorator: `@host.jobs.handler("publish")` (register in `startup`)."""

    async def enqueue(self, kind: str, payload: dict[str, Any], key: str | None = None) -> bool:
        """Record a job; with `key`, once per key (returns False if it exists)."""


@runtime_checkable  # Litestar checks injected dependencies with isinstance
class PluginHooks(Protocol):
    """Hooks plugins declare for each other (`register_hookspecs`)."""

    async def call_plugins(self, hook: str, *, may_refuse: bool = False,
                           **kwargs: Any) -> list[tuple[str, Any]]:
        """Call a plugin-declared hook: serving plugins only, failures
        contained, a `FulmenError` passed through only with `may_refuse`;
        (plugin id, result) pairs."""

    def implemented(self, hook: str) -> bool:
        """Whether a serving plugin implements this hook."""


@runtime_checkable  # Litestar checks injected dependencies with isinstance
class PluginHost(Protocol):
    """What a plugin receives as `host` (its members are read-only)."""

    #: this plugin's id (its URL prefix and table prefix)
    @property
    def plugin_id(self) -> str: ...

    @property
    def settings(self) -> PublicSettings: ...

    @property
    def wallets(self) -> Wallets: ...

    @property
    def payments(self) -> Payments: ...

    @property
    def events(self) -> Events: ...

    @property
    def http(self) -> Http: ...

    @property
    def jobs(self) -> Jobs: ...

    #: exchange rates and fiat conversions (fulmen/rates.py); never a guessed rate
    @property
    def rates(self) -> RateService: ...

    #: call hooks that plugins declare for each other
    @property
    def hooks(self) -> PluginHooks: ...


    def base_url(self, request: Request[Any, Any, Any] | None = None) -> str:
        """The host's public URL, for links in LNURL answers (no trailing /)."""

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        """Run a background task until the host stops (check `is_enabled()` in loops)."""

    def is_enabled(self) -> bool:
        """Whether this plugin is serving now (it may be disabled at run time)."""

    def check_admin(self, token: str) -> bool:
        """Whether `token` is the host's admin credential (compared in constant
        time; the credential itself is never handed out)."""

    async def watch_wallet(self, wallet_id: str, watch: bool = True) -> None:
        """Start (or stop) getting this wallet's payment hooks, for a plugin
        whose `PaymentFilter` has `watched_wallets_only`."""
