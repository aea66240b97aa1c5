"""Noticing that plugins were installed, upgraded or removed (by another
process, or by the admin API in this one). `fulmen serve` asks every
FULMEN_PLUGIN_RESCAN_INTERVAL seconds and hands over to a new worker on a
change (fulmen/supervisor.py)."""

from __future__ import annotations

import logging
import os
import sys

from .installer import installed_plugins

log = logging.getLogger(__name__)


class PluginWatch:
    """Has the set of installed plugins (id, distribution, version) changed?
    A stat of the import path's folders first; the entry points are read only
    when one of them changed."""

    def __init__(self) -> None:
        self._stamp = self._folders()
        self.plugins = self._plugins()

    @staticmethod
    def _folders() -> tuple[tuple[str, int], ...]:
        stamps = []
        for entry in sys.path:
            try:
                stamps.append((entry, os.stat(entry or ".").st_mtime_ns))
            except OSError:
                continue
        return tuple(stamps)

    @staticmethod
    def _plugins() -> dict[str, tuple[str, str]]:
        return installed_plugins()

    def changed(self) -> bool:
        stamp = self._folders()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        plugins = self._plugins()
        if plugins == self.plugins:
            return False
        log.info("installed plugins changed: %s -> %s", self.plugins, plugins)
        self.plugins = plugins
        return True
