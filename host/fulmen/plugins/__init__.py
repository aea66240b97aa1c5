"""Plugins: finding them (discovery), their lifecycle (a state machine), the
registry that moves them through it, and the `host` each one receives."""

from ..hooks import call_setup_hook
from .discovery import (
    ENTRY_POINT_GROUP,
    PLUGIN_ID,
    RESERVED_IDS,
    check_id,
    discover,
)
from .lifecycle import IllegalTransition, Plugin, PluginError, PluginState

__all__ = [
    "ENTRY_POINT_GROUP",
    "PLUGIN_ID",
    "RESERVED_IDS",
    "IllegalTransition",
    "Plugin",
    "PluginError",
    "PluginState",
    "call_setup_hook",
    "check_id",
    "discover",
]
