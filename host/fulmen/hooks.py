"""The host's typed front to `pm.hook`.

Everything that calls plugins goes through here, so three rules hold in one
place: only enabled plugins are called; an `async def` implementation is
awaited; and one plugin's exception is contained (logged, recorded) instead
of stopping the others. The exceptions a plugin raises on purpose to refuse
(`InvoiceRejected`, `PaymentRejected`) pass through to the caller.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import traceback
from typing import TYPE_CHECKING, Any

import pluggy

from .db import is_postgres, now_ms, query
from .errors import FulmenError
from .hookspecs import PAYMENT_HOOKS
from .models import Payment
from .plugins import PluginInfo

if TYPE_CHECKING:
    from .host import Host

log = logging.getLogger(__name__)

# A claim is a lease: the claiming process renews it while the hook runs, so a
# long hook keeps its row, and a row claimed by a process that died is taken
# over by another within CLAIM_MS.
CLAIM_MS = 10_000
RENEW_SECONDS = 3.0
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
        self._wake = asyncio.Event()

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

    async def call_all(self, hook: str, *, may_refuse: bool = False, **kwargs: Any) -> list[Any]:
        """Call every enabled implementation; contain failures. Returns
        `(plugin_id, result)` for each result that is not None. With
        `may_refuse`, a `FulmenError` (a deliberate refusal) reaches the caller."""
        kwargs.setdefault("host", self.host)
        results = []
        for impl in self._impls(hook):
            try:
                result = await self._call(impl, kwargs)
            except Exception as exc:
                if may_refuse and isinstance(exc, FulmenError):
                    raise
                self._record_error(impl.plugin_name, hook, exc)
                continue
            if result is not None:
                results.append((impl.plugin_name, result))
        return results

    async def call_plugins(self, hook: str, *, may_refuse: bool = False,
                           **kwargs: Any) -> list[Any]:
        """Call a hook a plugin declared (`register_hookspecs`), like `call_all`:
        enabled plugins only, failures contained, `(plugin_id, result)` pairs.
        A hook nobody declared or implemented gives `[]`."""
        if getattr(self.pm.hook, hook, None) is None:
            return []
        return await self.call_all(hook, may_refuse=may_refuse, **kwargs)

    def implemented(self, hook: str) -> bool:
        """Whether an enabled plugin implements this hook (to skip preparing
        arguments nobody will read)."""
        return getattr(self.pm.hook, hook, None) is not None and bool(self._impls(hook))

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
        await self.call_all("before_invoice_created", may_refuse=True, wallet=wallet, request=request)

    async def before_payment_sent(self, wallet: Any, invoice: Any) -> None:
        await self.call_all("before_payment_sent", may_refuse=True, wallet=wallet, invoice=invoice)

    async def nav_entries(self) -> list[dict[str, str]]:
        """Navigation links of the enabled plugins, each tagged with its plugin.
        Malformed entries are dropped (and logged), never rendered."""
        entries = []
        for plugin_id, result in await self.call_all("nav_entries"):
            for item in result if isinstance(result, list) else [result]:
                if isinstance(item, dict) and isinstance(item.get("href"), str) \
                        and isinstance(item.get("label"), str):
                    entries.append({"href": item["href"], "label": item["label"], "plugin": plugin_id})
                else:
                    log.warning("plugin %s: ignored nav entry %r (needs href and label)",
                                plugin_id, item)
        return entries

    def durable_targets(self, hook: str, payment: Payment | None = None) -> list[tuple[str, bool]]:
        """Plugins that must get this payment hook, recorded in the outbox, each
        with whether only its watched wallets count (`watch_wallets = True`).
        A plugin module with `payment_tags` only gets payments so tagged."""
        targets = []
        for impl in self._impls(hook):
            module = self.plugins[impl.plugin_name].module
            tags = getattr(module, "payment_tags", None)
            if tags is None or payment is None or payment.tag in tags:
                targets.append((impl.plugin_name, bool(getattr(module, "watch_wallets", False))))
        return targets

    async def record_deliveries(self, hook: str, payment: Payment) -> bool:
        """Write this payment's delivery rows (inside the payment's transaction).
        Returns whether any was written. A plugin that watches wallets gets a
        row only when it watches the payment's wallet: the check is part of the
        INSERT, so it costs no extra round trip."""
        now = now_ms()
        recorded = False
        for plugin_id, by_wallet in self.durable_targets(hook, payment):
            rows = await query(
                "INSERT INTO fulmen_hook_delivery (payment_id, plugin_id, hook, status, attempts, "
                "next_attempt_at, locked_until, created_at) "
                "SELECT {}, {}, {}, 'pending', 0, {}, 0, {} "
                + ("WHERE EXISTS (SELECT 1 FROM fulmen_hook_wallet WHERE plugin_id = {} AND wallet_id = {}) "
                   if by_wallet else "")
                + "RETURNING id",
                payment.id, plugin_id, hook, now, now,
                *((plugin_id, payment.wallet_id) if by_wallet else ()),
            )
            recorded = recorded or bool(rows)
        return recorded

    async def watch_wallet(self, plugin_id: str, wallet_id: str, watch: bool = True) -> None:
        """Start (or stop) giving a `watch_wallets` plugin the payment hooks of
        this wallet. Call it in the transaction that changes what the plugin
        keeps for the wallet, so the two never disagree."""
        if watch:
            await query(
                "INSERT INTO fulmen_hook_wallet (plugin_id, wallet_id) VALUES ({}, {}) "
                "ON CONFLICT (plugin_id, wallet_id) DO NOTHING",
                plugin_id, wallet_id,
            )
        else:
            await query(
                "DELETE FROM fulmen_hook_wallet WHERE plugin_id = {} AND wallet_id = {}",
                plugin_id, wallet_id,
            )

    def wake(self) -> None:
        """New deliveries were committed: the worker should look now."""
        self._wake.set()

    async def run(self, poll_seconds: float = 1.0) -> None:
        """The delivery worker (one per process): runs due deliveries when
        woken after a payment, and every `poll_seconds` for retries and rows
        left by other processes."""
        while True:
            try:
                while await self.deliver_due():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("hook delivery pass failed")
            try:
                await asyncio.wait_for(self._wake.wait(), poll_seconds)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    def has_durable_targets(self) -> bool:
        return any(self._impls(hook) for hook in PAYMENT_HOOKS)

    # --- durable payment-hook delivery -------------------------------------------------

    async def deliver_due(self) -> int:
        """Claim due deliveries for enabled plugins and run them. Safe to run
        in every process at once: a conditional UPDATE hands each row to one.
        Returns how many rows this call claimed."""
        enabled = [pid for pid, info in self.plugins.items() if info.usable and info.enabled]
        if not enabled:
            return 0
        now = now_ms()
        lease = now + CLAIM_MS
        placeholders = ", ".join("{}" for _ in enabled)
        rows = await query(
            "UPDATE fulmen_hook_delivery SET locked_until = {}, attempts = attempts + 1 "
            "WHERE id IN (SELECT id FROM fulmen_hook_delivery WHERE status = 'pending' "
            f"AND next_attempt_at <= {{}} AND locked_until < {{}} AND plugin_id IN ({placeholders}) "
            # PostgreSQL: rows another process is claiming are skipped, not waited for
            f"ORDER BY id LIMIT {{}}{' FOR UPDATE SKIP LOCKED' if is_postgres() else ''}) "
            "AND status = 'pending' AND locked_until < {} RETURNING *",
            lease, now, now, *enabled, BATCH, now,
        )
        for row in sorted(rows, key=lambda r: r["id"]):
            await self._deliver(row)
        return len(rows)

    async def _renew(self, row_id: int, lease: list[int]) -> None:
        """Keep a claimed row's lease while its hook runs. `lease[0]` is the
        value we wrote; it doubles as our claim token."""
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            new = now_ms() + CLAIM_MS
            renewed = await query(
                "UPDATE fulmen_hook_delivery SET locked_until = {} "
                "WHERE id = {} AND locked_until = {} AND status = 'pending' RETURNING id",
                new, row_id, lease[0],
            )
            if not renewed:
                log.warning("hook delivery %s: lease lost while the hook ran", row_id)
                return
            lease[0] = new

    async def _deliver(self, row: dict[str, Any]) -> None:
        lease = [int(row["locked_until"])]
        impls = self._impls(row["hook"], row["plugin_id"])
        if not impls:
            # Disabled (here) since the claim: hand the row back untouched; it is
            # delivered when the plugin is enabled again.
            await query(
                "UPDATE fulmen_hook_delivery SET locked_until = 0, attempts = attempts - 1 "
                "WHERE id = {} AND locked_until = {}",
                row["id"], lease[0],
            )
            return
        error = None
        renewer = asyncio.ensure_future(self._renew(row["id"], lease))
        try:
            payments = await query("SELECT * FROM fulmen_payment WHERE id = {}", row["payment_id"])
            if not payments:
                raise LookupError(f"payment {row['payment_id']} not found")
            payment = Payment.from_row(payments[0])
            for impl in impls:
                await self._call(impl, {"host": self.host, "payment": payment})
        except Exception as exc:
            self._record_error(row["plugin_id"], row["hook"], exc)
            error = f"{type(exc).__name__}: {exc}"
        finally:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
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

    async def deliveries(
        self, status: str | None = None, limit: int = 100, plugin_id: str | None = None
    ) -> list[dict[str, Any]]:
        where, args = [], []
        if status:
            where.append("status = {}")
            args.append(status)
        if plugin_id:
            where.append("plugin_id = {}")
            args.append(plugin_id)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        return await query(
            f"SELECT * FROM fulmen_hook_delivery {clause}ORDER BY id DESC LIMIT {{}}", *args, limit
        )
