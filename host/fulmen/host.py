"""`Host`: the running host's services, built once, started and stopped.

This is where the services are wired together (the app in fulmen/app.py is
the HTTP side of the same composition root). Each service gets what it needs
and no more; plugins get a `PluginHost` each (fulmen/plugins/context.py),
never this object.

    settings -> engine, funding source, outbound HTTP
    events (the bus), webhooks (endpoints + their outbox), jobs (plugins' outbox)
    plugins (registry: lifecycle + typed hooks + hook-delivery outbox)
    settlement (what a committed balance change causes) -> payments
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Coroutine
from typing import Any

from litestar import Request

from . import db
from .events import EventBus, EventSettings
from .funding import FundingSource, make_funding_source
from .hooks import Hooks
from .jobs import JobQueue
from .keycache import KeyCache
from .keys import same
from .net import SafeHttp
from .payments import PaymentService
from .plugins import Plugin, discover
from .plugins.context import PluginContext
from .plugins.processes import Processes
from .plugins.registry import PluginRegistry
from .rates import RateService
from .secret_files import read_or_create_secret
from .settings import Settings
from .settlement import Settlement, Wakers
from .wallets import WalletService
from .webhooks import WebhookService, WebhookSettings

log = logging.getLogger(__name__)

PLUGIN_POLL_SECONDS = 1.0  # enable/disable reaches every process within this (+ a request)


def load_admin_key(settings: Settings) -> tuple[str, bool]:
    """The admin bearer credential: from FULMEN_ADMIN_KEY, else data_dir/admin_key
    (created 0600 on first start). Returns (key, created_now)."""
    if settings.admin_key:
        return settings.admin_key, False
    return read_or_create_secret(settings.data_dir / "admin_key", lambda: secrets.token_hex(24))


class Host:
    def __init__(
        self,
        settings: Settings,
        funding: FundingSource | None = None,
        plugins: list[Plugin] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = db.make_engine(settings)
        self.funding = funding or make_funding_source(settings)
        self.admin_key, self.admin_key_created = load_admin_key(settings)
        self.http = SafeHttp.from_settings(settings)
        self.rates = RateService.from_settings(settings, self.http)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = asyncio.Event()
        self._contexts: dict[str, PluginContext] = {}
        self.started = False
        #: a new worker process is taking over (fulmen/supervisor.py): this one only drains
        self.handing_over = False

        found = plugins if plugins is not None else discover(settings.plugin_allow_list())
        self.registry = PluginRegistry(settings, found, self.context_for)
        self.processes = Processes(self.registry.plugins, settings.process_stale_after)
        # The settings groups that live beside their services are read here, once.
        self.events = EventBus(settings.redis_url, self.spawn, EventSettings())
        self.webhooks = WebhookService(self.http, WebhookSettings())
        self.jobs = JobQueue(self.registry.serving)
        self.settlement = Settlement(
            self.events, self.hooks.payment_targets, self.webhooks.retry_window_ms(),
            Wakers(webhooks=self.webhooks.outbox.wake, hooks=self.hooks.deliveries.wake),
        )
        self.key_cache = KeyCache(settings.key_cache_seconds)
        self.wallets = WalletService(self.engine, self.key_cache)
        self.payments = PaymentService(settings, self.engine, self.funding, self.hooks,
                                       self.settlement)
        db.bind(self.engine, self.registry.all_tables())

    # --- plugins ---------------------------------------------------------------------

    @property
    def hooks(self) -> Hooks:
        return self.registry.hooks

    @property
    def plugins(self) -> dict[str, Plugin]:
        return self.registry.plugins

    def context_for(self, plugin_id: str) -> PluginContext:
        """The `host` plugin `plugin_id` receives (one per plugin, made on first use)."""
        context = self._contexts.get(plugin_id)
        if context is None:
            context = PluginContext(
                plugin_id, self.settings, self.wallets, self.payments, self.events, self.http,
                self.jobs.for_plugin(plugin_id), self.spawn, self.base_url, self.registry.serving,
                self.rates, self.hooks, self.check_admin, node_pubkey=str(getattr(self.funding, "pubkey", "") or ""),
            )
            self._contexts[plugin_id] = context
        return context

    def is_plugin_enabled(self, plugin_id: str) -> bool:
        return self.registry.serving(plugin_id)

    async def set_plugin_enabled(self, plugin_id: str, enabled: bool) -> Plugin:
        return await self.registry.set_enabled(self.engine, plugin_id, enabled)

    async def migrate(self, plugin_ids: set[str] | None = None) -> dict[str, list[str]]:
        return await self.registry.migrate(self.engine, plugin_ids)

    def check_admin(self, token: str) -> bool:
        return same(token, self.admin_key)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        """Run a background task for the host's lifetime (cancelled at stop)."""
        task = asyncio.ensure_future(coro)
        if name:
            task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def base_url(self, request: Request[Any, Any, Any] | None = None) -> str:
        if self.settings.base_url:
            return self.settings.base_url.rstrip("/")
        if request is not None:
            from .public_url import request_base_url

            return request_base_url(request)
        return f"http://{self.settings.host}:{self.settings.port}"

    # --- start and stop -------------------------------------------------------------

    async def start(self) -> None:
        await db.open_engine(self.engine, self.settings.db_pool_size, self.settings.db_pool_min_size)
        await self.registry.start_all(self.engine, vet=self.processes.check_skew)
        await self.processes.beat()
        await self.funding.start()
        self.spawn(self._background(), name="fulmen-background")
        self.spawn(self.hooks.deliveries.run(), name="fulmen-hook-deliveries")
        self.spawn(self.jobs.outbox.run(), name="fulmen-jobs")
        self.spawn(self._listen_for_paid_invoices(), name="fulmen-invoice-stream")
        self.spawn(self._check_pending_invoices(), name="fulmen-invoice-check")
        await self.events.start()
        await self.key_cache.start(
            db.postgres_config(self.settings.database_url) if self.settings.uses_postgres else None)
        self.spawn(self.webhooks.run(), name="fulmen-webhooks")
        self.started = True
        if self.admin_key_created:
            # Printed once, on the start that created it; it also stays in the 0600 file.
            print(f"Admin key (also in {self.settings.data_dir / 'admin_key'}): {self.admin_key}")

    async def stop(self) -> None:
        self._stopping.set()
        await self.settlement.drain(timeout=5)
        await self.events.stop()
        await self.key_cache.stop()
        await self.registry.stop_all()
        try:
            await self.processes.leave()
        except Exception as exc:  # its row goes stale and is pruned by the others
            log.warning("could not remove this process's heartbeat: %r", exc)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.funding.close()
        await self.rates.close()
        await self.http.close()
        await db.close_engine(self.engine)

    # --- background work ---------------------------------------------------------------

    async def _background(self) -> None:
        """Every process: follow plugin state, reconcile payments."""
        last_reconcile = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            try:
                await self.registry.sync(self.engine)
                if not self.handing_over:  # a replacement may have migrated forward already
                    await self.processes.check_skew()
                await self.processes.beat()
                if loop.time() - last_reconcile >= self.settings.reconcile_interval:
                    last_reconcile = loop.time()
                    await self.payments.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background pass failed")
            try:
                await asyncio.wait_for(self._stopping.wait(), PLUGIN_POLL_SECONDS)
            except TimeoutError:
                pass

    async def _check_pending_invoices(self) -> None:
        """Every `invoice_check_interval` seconds (0: never), ask the funding
        source about pending incoming invoices, so a settlement the stream or
        the watcher missed is still credited. Its own task: a slow node holds
        up nothing else."""
        interval = self.settings.invoice_check_interval
        while interval > 0 and not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), interval)
                return
            except TimeoutError:
                pass
            try:
                await self.payments.check_pending_invoices()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("checking pending invoices failed")

    async def _listen_for_paid_invoices(self) -> None:
        """Credit invoices the funding source reports paid. Every process may
        listen: `settle_incoming` credits each invoice once."""
        await self.payments.watch_pending_invoices()
        await self.payments.check_pending_invoices()
        while not self._stopping.is_set():
            try:
                async for checking_id in self.funding.paid_invoices_stream():
                    await self.payments.settle_incoming_isolated(checking_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("invoice stream ended; reconnecting")
                await asyncio.sleep(1)
                await self.payments.check_pending_invoices()
