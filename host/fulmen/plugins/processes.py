"""Which host processes share this database, and which plugin versions each runs.

Every process writes its row in `fulmen_process` each second (its plugins,
their versions and states) and removes rows silent for longer than
FULMEN_PROCESS_STALE_AFTER; the admin API lists them.

The same pass checks each plugin's copy in this process against the
database: a copy that does not know a migration the database has applied
(a newer version migrated it, elsewhere or before a downgrade) would serve
against a schema it was not written for, so it is quarantined with the
reason instead. A newer copy migrates forward when it starts, as always.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
from typing import Any

from .. import db
from ..version import __version__
from .lifecycle import Plugin

log = logging.getLogger(__name__)


class Processes:
    def __init__(self, plugins: dict[str, Plugin], stale_after: float) -> None:
        self.plugins = plugins
        self.stale_after_ms = int(stale_after * 1000)
        self.hostname = socket.gethostname()[:200]
        self.id = f"{self.hostname[:40]}:{os.getpid()}:{secrets.token_hex(4)}"
        self.started_at = db.now_ms()
        # Read once: an uninstall removes the files while this process still runs.
        self._known: dict[str, set[str]] = {}

    def report(self) -> dict[str, Any]:
        return {p.id: {"version": p.version, "state": p.to_json()["state"],
                       "lifecycle": p.state.value} for p in self.plugins.values()}

    async def beat(self) -> None:
        now = db.now_ms()
        await db.query(
            "INSERT INTO fulmen_process (id, hostname, pid, host_version, plugins, started_at, seen_at) "
            "VALUES ({}, {}, {}, {}, {}, {}, {}) ON CONFLICT (id) DO UPDATE SET "
            "plugins = excluded.plugins, seen_at = excluded.seen_at",
            self.id, self.hostname, os.getpid(), __version__, json.dumps(self.report()),
            self.started_at, now,
        )
        await db.query("DELETE FROM fulmen_process WHERE seen_at < {}", now - self.stale_after_ms)

    async def leave(self) -> None:
        await db.query("DELETE FROM fulmen_process WHERE id = {}", self.id)

    async def rows(self) -> list[dict[str, Any]]:
        rows = await db.query(
            "SELECT id, hostname, pid, host_version, plugins, started_at, seen_at "
            "FROM fulmen_process WHERE seen_at >= {} ORDER BY started_at",
            db.now_ms() - self.stale_after_ms,
        )
        return [{**r, "plugins": json.loads(r["plugins"]), "this_process": r["id"] == self.id}
                for r in rows]

    async def wait_not_served(self, plugin_id: str, timeout: float = 30.0) -> list[str]:
        """Wait until no process serves `plugin_id`; returns those still serving it."""
        import asyncio

        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            serving = [p["id"] for p in await self.rows()
                       if p["plugins"].get(plugin_id, {}).get("lifecycle") == "started"]
            if not serving or asyncio.get_running_loop().time() > deadline:
                return serving
            await asyncio.sleep(0.5)

    # --- version skew -------------------------------------------------------------------

    async def check_skew(self) -> list[Plugin]:
        """Quarantine each usable plugin whose copy here lacks a migration the
        database has applied; returns those quarantined now."""
        applied: dict[str, list[str]] = {}
        for row in await db.query("SELECT app_name, name FROM migration ORDER BY id"):
            applied.setdefault(row["app_name"], []).append(row["name"])
        caught = []
        for plugin in self.plugins.values():
            if not plugin.usable:
                continue
            for app in plugin.apps:
                if app.app_name not in self._known:
                    self._known[app.app_name] = db.known_migrations(app)
                known = self._known[app.app_name]
                unknown = [mid for mid in applied.get(app.app_name, []) if mid not in known]
                if unknown:
                    plugin.quarantine(await self._skew_reason(plugin, app.app_name, unknown),
                                      kind="incompatible")
                    caught.append(plugin)
                    break
        return caught

    async def _skew_reason(self, plugin: Plugin, app_name: str, unknown: list[str]) -> str:
        elsewhere = sorted({p["plugins"][plugin.id]["version"] for p in await self.rows()
                            if not p["this_process"] and plugin.id in p["plugins"]}
                           - {plugin.version})
        hint = (f"running {', '.join(elsewhere)} elsewhere" if elsewhere
                else "a newer version migrated it")
        return (f"database has migration {unknown[-1]} of {app_name} that this copy "
                f"({plugin.version}) does not know; {hint}. Upgrade the plugin here to serve it")
