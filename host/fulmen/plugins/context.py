"""`PluginContext`: the `PluginHost` (fulmen/contract.py) each plugin receives.

It forwards to the host's services, bound to one plugin, and carries only
what the contract names: a plugin cannot reach the admin key, the plugin
manager, the funding source or another plugin's state through it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ..contract import PublicSettings
from ..db import query

if TYPE_CHECKING:
    from litestar import Request

    from ..events import EventBus, HashSubscription, WalletSubscription
    from ..hooks import Hooks
    from ..jobs import PluginJobs
    from ..models import InvoiceRequest, Payment, Wallet, WalletAuth
    from ..net import SafeHttp
    from ..payments import PaymentService
    from ..rates import RateService
    from ..settings import Settings
    from ..wallets import WalletService


def public_settings(settings: Settings, node_pubkey: str = "") -> PublicSettings:
    return PublicSettings(
        node_pubkey=node_pubkey,
        data_dir=settings.data_dir, network=settings.network,
        max_invoice_msat=settings.max_invoice_msat,
        default_invoice_expiry=settings.default_invoice_expiry,
        allow_signup=settings.allow_signup,
        allow_private_addresses=settings.allow_private_addresses,
    )


class _Wallets:
    __slots__ = ("_service",)

    def __init__(self, service: WalletService) -> None:
        self._service = service

    async def get(self, wallet_id: str) -> Wallet:
        return await self._service.get(wallet_id)

    async def list_for_account(self, account_id: str) -> list[Wallet]:
        return await self._service.list_for_account(account_id)

    async def balance(self, wallet_id: str) -> int:
        return await self._service.balance(wallet_id)

    async def authenticate_key(self, key: str) -> WalletAuth:
        return await self._service.authenticate_key(key)

    def key_digest(self, key: str) -> str:
        return self._service.key_digest(key)

    async def authenticate_key_digest(self, digest: str) -> WalletAuth:
        return await self._service.authenticate_key_digest(digest)


class _Payments:
    __slots__ = ("_service",)

    def __init__(self, service: PaymentService) -> None:
        self._service = service

    async def create_invoice(self, wallet: WalletAuth, request: InvoiceRequest) -> Payment:
        return await self._service.create_invoice(wallet, request)

    async def pay(self, wallet: WalletAuth, bolt11: str, extra: dict[str, Any] | None = None,
                  idempotency_key: str | None = None) -> Payment:
        return await self._service.pay(wallet, bolt11, extra, idempotency_key)

    async def transfer(self, from_wallet_id: str, to_wallet_id: str, amount_msat: int, *,
                       memo: str = "", extra: dict[str, Any] | None = None,
                       idempotency_key: str | None = None) -> Payment:
        return await self._service.transfer(from_wallet_id, to_wallet_id, amount_msat, memo=memo,
                                            extra=extra, idempotency_key=idempotency_key)

    async def find_by_hash(self, payment_hash: str, wallet_id: str | None = None) -> list[Payment]:
        return await self._service.find_by_hash(payment_hash, wallet_id)

    async def get_by_id(self, payment_id: int) -> Payment:
        return await self._service.get_by_id(payment_id)

    async def list_for_wallet(self, wallet_id: str, *, out: bool | None = None,
                              status: str | None = None, open_or_settled_since: int | None = None,
                              limit: int = 100, offset: int = 0) -> list[Payment]:
        return await self._service.list_for_wallet(
            wallet_id, out=out, status=status, open_or_settled_since=open_or_settled_since,
            limit=limit, offset=offset,
        )


class _Events:
    __slots__ = ("_bus",)

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus

    def subscribe_wallet(self, wallet_id: str, after: int | None = None) -> WalletSubscription:
        return self._bus.subscribe_wallet(wallet_id, after)

    def subscribe_hash(self, payment_hash: str) -> HashSubscription:
        return self._bus.subscribe_hash(payment_hash)


class _PluginHooks:
    __slots__ = ("_hooks",)

    def __init__(self, hooks: Hooks) -> None:
        self._hooks = hooks

    async def call_plugins(self, hook: str, *, may_refuse: bool = False,
                           **kwargs: Any) -> list[tuple[str, Any]]:
        return await self._hooks.call_plugins(hook, may_refuse=may_refuse, **kwargs)

    def implemented(self, hook: str) -> bool:
        return self._hooks.implemented(hook)


class PluginContext:
    """What plugin `plugin_id` receives as `host`."""

    def __init__(
        self,
        plugin_id: str,
        settings: Settings,
        wallets: WalletService,
        payments: PaymentService,
        events: EventBus,
        http: SafeHttp,
        jobs: PluginJobs,
        spawn: Callable[[Coroutine[Any, Any, Any], str | None], asyncio.Task[Any]],
        base_url: Callable[[Request[Any, Any, Any] | None], str],
        serving: Callable[[str], bool],
        rates: RateService,
        hooks: Hooks,
        check_admin: Callable[[str], bool],
        node_pubkey: str = "",
    ) -> None:
        self.plugin_id = plugin_id
        self.settings = public_settings(settings, node_pubkey)
        self.wallets = _Wallets(wallets)
        self.payments = _Payments(payments)
        self.events = _Events(events)
        self.http = http
        self.jobs = jobs
        self.rates = rates
        self.hooks = _PluginHooks(hooks)
        self._check_admin = check_admin
        self._spawn = spawn
        self._base_url = base_url
        self._serving = serving

    def base_url(self, request: Request[Any, Any, Any] | None = None) -> str:
        return self._base_url(request)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        return self._spawn(coro, name or f"plugin-{self.plugin_id}")

    def is_enabled(self) -> bool:
        return self._serving(self.plugin_id)

    def check_admin(self, token: str) -> bool:
        return self._check_admin(token)

    async def watch_wallet(self, wallet_id: str, watch: bool = True) -> None:
        if watch:
            await query(
                "INSERT INTO fulmen_hook_wallet (plugin_id, wallet_id) VALUES ({}, {}) "
                "ON CONFLICT (plugin_id, wallet_id) DO NOTHING",
                self.plugin_id, wallet_id,
            )
        else:
            await query(
                "DELETE FROM fulmen_hook_wallet WHERE plugin_id = {} AND wallet_id = {}",
                self.plugin_id, wallet_id,
            )
