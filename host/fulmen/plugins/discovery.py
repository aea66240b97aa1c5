"""Finding and loading plugins.

A plugin is an installed distribution with an entry point in the group
`fulmen.plugins`; the entry point's name is the plugin id and its target is
the module holding the hook implementations. Each plugin is loaded on its
own, so one that fails to import is quarantined and the rest still load.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from typing import Any

import pluggy
from importlib_metadata import entry_points
from packaging.requirements import Requirement
from packaging.version import Version

from .. import hookspecs
from ..hooks import call_setup_hook
from ..version import __version__
from .lifecycle import Plugin

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "fulmen.plugins"
PLUGIN_ID = re.compile(r"^[a-z][a-z0-9_]*$")
# First path segments the host itself serves; a plugin mounted there would shadow them.
RESERVED_IDS = frozenset(
    {
        "api", "admin", "static", "health", "ready", "metrics", "docs", "schema",
        "well_known", "users", "wallet", "wallets", "account", "login", "logout",
        "plugins", "fulmen", "ws", "events", "favicon",
    }
)


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("fulmen")
    pm.add_hookspecs(hookspecs)
    return pm


def check_id(plugin_id: str) -> str | None:
    """Why this id cannot be a plugin id, or None when it can."""
    if not PLUGIN_ID.match(plugin_id):
        return f"plugin id {plugin_id!r} must match [a-z][a-z0-9_]*"
    if plugin_id in RESERVED_IDS:
        return f"plugin id {plugin_id!r} is reserved for the host's own paths"
    return None


def app_naming_problem(info: Plugin) -> str | None:
    """Why this plugin's Piccolo apps break the naming rule, or None: app
    names and table names start with the plugin id, so plugins never collide
    with the host or each other in the database."""
    prefix = f"{info.id}_"
    for app in info.apps:
        if app.app_name != info.id and not app.app_name.startswith(prefix):
            return f"app name {app.app_name!r} must be {info.id!r} or start with {prefix!r}"
        for table in app.table_classes:
            name = table._meta.tablename
            if not name.startswith(prefix):
                return f"table {name!r} must start with {prefix!r} (the plugin id)"
    return None


def host_compatibility(dist: Any) -> str | None:
    """Why this distribution cannot run on this host version, or None."""
    for spec in dist.requires or []:
        req = Requirement(spec)
        if req.name.lower() == "fulmen" and req.marker is None:
            if req.specifier and Version(__version__) not in req.specifier:
                return (
                    f"needs fulmen{req.specifier}, but this host is {__version__}; "
                    "install a matching plugin version"
                )
    return None


def discover(allow: set[str] | None) -> list[Plugin]:
    """Load installed plugins, one by one. Under test, nothing is loaded
    unless named in `allow`, so stray installed plugins never leak in."""
    if allow is None and getattr(sys, "_called_from_test", False):
        return []
    found: dict[str, Plugin] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if allow is not None and ep.name not in allow:
            continue
        dist = ep.dist
        dist_name = dist.metadata["Name"] if dist else ""
        if ep.name in found:
            if found[ep.name].distribution == dist_name:
                continue  # the same distribution seen twice on sys.path
            found[ep.name].quarantine(
                f"plugin id {ep.name!r} is claimed by both {found[ep.name].distribution!r} "
                f"and {dist_name!r}"
            )
            continue
        info = Plugin(
            id=ep.name,
            version=dist.version if dist else "",
            summary=(dist.metadata["Summary"] or "") if dist else "",
            distribution=dist_name,
        )
        found[ep.name] = info
        problem = check_id(ep.name)
        if problem:
            info.quarantine(problem)
            continue
        if dist and (problem := host_compatibility(dist)):
            info.quarantine(problem, kind="incompatible")
            continue
        try:
            info.module = ep.load()
        except Exception as exc:
            log.error("plugin %s: import failed\n%s", ep.name, traceback.format_exc(limit=5))
            info.quarantine(f"import failed: {type(exc).__name__}: {exc}")
    return list(found.values())


def add_plugin_hookspecs(pm: pluggy.PluginManager, info: Plugin) -> None:
    """Add the hooks a plugin declares for other plugins (`register_hookspecs`)."""
    modules = call_setup_hook(pm, info, "register_hookspecs")
    for module in modules if isinstance(modules, (list, tuple)) else [modules]:
        if module is not None:
            pm.add_hookspecs(module)


def register(pm: pluggy.PluginManager, info: Plugin) -> None:
    try:
        pm.register(info.module, name=info.id)
        add_plugin_hookspecs(pm, info)
        pm.check_pending()
    except Exception as exc:
        if pm.is_registered(info.module):
            pm.unregister(info.module)
        info.quarantine(f"does not fit the hook contract: {exc}")
