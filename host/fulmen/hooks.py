"""The host's typed front to `pm.hook`: one method per hook in hookspecs.py.

Everything that calls plugins goes through here, so these rules hold in one
place:
- only plugins that are serving (state `started`) are called;
- each plugin gets its own `host` (a `PluginHost`, fulmen/contract.py);
- an `async def` implementation is awaited;
- one plugin's exception is contained (logged, recorded as its last error)
  and never stops the others; only the documented refusals
  (`InvoiceRejected` from `before_invoice_created`, `PaymentRejected` from
  `before_payment_sent`) reach the caller.

The payment hooks are durable: the settlement step (fulmen/settlement.py)
writes a delivery row per plugin that `payment_targets` names, and the
outbox (fulmen/outbox.py) runs them with `_deliver` as its sender.
"""

from __future__ import annotations

import inspect
import logging
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

from .contract import PaymentFilter, PluginHost
from .db import query
from .errors import FulmenError, InvoiceRejected, PaymentRejected
from .models import InvoiceInfo, InvoiceRequest, Payment, WalletAuth
from .outbox import DONE, RELEASED, Outbox, Outcome, Policy, doubling

if TYPE_CHECKING:
    from piccolo.conf.apps import AppConfig

    from .plugins.lifecycle import Plugin

log = logging.getLogger(__name__)

ContextFor = Callable[[str], PluginHost]


async def await_me_maybe(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def call_setup_hook(pm: pluggy.PluginManager, info: Plugin, hook: str, **kwargs: Any) -> Any:
    """Call one plugin's set-up hook (`register_apps`, `register_routes`,
    `register_commands`), which runs before the event loop serves and so must
    be a plain `def`. Returns None when the plugin does not implement it."""
    for impl in getattr(pm.hook, hook).get_hookimpls():
        if impl.plugin_name != info.id:
            continue
        result = impl.function(**{name: kwargs[name] for name in impl.argnames if name in kwargs})
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            raise TypeError(f"{hook} must be a plain def: it runs before the event loop starts")
        return result
    return None



class Hooks:
    def __init__(self, pm: pluggy.PluginManager, plugins: dict[str, Plugin],
                 context_for: ContextFor) -> None:
        self.pm = pm
        self.plugins = plugins
        self.context_for = context_for
        self._filters: dict[str, PaymentFilter] = {}
        # Backoff doubles from 2 s, capped at 1 h; 20 tries is about a day.
        self.deliveries = Outbox(
            Policy(table="fulmen_hook_delivery", done_status="done", max_attempts=20,
                   backoff_ms=doubling(2_000, 3_600_000)),
            self._deliver,
            only=self._serving_plugins_clause,
        )

    # --- plumbing ---------------------------------------------------------------------

    def serving(self, plugin_id: str) -> bool:
        plugin = self.plugins.get(plugin_id)
        return bool(plugin and plugin.serving)

    def _impls(self, hook: str, plugin_id: str | None = None) -> list[pluggy.HookImpl]:
        caller = getattr(self.pm.hook, hook)
        return [
            impl for impl in caller.get_hookimpls()
            if self.serving(impl.plugin_name) and (plugin_id is None or impl.plugin_name == plugin_id)
        ]

    async def _call(self, impl: pluggy.HookImpl, **kwargs: Any) -> Any:
        kwargs["host"] = self.context_for(impl.plugin_name)
        args = {name: kwargs[name] for name in impl.argnames if name in kwargs}
        return await await_me_maybe(impl.function(**args))

    def _record_error(self, plugin_id: str, hook: str, exc: BaseException) -> None:
        plugin = self.plugins.get(plugin_id)
        if plugin:
            plugin.error = f"{hook}: {type(exc).__name__}: {exc}"
        log.error("plugin %s raised in %s\n%s", plugin_id, hook, traceback.format_exc(limit=5))

    async def _call_each(self, hook: str, refusal: type[Exception] | None = None,
                         **kwargs: Any) -> list[tuple[str, Any]]:
        """Every serving plugin's implementation, failures contained; returns
        (plugin id, result) for results that are not None."""
        results = []
        for impl in self._impls(hook):
            try:
                result = await self._call(impl, **kwargs)
            except Exception as exc:
                if refusal is not None and isinstance(exc, refusal):
                    raise
                self._record_error(impl.plugin_name, hook, exc)
                continue
            if result is not None:
                results.append((impl.plugin_name, result))
        return results

    # --- hooks that plugins declare for each other (`register_hookspecs`) -----------------

    async def call_plugins(self, hook: str, *, may_refuse: bool = False,
                           **kwargs: Any) -> list[tuple[str, Any]]:
        """Call a hook a plugin declared, under the same rules as the host's
        hooks: serving plugins only, failures contained, a `FulmenError`
        passed through only with `may_refuse`. Returns (plugin id, result)
        pairs; a hook nobody declared gives `[]`."""
        if getattr(self.pm.hook, hook, None) is None:
            return []
        return await self._call_each(hook, FulmenError if may_refuse else None, **kwargs)

    def implemented(self, hook: str) -> bool:
        """Whether a serving plugin implements this hook (to skip preparing
        arguments nobody will read)."""
        return getattr(self.pm.hook, hook, None) is not None and bool(self._impls(hook))

    # --- set-up (plain def, before the loop serves) ----------------------------------------

    def register_apps(self, plugin: Plugin) -> list[AppConfig]:
        apps = call_setup_hook(self.pm, plugin, "register_apps")
        return [a for a in (apps if isinstance(apps, list) else [apps]) if a]

    def register_routes(self, plugin: Plugin) -> list[Any]:
        handlers = call_setup_hook(self.pm, plugin, "register_routes",
                                   host=self.context_for(plugin.id))
        return list(handlers or [])

    def payment_filter(self, plugin: Plugin) -> PaymentFilter:
        """The plugin's `payment_filter` (asked once; every payment if none)."""
        if plugin.id not in self._filters:
            answer = call_setup_hook(self.pm, plugin, "payment_filter")
            if answer is not None and not isinstance(answer, PaymentFilter):
                raise TypeError(f"payment_filter must return fulmen.PaymentFilter, not {answer!r}")
            self._filters[plugin.id] = answer or PaymentFilter()
        return self._filters[plugin.id]

    # --- lifecycle (the caller decides what a failure means) --------------------------------

    async def startup(self, plugin: Plugin) -> None:
        for impl in self.pm.hook.startup.get_hookimpls():
            if impl.plugin_name == plugin.id:
                await self._call(impl)

    async def shutdown(self, plugin: Plugin) -> None:
        for impl in self.pm.hook.shutdown.get_hookimpls():
            if impl.plugin_name == plugin.id:
                await self._call(impl)

    # --- before money moves: only the named refusal escapes -------------------------------

    async def before_invoice_created(self, wallet: WalletAuth, request: InvoiceRequest) -> None:
        await self._call_each("before_invoice_created", InvoiceRejected, wallet=wallet, request=request)

    async def before_payment_sent(self, wallet: WalletAuth, invoice: InvoiceInfo) -> None:
        await self._call_each("before_payment_sent", PaymentRejected, wallet=wallet, invoice=invoice)

    # --- pages and questions ------------------------------------------------------------

    async def nav_entries(self) -> list[dict[str, str]]:
        """Navigation links of the serving plugins, each tagged with its plugin.
        Malformed entries are dropped (and logged), never rendered."""
        entries = []
        for plugin_id, result in await self._call_each("nav_entries"):
            for item in result if isinstance(result, list) else [result]:
                if isinstance(item, dict) and isinstance(item.get("href"), str) \
                        and isinstance(item.get("label"), str):
                    entries.append({"href": item["href"], "label": item["label"], "plugin": plugin_id})
                else:
                    log.warning("plugin %s: ignored nav entry %r (needs href and label)",
                                plugin_id, item)
        return entries

    async def wallet_actions(self, wallet_id: str) -> list[tuple[str, Any]]:
        """(plugin id, result) of each serving plugin's `wallet_actions`."""
        return await self._call_each("wallet_actions", wallet_id=wallet_id)

    async def resolve_lightning_address(self, username: str, base_url: str) -> dict[str, Any] | None:
        """First result wins (in pluggy's order: last registered first)."""
        for impl in reversed(self._impls("resolve_lightning_address")):
            try:
                result = await self._call(impl, username=username, base_url=base_url)
            except Exception as exc:
                self._record_error(impl.plugin_name, "resolve_lightning_address", exc)
                continue
            if isinstance(result, dict):
                return result
        return None

    # --- hooks called one plugin at a time (backups, wallet export and import) -------------

    def implementations(self, hook: str, plugin_id: str | None = None,
                        serving_only: bool = True) -> list[tuple[str, Callable[..., Any]]]:
        """(plugin id, call) for each implementation of `hook`; `await call(**kwargs)`
        runs it with the plugin's own `host`. The caller contains failures."""
        caller = getattr(self.pm.hook, hook)
        found = []
        for impl in caller.get_hookimpls():
            if plugin_id is not None and impl.plugin_name != plugin_id:
                continue
            if serving_only and not self.serving(impl.plugin_name):
                continue

            async def call(_impl: pluggy.HookImpl = impl, **kwargs: Any) -> Any:
                return await self._call(_impl, **kwargs)

            found.append((impl.plugin_name, call))
        return found

    # --- after money moved: durable deliveries ------------------------------------------------

    def payment_targets(self, hook: str, payment: Payment) -> list[tuple[str, bool]]:
        """Plugins that must get this payment hook (each with whether only its
        watched wallets count), by their `payment_filter`."""
        targets = []
        for impl in self._impls(hook):
            wanted = self.payment_filter(self.plugins[impl.plugin_name])
            if wanted.takes(payment.tag):
                targets.append((impl.plugin_name, wanted.watched_wallets_only))
        return targets

    def has_payment_targets(self) -> bool:
        return any(self._impls(hook) for hook in ("on_invoice_paid", "on_payment_sent",
                                                    "on_payment_failed"))

    def _serving_plugins_clause(self) -> tuple[str, list[Any]] | None:
        serving = [pid for pid, plugin in self.plugins.items() if plugin.serving]
        if not serving:
            return None
        return f"plugin_id IN ({', '.join('{}' for _ in serving)})", serving

    async def _deliver(self, row: dict[str, Any]) -> Outcome:
        """The outbox sender: call one plugin's payment hook with the payment."""
        impls = self._impls(row["hook"], row["plugin_id"])
        if not impls:
            return RELEASED  # stopped here since the claim: delivered once it serves again
        payments = await query("SELECT * FROM fulmen_payment WHERE id = {}", row["payment_id"])
        if not payments:
            return Outcome(error=f"payment {row['payment_id']} not found")
        payment = Payment.from_row(payments[0])
        for impl in impls:
            try:
                await self._call(impl, payment=payment)
            except Exception as exc:
                self._record_error(row["plugin_id"], row["hook"], exc)
                return Outcome(error=f"{type(exc).__name__}: {exc}")
        return DONE

    async def deliver_due(self) -> int:
        return await self.deliveries.deliver_due()

    async def list_deliveries(self, status: str | None = None, limit: int = 100,
                              plugin_id: str | None = None) -> list[dict[str, Any]]:
        where = {"plugin_id": plugin_id} if plugin_id else None
        return await self.deliveries.list(where, status=status, limit=limit)
