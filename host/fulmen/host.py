"""`Host`: the running host's services, built once and handed to plugins.

Plugins receive this object in their hooks. Its public attributes are part
of the plugin contract: `settings`, `engine`, `wallets`, `payments`, `funding`,
`plugin_id_of()`, `spawn()`, `base_url()`, `http` (outbound client with the
safety rules), `events`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any, Awaitable

from litestar import Request

from . import db
from .events import EventBus
from .funding import FundingSource, make_funding_source
from .hooks import Hooks
from .keys import same
from .net import SafeHttp
from .payments import PaymentService
from .piccolo_app import APP_CONFIG as CORE_APP
from .plugins import (
    PluginError,
    PluginInfo,
    app_naming_problem,
    call_setup_hook,
    discover,
    new_plugin_manager,
    register,
)
from .secret_files import read_or_create_secret
from .settings import Settings
from .tables import CORE_TABLES
from .wallets import WalletService
from .webhooks import WebhookService

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
        plugins: list[PluginInfo] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = db.make_engine(settings)
        self.funding = funding or make_funding_source(settings)
        self.admin_key, self.admin_key_created = load_admin_key(settings)
        self.pm = new_plugin_manager()
        found = plugins if plugins is not None else discover(settings.plugin_allow_list())
        self.plugins: dict[str, PluginInfo] = {p.id: p for p in found}
        for info in self.plugins.values():
            if info.usable:
                register(self.pm, info)
        self.check_strict()
        self.hooks = Hooks(self.pm, self.plugins)
        self.hooks.host = self
        self.wallets = WalletService(self.engine)
        self.payments = PaymentService(settings, self.engine, self.funding, self.hooks)
        self.http = SafeHttp.from_settings(settings)
        # Events and webhooks (fulmen/events.py, fulmen/webhooks.py).
        self.events = EventBus(self)
        self.webhooks = WebhookService(self)
        self.payments.events = self.events
        self.payments.outbox_writers.append(self.events.write)
        self.payments.listeners.append(self.events.on_settled)
        self.events.writers.append(self.webhooks.write)
        self.events.listeners.append(self.webhooks.on_event)
        self._tasks: set[asyncio.Task] = set()
        self._stopping = asyncio.Event()
        self.started = False
        self._collect_apps()
        db.bind(self.engine, self.all_tables())

    # --- plugins ---------------------------------------------------------------

    def check_strict(self) -> None:
        """With FULMEN_PLUGINS_STRICT, any plugin that cannot run stops the host."""
        if not self.settings.plugins_strict:
            return
        broken = [i for i in self.plugins.values() if not i.usable]
        if broken:
            raise PluginError("; ".join(f"plugin {i.id} is {i.state}: {i.error}" for i in broken))

    def _collect_apps(self) -> None:
        for info in self.plugins.values():
            if not info.usable:
                continue
            try:
                apps = call_setup_hook(self.pm, info, "register_apps")
                info.apps = [a for a in (apps if isinstance(apps, list) else [apps]) if a]
            except Exception as exc:
                info.fail(f"register_apps failed: {exc!r}")
                continue
            if problem := app_naming_problem(info):
                info.apps = []
                info.fail(problem)
        self.check_strict()

    def all_tables(self) -> list[Any]:
        tables = list(CORE_TABLES)
        for info in self.plugins.values():
            for app in info.apps:
                tables.extend(app.table_classes)
        return tables

    def check_admin(self, token: str) -> bool:
        return same(token, self.admin_key)

    def is_plugin_enabled(self, plugin_id: str) -> bool:
        return self.hooks.enabled(plugin_id)

    def spawn(self, coro: Awaitable[Any], name: str | None = None) -> asyncio.Task:
        """Run a background task for the host's lifetime (cancelled at stop)."""
        task = asyncio.ensure_future(coro)
        if name:
            task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def base_url(self, request: Request | None = None) -> str:
        if self.settings.base_url:
            return self.settings.base_url.rstrip("/")
        if request is not None:
            from .api.public_url import request_base_url

            return request_base_url(request)
        return f"http://{self.settings.host}:{self.settings.port}"

    # --- start and stop -------------------------------------------------------------

    async def start(self) -> None:
        await db.open_engine(self.engine, self.settings.db_pool_size, self.settings.db_pool_min_size)
        await self.migrate(plugin_ids=set())
        await self._sync_plugin_state(initial=True)
        await self.migrate(plugin_ids={i.id for i in self.plugins.values() if i.enabled})
        await self.funding.start()
        for info in self.plugins.values():
            if info.usable and info.enabled:
                await self._start_plugin(info)
        self.spawn(self._background(), name="fulmen-background")
        self.spawn(self.hooks.run(), name="fulmen-hook-deliveries")
        self.spawn(self._listen_for_paid_invoices(), name="fulmen-invoice-stream")
        await self.events.start()
        self.spawn(self.webhooks.run(), name="fulmen-webhooks")
        self.started = True
        if self.admin_key_created:
            # Printed once, on the start that created it; it also stays in the 0600 file.
            print(f"Admin key (also in {self.settings.data_dir / 'admin_key'}): {self.admin_key}")

    async def stop(self) -> None:
        self._stopping.set()
        await self.payments.drain(timeout=5)
        await self.events.stop()
        for info in self.plugins.values():
            if info.started:
                await self._stop_plugin(info)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.funding.close()
        await self.http.close()
        await db.close_engine(self.engine)

    async def migrate(self, plugin_ids: set[str] | None = None) -> dict[str, list[str]]:
        """Run the host's migrations, then the plugins' (all usable ones, or
        those in `plugin_ids` and the plugin apps they depend on), in dependency
        order. A plugin whose migration fails is quarantined. Returns the
        migration IDs applied, by app name."""
        ran: dict[str, list[str]] = {}
        owners = {app.app_name: info for info in self.plugins.values() for app in info.apps}
        usable = {a.app_name: a for i in self.plugins.values() if i.usable for a in i.apps}
        wanted: dict[str, Any] = {}

        def want(app: Any) -> None:
            if app.app_name in wanted:
                return
            wanted[app.app_name] = app
            for dep in app.migration_dependencies:
                if dep.split(".")[0] in usable:
                    want(usable[dep.split(".")[0]])

        for name, app in usable.items():
            if plugin_ids is None or owners[name].id in plugin_ids:
                want(app)
        async with db.migration_lock(self.engine):
            await db.ensure_migration_table()
            ran["fulmen"] = await db.migrate_app(CORE_APP)
            for app in db.order_apps(list(wanted.values())):
                info = owners[app.app_name]
                if not info.usable:
                    continue  # an app it depends on failed above
                failed_dep = [d for d in app.migration_dependencies
                              if d.split(".")[0] in owners and not owners[d.split(".")[0]].usable]
                if failed_dep:
                    self._quarantine(info, f"migration skipped: depends on failed {failed_dep}")
                    continue
                try:
                    ran[app.app_name] = await db.migrate_app(app)
                except Exception as exc:
                    self._quarantine(info, f"migration of {app.app_name} failed: {exc!r}")
        return ran

    def _quarantine(self, info: PluginInfo, error: str) -> None:
        info.fail(error)
        if self.settings.plugins_strict:
            raise PluginError(f"plugin {info.id}: {error}")

    async def _start_plugin(self, info: PluginInfo) -> None:
        try:
            await self.hooks.call_plugin(info.id, "startup")
            info.started = True
        except Exception as exc:
            self._quarantine(info, f"startup failed: {exc!r}")

    async def _stop_plugin(self, info: PluginInfo) -> None:
        info.started = False
        try:
            await self.hooks.call_plugin(info.id, "shutdown")
        except Exception as exc:
            log.error("plugin %s shutdown failed: %r", info.id, exc)
            info.error = f"shutdown failed: {exc!r}"

    async def set_plugin_enabled(self, plugin_id: str, enabled: bool) -> PluginInfo:
        """Persist the flag; this process applies it now, the others within
        PLUGIN_POLL_SECONDS."""
        await db.query(
            "UPDATE fulmen_plugin_state SET enabled = {}, updated_at = {} WHERE plugin_id = {}",
            enabled, db.now_ms(), plugin_id,
        )
        await self._sync_plugin_state()
        return self.plugins[plugin_id]

    async def _sync_plugin_state(self, initial: bool = False) -> None:
        """Read the persisted enabled flags and apply changes in this process.
        A plugin new to this database starts enabled or not as
        FULMEN_PLUGINS_ENABLED_BY_DEFAULT says."""
        rows = await db.query("SELECT plugin_id, enabled FROM fulmen_plugin_state")
        stored = {r["plugin_id"]: bool(r["enabled"]) for r in rows}
        for info in self.plugins.values():
            if info.id not in stored:
                await db.query(
                    "INSERT INTO fulmen_plugin_state (plugin_id, enabled, updated_at) VALUES ({}, {}, {}) "
                    "ON CONFLICT (plugin_id) DO NOTHING",
                    info.id, self.settings.plugins_enabled_by_default, db.now_ms(),
                )
                # Another process may have inserted first: its value counts.
                again = await db.query(
                    "SELECT enabled FROM fulmen_plugin_state WHERE plugin_id = {}", info.id
                )
                stored[info.id] = bool(again[0]["enabled"])
            was, now = info.enabled, stored[info.id]
            if initial or was == now or not info.usable:
                info.enabled = now
                continue
            if now:
                log.info("plugin %s enabled", info.id)
                await self.migrate(plugin_ids={info.id})
                if info.usable:
                    await self._start_plugin(info)
                # Routes and hooks see the plugin only once it has started.
                info.enabled = True
            else:
                log.info("plugin %s disabled", info.id)
                info.enabled = False
                if info.started:
                    await self._stop_plugin(info)

    # --- background work ---------------------------------------------------------------

    async def _background(self) -> None:
        """Every process: follow plugin state, reconcile payments."""
        last_reconcile = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            try:
                await self._sync_plugin_state()
                if loop.time() - last_reconcile >= self.settings.reconcile_interval:
                    last_reconcile = loop.time()
                    await self.payments.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background pass failed")
            try:
                await asyncio.wait_for(self._stopping.wait(), PLUGIN_POLL_SECONDS)
            except asyncio.TimeoutError:
                pass

    async def _listen_for_paid_invoices(self) -> None:
        """Credit invoices the funding source reports paid. Every process may
        listen: `settle_incoming` credits each invoice once."""
        await self.payments.watch_pending_invoices()
        await self.payments.check_pending_invoices()
        while not self._stopping.is_set():
            try:
                async for checking_id in self.funding.paid_invoices_stream():
                    await self.payments.settle_incoming(checking_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("invoice stream ended; reconnecting")
                await asyncio.sleep(1)
                await self.payments.check_pending_invoices()

