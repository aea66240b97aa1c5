"""Per-wallet export and import: a wallet's configuration and its plugins'
objects as one JSON document (not balances, not history).

`GET /api/v1/wallet/export` (admin key) returns the document;
`POST /api/v1/wallet/import` (admin key of the receiving wallet, on this or
another Fulmen) creates the objects there. Nothing is renamed to get round a
clash: an object that cannot be created (a Lightning Address already taken,
a split target wallet that does not exist here) is reported in `conflicts`
and left out; the others are created. Plugins take part through the
`wallet_export` and `wallet_import` hooks.
"""

from __future__ import annotations

import logging
from typing import Any

from .errors import BadRequest, FulmenError
from .models import WalletAuth
from .version import __version__

log = logging.getLogger(__name__)

FORMAT = "fulmen-wallet"
FORMAT_VERSION = 1
MAX_WEBHOOKS = 100


def _plugin_impls(host: Any, hook: str) -> list[tuple[str, Any]]:
    """(plugin id, call) of the serving plugins implementing `hook` (fulmen/hooks.py)."""
    return host.hooks.implementations(hook)


async def export_wallet(host: Any, wallet: WalletAuth) -> dict[str, Any]:
    w = await host.wallets.get(wallet.wallet_id)
    endpoints = await host.webhooks.list_endpoints(wallet.wallet_id)
    document: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "host_version": __version__,
        "wallet": {"name": w.name, "currency": w.currency},
        "webhooks": [{"url": e["url"], "events": e["events"],
                      "description": e.get("description", "")} for e in endpoints],
        "plugins": {},
        "errors": [],
    }
    for plugin_id, call in _plugin_impls(host, "wallet_export"):
        try:
            data = await call(wallet=wallet)
        except Exception as exc:  # one plugin's failure must not stop the export
            log.exception("plugin %s: wallet_export failed", plugin_id)
            document["errors"].append({"plugin": plugin_id, "error": f"{exc}"})
            continue
        if data is not None:
            document["plugins"][plugin_id] = data
    return document


def _check_document(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BadRequest(f'the body must be a wallet export (with "format": "{FORMAT}")')
    version = data.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise BadRequest(f"format_version {version!r} is not supported (this Fulmen reads up to "
                         f"{FORMAT_VERSION})")
    webhooks = data.get("webhooks", [])
    if not isinstance(webhooks, list) or len(webhooks) > MAX_WEBHOOKS \
            or not all(isinstance(w, dict) for w in webhooks):
        raise BadRequest(f"webhooks must be a list of at most {MAX_WEBHOOKS} objects")
    plugins = data.get("plugins", {})
    if not isinstance(plugins, dict):
        raise BadRequest("plugins must be an object keyed by plugin id")
    return data


async def import_wallet(host: Any, wallet: WalletAuth, data: Any) -> dict[str, Any]:
    """Create the document's objects in `wallet`. Returns what was created
    and the conflicts (objects left out, each with the reason)."""
    document = _check_document(data)
    created: dict[str, Any] = {"webhooks": []}
    conflicts: list[dict[str, Any]] = []
    for item in document.get("webhooks", []):
        try:
            events = item.get("events")
            if isinstance(events, str):
                events = [e for e in events.split(",") if e]
            endpoint = await host.webhooks.create_endpoint(
                wallet.wallet_id, item.get("url"), events, str(item.get("description") or "")[:200])
        except FulmenError as exc:
            conflicts.append({"kind": "webhook", "object": {"url": item.get("url")},
                              "problem": exc.detail if hasattr(exc, "detail") else str(exc)})
            continue
        created["webhooks"].append(endpoint)
    impls = dict(_plugin_impls(host, "wallet_import"))
    for plugin_id, section in document.get("plugins", {}).items():
        impl = impls.get(plugin_id)
        if impl is None:
            conflicts.append({"kind": "plugin", "plugin": plugin_id,
                              "problem": f"plugin {plugin_id} is not installed or not enabled "
                                         "here; its objects were not imported"})
            continue
        try:
            result = await impl(wallet=wallet, data=section) or {}
        except FulmenError as exc:
            conflicts.append({"kind": "plugin", "plugin": plugin_id, "problem": _message(exc)})
            continue
        except Exception as exc:  # one plugin's failure must not stop the others
            log.exception("plugin %s: wallet_import failed", plugin_id)
            conflicts.append({"kind": "plugin", "plugin": plugin_id,
                              "problem": f"import failed: {exc}"})
            continue
        created[plugin_id] = result.get("created", [])
        for conflict in result.get("conflicts", []):
            conflicts.append({"plugin": plugin_id, **conflict})
    return {"created": created, "conflicts": conflicts}


def _message(exc: FulmenError) -> str:
    return str(getattr(exc, "detail", None) or exc)


async def import_objects(items: Any, create: Any, describe: Any) -> dict[str, Any]:
    """Helper for plugins' `wallet_import`: `await create(item)` for each
    item; a refused item (a FulmenError: taken name, bad field) becomes a
    conflict `{"object": describe(item), "problem": message}`."""
    created: list[Any] = []
    conflicts: list[dict[str, Any]] = []
    if not isinstance(items, list):
        return {"created": [], "conflicts": [{"object": None,
                                              "problem": "expected a list of objects"}]}
    for item in items:
        try:
            created.append(await create(item))
        except FulmenError as exc:
            conflicts.append({"object": describe(item) if isinstance(item, dict) else item,
                              "problem": _message(exc)})
    return {"created": created, "conflicts": conflicts}
