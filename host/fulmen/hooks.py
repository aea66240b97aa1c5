"""The host's typed front to `pm.hook`.

Everything that calls plugins goes through here, so three rules hold in one
place: only enabled plugins are called; an `async def` implementation is
awaited; and one plugin's exception is contained (logged, recorded) instead
of stopping the others. The exceptions a plugin raises on purpose to refuse
(`InvoiceRejected`, `PaymentRejected`) pass through to the caller.
"""

from __future__ import annotations

import inspect
import logging
import traceback
from typing import TYPE_CHECKING, Any

import pluggy

from .db import now_ms, query
from .errors import FulmenError
from .hookspecs import PAYMENT_HOOKS
from .models import Payment
from .plugins import PluginInfo

if TYPE_CHECKING:
    from .host import Host

log = logging.getLogger(__name__)

CLAIM_MS = 60_000  # a claimed delivery is retried by anyone after this
MAX_ATTEMPTS = 20  # backoff doubles from 2 s, capped at 1 h: about a day in all
BATCH = 50


async def await_me_maybe(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def backoff_ms(attempts: int) -> int:
    return min(2 ** attempts * 1000, 3_600_000)


class Hooks:
    def __init__(self, pm: pluggy.PluginManager, plugins: dict[str, PluginInfo]) -> None:
        self.pm = pm
        self.plugins = plugins
        self.host: Host | None = None

    def enabled(self, plugin_id: str) -> bool:
        info = self.plugins.get(plugin_id)
        return bool(info and info.usable and info.enabled)

    def _impls(self, hook: str, plugin_id: str | None = None) -> list[pluggy.HookImpl]:
        caller = getattr(self.pm.hook, hook)
        return [
            impl
            for impl in caller.get_hookimpls()
            if self.enabled(impl.plugin_name) and (plugin_id is None or impl.plugin_name == plugin_id)
        ]

    async def _call(self, impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
        args = {name: kwargs[name] for name in impl.argnames if name in kwargs}
        return await await_me_maybe(impl.function(**args))

    async def call_all(self, hook: str, **kwargs: Any) -> list[Any]:
        """Call every enabled implementation; contain failures."""
        kwargs.setdefault("host", self.host)
        results = []
        for impl in self._impls(hook):
            try:
                result = await self._call(impl, kwargs)
            except FulmenError:
                raise
            except Exception as exc:
                self._record_error(impl.plugin_name, hook, exc)
                continue
            if result is not None:
                results.append((impl.plugin_name, result))
        return results

    async def call_first(self, hook: str, **kwargs: Any) -> Any:
        kwargs.setdefault("host", self.host)
        for impl in reversed(self._impls(hook)):  # pluggy's order: last registered first
            try:
                result = await self._call(impl, kwargs)
            except Exception as exc:
                self._record_error(impl.plugin_name, hook, exc)
                continue
            if result is not None:
                return result
        return None

    async def call_plugin(self, plugin_id: str, hook: str, **kwargs: Any) -> None:
        """Call one plugin's implementation, enabled or not; exceptions propagate
        (used for startup/shutdown, where the caller decides what failure means)."""
        kwargs.setdefault("host", self.host)
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            if impl.plugin_name == plugin_id:
                await self._call(impl, kwargs)

    def _record_error(self, plugin_id: str, hook: str, exc: BaseException) -> None:
        info = self.plugins.get(plugin_id)
        message = f"{hook}: {type(exc).__name__}: {exc}"
        if info:
            info.error = message
        log.error("plugin %s raised in %s\n%s", plugin_id, hook, traceback.format_exc(limit=5))

    # --- the hooks the payment service calls --------------------------------------

    async def before_invoice_created(self, wallet: Any, request: Any) -> None:
        await self.call_all("before_invoice_created", wallet=wallet, request=request)

    async def before_payment_sent(self, wallet: Any, invoice: Any) -> None:
        await self.call_all("before_payment_sent", wallet=wallet, invoice=invoice)

    def durable_targets(self, hook: str) -> list[str]:
        """Plugins that must get this payment hook: recorded in the outbox."""
        return [impl.plugin_name for impl in self._impls(hook)]

    def has_durable_targets(self) -> bool:
        return any(self._impls(hook) for hook in PAYMENT_HOOKS)

    # --- durable payment-hook delivery -------------------------------------------------

    async def deliver_due(self) -> int:
        """Claim due deliveries for enabled plugins and run them. Safe to run
        in every process at once: a conditional UPDATE hands each row to one."""
        enabled = [pid for pid, info in self.plugins.items() if info.usable and info.enabled]
        if not enabled:
            return 0
        now = now_ms()
        placeholders = ", ".join("{}" for _ in enabled)
        rows = await query(
            "UPDATE fulmen_hook_delivery SET locked_until = {}, attempts = attempts + 1 "
            "WHERE id IN (SELECT id FROM fulmen_hook_delivery WHERE status = 'pending' "
            f"AND next_attempt_at <= {{}} AND locked_until < {{}} AND plugin_id IN ({placeholders}) "
            "ORDER BY id LIMIT {}) AND status = 'pending' AND locked_until < {} RETURNING *",
            now + CLAIM_MS, now, now, *enabled, BATCH, now,
        )
        for row in sorted(rows, key=lambda r: r["id"]):
            await self._deliver(row)
        return len(rows)

    async def _deliver(self, row: dict[str, Any]) -> None:
        payments = await query("SELECT * FROM fulmen_payment WHERE id = {}", row["payment_id"])
        impls = self._impls(row["hook"], row["plugin_id"])
        error = None
        try:
            for impl in impls:
                await self._call(impl, {"host": self.host, "payment": Payment.from_row(payments[0])})
        except Exception as exc:
            self._record_error(row["plugin_id"], row["hook"], exc)
            error = f"{type(exc).__name__}: {exc}"
        now = now_ms()
        if error is None:
            await query(
                "UPDATE fulmen_hook_delivery SET status = 'done', last_error = NULL, locked_until = 0 "
                "WHERE id = {}",
                row["id"],
            )
        else:
            attempts = int(row["attempts"])
            status = "failed" if attempts >= MAX_ATTEMPTS else "pending"
            await query(
                "UPDATE fulmen_hook_delivery SET status = {}, last_error = {}, locked_until = 0, "
                "next_attempt_at = {} WHERE id = {}",
                status, error, now + backoff_ms(attempts), row["id"],
            )

    async def deliveries(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        if status:
            return await query(
                "SELECT * FROM fulmen_hook_delivery WHERE status = {} ORDER BY id DESC LIMIT {}",
                status, limit,
            )
        return await query("SELECT * FROM fulmen_hook_delivery ORDER BY id DESC LIMIT {}", limit)
