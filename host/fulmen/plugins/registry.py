"""The plugins of this process and every move of their lifecycle.

The host and the app call in here; nothing else changes a plugin's state.
What runs at each move (fulmen/plugins/lifecycle.py has the diagram):

- build: register each discovered plugin with pluggy, ask for its apps
  (`register_apps`) and check their naming;
- `start_all`: migrate the host, read the operator's persisted enabled
  flags, migrate and start the enabled plugins;
- `sync`: every second, in every process, apply flags another process
  changed (`set_enabled` writes them);
- `stop_all`: stop the started plugins at host shutdown.
A failure at any move quarantines that plugin (or stops the host when
FULMEN_PLUGINS_STRICT is set); the others carry on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from piccolo.engine.base import Engine

from .. import db
from ..hooks import ContextFor, Hooks
from ..piccolo_app import APP_CONFIG as CORE_APP
from ..settings import Settings
from ..tables import CORE_TABLES
from .discovery import app_naming_problem, new_plugin_manager, register
from .lifecycle import Plugin, PluginError, PluginState

log = logging.getLogger(__name__)


class PluginRegistry:
    def __init__(self, settings: Settings, found: list[Plugin], context_for: ContextFor) -> None:
        self.settings = settings
        self.pm = new_plugin_manager()
        self.plugins: dict[str, Plugin] = {p.id: p for p in found}
        for plugin in self.plugins.values():
            if plugin.usable:
                register(self.pm, plugin)
        self.check_strict()
        self.hooks = Hooks(self.pm, self.plugins, context_for)
        self._collect_apps()
        # One `sync` at a time: the background loop's and an admin's enable
        # must not both see a plugin stopped and both start it.
        self._sync_lock = asyncio.Lock()

    # --- build ------------------------------------------------------------------------

    def check_strict(self) -> None:
        """With FULMEN_PLUGINS_STRICT, any plugin that cannot run stops the host."""
        if not self.settings.plugins_strict:
            return
        broken = [p for p in self.plugins.values() if not p.usable]
        if broken:
            raise PluginError("; ".join(f"plugin {p.id} is {p.quarantine_kind}: {p.error}"
                                        for p in broken))

    def quarantine(self, plugin: Plugin, reason: str) -> None:
        plugin.quarantine(reason)
        if self.settings.plugins_strict:
            raise PluginError(f"plugin {plugin.id}: {reason}")

    def _collect_apps(self) -> None:
        for plugin in self.usable():
            try:
                plugin.apps = self.hooks.register_apps(plugin)
                self.hooks.payment_filter(plugin)
            except Exception as exc:
                plugin.quarantine(f"register_apps/payment_filter failed: {exc!r}")
                continue
            if problem := app_naming_problem(plugin):
                plugin.apps = []
                plugin.quarantine(problem)
        self.check_strict()

    def usable(self) -> list[Plugin]:
        return [p for p in self.plugins.values() if p.usable]

    def all_tables(self) -> list[Any]:
        tables = list(CORE_TABLES)
        for plugin in self.plugins.values():
            for app in plugin.apps:
                tables.extend(app.table_classes)
        return tables

    def serving(self, plugin_id: str) -> bool:
        return self.hooks.serving(plugin_id)

    # --- migrate ----------------------------------------------------------------------

    async def migrate(self, engine: Engine, plugin_ids: set[str] | None = None) -> dict[str, list[str]]:
        """Run the host's migrations, then the plugins' (all usable ones, or
        those in `plugin_ids` and the plugin apps they depend on), in dependency
        order. A plugin whose migration fails is quarantined. Returns the
        migration IDs applied, by app name."""
        ran: dict[str, list[str]] = {}
        owners = {app.app_name: p for p in self.plugins.values() for app in p.apps}
        usable = {a.app_name: a for p in self.usable() for a in p.apps}
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
        async with db.migration_lock(engine):
            await db.ensure_migration_table()
            ran["fulmen"] = await db.migrate_app(CORE_APP)
            for app in db.order_apps(list(wanted.values())):
                plugin = owners[app.app_name]
                if not plugin.usable:
                    continue  # an app it depends on failed above
                failed = [d for d in app.migration_dependencies
                          if d.split(".")[0] in owners and not owners[d.split(".")[0]].usable]
                if failed:
                    self.quarantine(plugin, f"migration skipped: depends on failed {failed}")
                    continue
                try:
                    ran[app.app_name] = await db.migrate_app(app)
                except Exception as exc:
                    self.quarantine(plugin, f"migration of {app.app_name} failed: {exc!r}")
        for plugin in self.usable():
            asked = plugin_ids is None or plugin.id in plugin_ids
            if asked and plugin.state is PluginState.DISCOVERED:
                plugin.move_to(PluginState.MIGRATED)
        return ran

    # --- start and stop -----------------------------------------------------------------

    async def start_all(self, engine: Engine, vet: Callable[[], Awaitable[Any]] | None = None) -> None:
        """Migrate and start the enabled plugins; `vet` runs between the two
        (the version-skew check: fulmen/plugins/processes.py)."""
        await self.migrate(engine, plugin_ids=set())
        await self.sync(engine, initial=True)
        enabled = {p.id for p in self.usable() if p.enabled}
        await self.migrate(engine, plugin_ids=enabled)
        if vet is not None:
            await vet()
        for plugin in self.usable():
            if plugin.enabled and plugin.state is PluginState.MIGRATED:
                await self._start(plugin)

    async def stop_all(self) -> None:
        for plugin in self.plugins.values():
            if plugin.serving:
                await self._stop(plugin)

    async def _start(self, plugin: Plugin) -> None:
        try:
            await self.hooks.startup(plugin)
        except Exception as exc:
            self.quarantine(plugin, f"startup failed: {exc!r}")
            return
        # Routes and hooks see the plugin only from here on.
        plugin.move_to(PluginState.STARTED)

    async def _stop(self, plugin: Plugin) -> None:
        plugin.move_to(PluginState.STOPPED)
        try:
            await self.hooks.shutdown(plugin)
        except Exception as exc:
            log.error("plugin %s shutdown failed: %r", plugin.id, exc)
            plugin.error = f"shutdown failed: {exc!r}"

    async def retire(self, plugin_id: str, reason: str) -> None:
        """Stop serving an uninstalled plugin in this process (its code is gone)."""
        plugin = self.plugins.get(plugin_id)
        if plugin is None or not plugin.usable:
            return
        if plugin.serving:
            await self._stop(plugin)
        plugin.quarantine(reason)

    # --- enable and disable (shared by all processes through the database) -----------------

    async def set_enabled(self, engine: Engine, plugin_id: str, enabled: bool) -> Plugin:
        """Persist the flag; this process applies it now, the others at their next `sync`."""
        await db.query(
            "UPDATE fulmen_plugin_state SET enabled = {}, updated_at = {} WHERE plugin_id = {}",
            enabled, db.now_ms(), plugin_id,
        )
        await self.sync(engine)
        return self.plugins[plugin_id]

    async def sync(self, engine: Engine, initial: bool = False) -> None:
        """Read the persisted enabled flags and apply changes in this process.
        A plugin new to this database starts enabled or not as
        FULMEN_PLUGINS_ENABLED_BY_DEFAULT says."""
        async with self._sync_lock:
            await self._sync(engine, initial)

    async def _sync(self, engine: Engine, initial: bool) -> None:
        rows = await db.query("SELECT plugin_id, enabled FROM fulmen_plugin_state")
        stored = {r["plugin_id"]: bool(r["enabled"]) for r in rows}
        for plugin in self.plugins.values():
            if plugin.id not in stored:
                await db.query(
                    "INSERT INTO fulmen_plugin_state (plugin_id, enabled, updated_at) "
                    "VALUES ({}, {}, {}) ON CONFLICT (plugin_id) DO NOTHING",
                    plugin.id, self.settings.plugins_enabled_by_default, db.now_ms(),
                )
                # Another process may have inserted first: its value counts.
                again = await db.query(
                    "SELECT enabled FROM fulmen_plugin_state WHERE plugin_id = {}", plugin.id
                )
                stored[plugin.id] = bool(again[0]["enabled"])
            plugin.enabled = stored[plugin.id]
            if initial or not plugin.usable:
                continue
            if plugin.enabled and not plugin.serving:
                log.info("plugin %s enabled", plugin.id)
                await self.migrate(engine, plugin_ids={plugin.id})
                if plugin.usable:
                    await self._start(plugin)
            elif not plugin.enabled and plugin.serving:
                log.info("plugin %s disabled", plugin.id)
                await self._stop(plugin)
