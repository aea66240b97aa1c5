"""A funding source whose credentials come from Vault and are renewed when refused.

When the node refuses the credential (`NodeAuthError`: a rotated macaroon,
rune, password or key), the Vault secret is read again; if it changed, the
source is rebuilt with the new values, started, and the call is made once
more. A refusal means nothing was sent, so repeating a payment is safe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from ..vault import VaultStore
from .base import CreatedInvoice, FundingSource, NodeStatus, PaymentStatus
from .http import NodeAuthError

log = logging.getLogger("fulmen.funding.vault")

T = TypeVar("T")


class VaultRenewingFunding:
    def __init__(self, make: Callable[[], FundingSource], store: VaultStore) -> None:
        self._make = make
        self.store = store
        self.inner = make()
        self.name = self.inner.name
        self._renewing = asyncio.Lock()
        self._replaced = asyncio.Event()
        self._started = False

    def __repr__(self) -> str:
        return f"<VaultRenewingFunding {self.inner!r}>"

    def __getattr__(self, name: str) -> Any:
        # pubkey, watch(), ...: whatever the wrapped source offers
        return getattr(self.inner, name)

    async def renew(self, refused: FundingSource) -> bool:
        """Read Vault again; rebuild the source if its secret changed. True when
        there is a different source to try (rebuilt now or by a concurrent call)."""
        async with self._renewing:
            if self.inner is not refused:
                return True
            before = dict(self.store.read())
            after = await asyncio.to_thread(self.store.read, True)
            if after == before:
                log.warning("%s refused its credential and Vault holds no other", self.name)
                return False
            fresh = self._make()
            if self._started:
                await fresh.start()
            # invoices the old source was watching (polling backends)
            watched = getattr(getattr(refused, "watcher", None), "_watched", {})
            if hasattr(fresh, "watch"):
                for checking_id, expires_at in dict(watched).items():
                    fresh.watch(checking_id, expires_at)
            self.inner = fresh
            self._replaced.set()
            log.info("%s: new credentials from Vault in use", self.name)
        try:
            await refused.close()
        except Exception as exc:  # noqa: BLE001 - the old source is being dropped anyway
            log.debug("closing the replaced funding source: %r", exc)
        return True

    async def _call(self, call: Callable[[FundingSource], Awaitable[T]]) -> T:
        source = self.inner
        try:
            return await call(source)
        except NodeAuthError:
            if not await self.renew(source):
                raise
            return await call(self.inner)

    async def start(self) -> None:
        self._started = True
        await self._call(lambda s: s.start())

    async def close(self) -> None:
        self._started = False
        await self.inner.close()

    async def status(self) -> NodeStatus:
        return await self._call(lambda s: s.status())

    async def create_invoice(self, amount_msat: int, memo: str, description_hash: bytes | None,
                             expiry: int) -> CreatedInvoice:
        return await self._call(
            lambda s: s.create_invoice(amount_msat, memo, description_hash, expiry))

    async def pay_invoice(self, bolt11: str, fee_limit_msat: int) -> PaymentStatus:
        return await self._call(lambda s: s.pay_invoice(bolt11, fee_limit_msat))

    async def get_payment_status(self, payment_hash: str) -> PaymentStatus:
        return await self._call(lambda s: s.get_payment_status(payment_hash))

    async def get_invoice_status(self, checking_id: str) -> PaymentStatus:
        return await self._call(lambda s: s.get_invoice_status(checking_id))

    def watch(self, checking_id: str, expires_at: float | None = None) -> None:
        watch = getattr(self.inner, "watch", None)
        if watch is not None:
            watch(checking_id, expires_at)

    async def paid_invoices_stream(self) -> AsyncIterator[str]:
        """The current source's stream; when the source is replaced, the new one's."""
        while True:
            source = self.inner
            queue: asyncio.Queue[str] = asyncio.Queue()

            async def pump(source: FundingSource = source,
                           queue: asyncio.Queue[str] = queue) -> None:
                async for checking_id in source.paid_invoices_stream():
                    await queue.put(checking_id)

            pumping = asyncio.ensure_future(pump())
            self._replaced.clear()
            try:
                while self.inner is source:
                    getting = asyncio.ensure_future(queue.get())
                    replaced = asyncio.ensure_future(self._replaced.wait())
                    await asyncio.wait({getting, replaced, pumping},
                                       return_when=asyncio.FIRST_COMPLETED)
                    replaced.cancel()
                    if getting.done():
                        yield getting.result()
                        continue
                    getting.cancel()
                    if pumping.done():
                        exc = pumping.exception()
                        if isinstance(exc, NodeAuthError):
                            if not await self.renew(source):
                                raise exc
                        elif exc is not None and self.inner is source:
                            raise exc
                        elif exc is None and self.inner is source:
                            return
                        break
            finally:
                pumping.cancel()
