"""A primary funding source with a secondary that takes new invoices while
the primary is down.

Only invoices fall back. Payments always go out through the primary, and
the primary alone is asked about them, so a payment the primary may still
complete is never settled or refunded on another source's word.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from .base import (
    CreatedInvoice,
    FundingError,
    FundingSource,
    NodeStatus,
    PaymentState,
    PaymentStatus,
)

log = logging.getLogger(__name__)


class FallbackFunding:
    def __init__(self, primary: FundingSource, secondary: FundingSource) -> None:
        self.primary = primary
        self.secondary = secondary
        self.name = f"{primary.name}+{secondary.name}"

    async def start(self) -> None:
        await self.primary.start()
        await self.secondary.start()

    async def close(self) -> None:
        await self.primary.close()
        await self.secondary.close()

    async def status(self) -> NodeStatus:
        try:
            status = await self.primary.status()
            if status.error is None:
                return status
            problem = status.error
        except Exception as exc:
            problem = str(exc) or type(exc).__name__
        secondary = await self.secondary.status()
        if secondary.error is not None:
            return NodeStatus(0, error=f"primary: {problem}; secondary: {secondary.error}")
        return NodeStatus(secondary.balance_msat, error=None, degraded=f"primary down ({problem}); "
                          f"new invoices go to {self.secondary.name}")

    async def create_invoice(self, amount_msat: int, memo: str, description_hash: bytes | None,
                             expiry: int) -> CreatedInvoice:
        try:
            return await self.primary.create_invoice(amount_msat, memo, description_hash, expiry)
        except FundingError as exc:
            log.warning("primary funding source failed (%s); invoice from %s", exc, self.secondary.name)
            return await self.secondary.create_invoice(amount_msat, memo, description_hash, expiry)

    async def pay_invoice(self, bolt11: str, fee_limit_msat: int) -> PaymentStatus:
        return await self.primary.pay_invoice(bolt11, fee_limit_msat)

    async def get_payment_status(self, payment_hash: str) -> PaymentStatus:
        return await self.primary.get_payment_status(payment_hash)

    async def get_invoice_status(self, checking_id: str) -> PaymentStatus:
        try:
            status = await self.primary.get_invoice_status(checking_id)
            if status.state is PaymentState.SUCCESS:
                return status
        except FundingError:
            pass
        return await self.secondary.get_invoice_status(checking_id)

    def preimage_of(self, bolt11: str, payment_hash: str) -> str | None:
        """The preimage of an invoice a source derives instead of storing."""
        for source in (self.primary, self.secondary):
            derive = getattr(source, "preimage_of", None)
            found = derive(bolt11, payment_hash) if derive else None
            if found:
                return found
        return None

    def watch(self, checking_id: str, expires_at: float | None = None) -> None:
        for source in (self.primary, self.secondary):
            if hasattr(source, "watch"):
                source.watch(checking_id, expires_at)

    async def paid_invoices_stream(self) -> AsyncIterator[str]:
        """Both sources' settlements, as they come."""
        queue: asyncio.Queue[str] = asyncio.Queue()

        async def pump(source: FundingSource) -> None:
            while True:
                try:
                    async for checking_id in source.paid_invoices_stream():
                        await queue.put(checking_id)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("%s invoice stream ended (%r); restarting", source.name, exc)
                    await asyncio.sleep(1)

        tasks = [asyncio.ensure_future(pump(s)) for s in (self.primary, self.secondary)]
        try:
            while True:
                yield await queue.get()
        finally:
            for task in tasks:
                task.cancel()
