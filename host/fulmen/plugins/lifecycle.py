"""A plugin's life in this process, as an explicit state machine.

    discovered --migrate--> migrated --start--> started <--stop/start--> stopped
         \\________________________|__________________|_______________/
                                   +--quarantine(reason)--> quarantined

- **discovered**: its package imported and its hooks registered;
- **migrated**: its tables are up to date (a plugin disabled at boot waits here,
  or in `discovered` until it is first enabled);
- **started**: `startup` ran; its routes answer and its hooks are called;
- **stopped**: disabled at run time; `shutdown` ran; its data stays;
- **quarantined**: it cannot run (import, contract, migration or startup
  failed, or it needs another host version); `reason` says why. Final for
  this process.

Only `Plugin.move_to` changes the state, and it refuses a move the diagram
does not have, so the states cannot drift apart from what really ran.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)


class PluginState(str, Enum):
    DISCOVERED = "discovered"
    MIGRATED = "migrated"
    STARTED = "started"
    STOPPED = "stopped"
    QUARANTINED = "quarantined"


ALLOWED: dict[PluginState, set[PluginState]] = {
    PluginState.DISCOVERED: {PluginState.MIGRATED, PluginState.QUARANTINED},
    PluginState.MIGRATED: {PluginState.STARTED, PluginState.QUARANTINED},
    PluginState.STARTED: {PluginState.STOPPED, PluginState.QUARANTINED},
    PluginState.STOPPED: {PluginState.STARTED, PluginState.QUARANTINED},
    PluginState.QUARANTINED: set(),
}


class PluginError(Exception):
    pass


class IllegalTransition(PluginError):
    pass


@dataclass
class Plugin:
    """One installed plugin, as this process knows it."""

    id: str
    version: str = ""
    summary: str = ""
    distribution: str = ""
    module: ModuleType | Any = None
    state: PluginState = PluginState.DISCOVERED
    #: why it is quarantined (or the last error a hook raised)
    error: str | None = None
    #: what kind of quarantine: "failed" or "incompatible" (another host version)
    quarantine_kind: str = "failed"
    #: the operator's wish, persisted in `fulmen_plugin_state` (shared by all processes)
    enabled: bool = False
    apps: list[Any] = field(default_factory=list)

    # --- reading the state ------------------------------------------------------------

    @property
    def usable(self) -> bool:
        """Not quarantined: it may still migrate, start and serve."""
        return self.state is not PluginState.QUARANTINED

    @property
    def serving(self) -> bool:
        """Its routes answer and its hooks are called."""
        return self.state is PluginState.STARTED

    @property
    def migrated(self) -> bool:
        return self.state in (PluginState.MIGRATED, PluginState.STARTED, PluginState.STOPPED)

    # --- changing it --------------------------------------------------------------------

    def move_to(self, state: PluginState) -> None:
        if state is self.state and state is not PluginState.QUARANTINED:
            return
        if state not in ALLOWED[self.state]:
            raise IllegalTransition(f"plugin {self.id}: {self.state.value} -> {state.value}")
        log.info("plugin %s: %s -> %s", self.id, self.state.value, state.value)
        self.state = state

    def quarantine(self, reason: str, kind: str = "failed") -> None:
        if self.state is PluginState.QUARANTINED:
            return
        self.move_to(PluginState.QUARANTINED)
        self.error = reason
        self.quarantine_kind = kind
        log.error("plugin %s quarantined: %s", self.id, reason)

    def to_json(self) -> dict[str, Any]:
        if self.usable:
            state = "enabled" if self.enabled else "disabled"
        else:
            state = self.quarantine_kind
        return {
            "id": self.id,
            "version": self.version,
            "summary": self.summary,
            "distribution": self.distribution,
            "enabled": self.enabled,
            "state": state,
            "lifecycle": self.state.value,
            "last_error": self.error,
        }
