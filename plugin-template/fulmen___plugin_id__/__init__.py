"""__plugin_title__: a Fulmen plugin.

This module holds the hook implementations only (the host finds it through
the `fulmen.plugins` entry point) and does nothing at import time. The
contract, with every hook, is Fulmen's docs/plugins.md.
"""

from __future__ import annotations

from typing import Any

from fulmen import Payment, PluginHost, hookimpl

PLUGIN_ID = "__plugin_id__"


@hookimpl
def register_apps() -> Any:
    """Our table and its migrations (run by the host at start)."""
    from .piccolo_app import APP_CONFIG

    return APP_CONFIG


@hookimpl
def register_routes(host: PluginHost) -> list[Any]:
    """Mounted under /__plugin_id__; they answer 404 while the plugin is disabled."""
    from .views import routes

    return routes(host)


@hookimpl
def nav_entries() -> list[dict[str, str]]:
    return [{"href": f"/{PLUGIN_ID}/", "label": "__plugin_title__"}]


@hookimpl
async def on_invoice_paid(host: PluginHost, payment: Payment) -> None:
    """Called once per paid invoice, after it is committed. Ours carry our tag."""
    if payment.tag != PLUGIN_ID:
        return
    from .store import record_paid_invoice

    await record_paid_invoice(payment)


@hookimpl
def backup_tables() -> dict[str, Any]:
    """What `fulmen backup` does with our tables: the paid-invoice record is
    kept whole (the default, so it is not named here). A table that can be
    rebuilt would be left out with `{"__plugin_id___cache": "skip"}`; a row
    function (`{"__plugin_id___paid_invoice": fn}`) may rewrite or drop rows."""
    return {}
