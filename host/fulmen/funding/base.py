"""The funding-source interface: what the host needs from a Lightning node.

A funding source never touches the ledger. It creates invoices, pays invoices
and answers questions about their state; the payment service turns those
answers into balance changes. Every method may raise `FundingError` when the
node cannot be reached or answers nonsense: for a payment that means
"unknown", and the payment stays pending until a later check says otherwise.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class FundingError(Exception):
    """The node could not be reached or gave an answer we cannot use."""


class PaymentState(str, enum.Enum):
    PENDING = "pending"
    SUCCESS = "success"
    FAILED = "failed"


@dataclass(frozen=True)
class NodeStatus:
    balance_msat: int
    error: str | None = None  # None when the node is usable
    degraded: str | None = None  # usable, but not as configured (a fallback is serving)


@dataclass(frozen=True)
class CreatedInvoice:
    checking_id: str  # the node's id for this invoice (usually the payment hash)
    payment_hash: str
    bolt11: str
    preimage: str | None = None  # known only when the host's own node made it
    #: the host encoded and signed this invoice itself from these very fields
    #: (FakeWallet), so the payment service need not decode it to check it
    self_encoded: bool = False


@dataclass(frozen=True)
class PaymentStatus:
    state: PaymentState
    fee_msat: int | None = None
    preimage: str | None = None
    error: str | None = None  # why it failed, for the user

    @property
    def final(self) -> bool:
        return self.state is not PaymentState.PENDING


@runtime_checkable
class FundingSource(Protocol):
    """Implemented by FakeWallet, LND, Core Lightning, Eclair and upstream LNbits."""

    name: str

    async def start(self) -> None:
        """Open connections. Called once at host start."""

    async def close(self) -> None:
        """Release connections. Called once at host shutdown."""

    async def status(self) -> NodeStatus:
        """Node reachability and spendable balance."""

    async def create_invoice(
        self,
        amount_msat: int,
        memo: str,
        description_hash: bytes | None,
        expiry: int,
    ) -> CreatedInvoice:
        """Ask the node for a BOLT11 invoice. With `description_hash` the
        invoice commits to that hash instead of `memo`."""

    async def pay_invoice(self, bolt11: str, fee_limit_msat: int) -> PaymentStatus:
        """Pay an invoice spending at most `fee_limit_msat` in routing fees.
        May return PENDING: the host then keeps the funds reserved and asks
        again later with `get_payment_status`."""

    async def get_payment_status(self, payment_hash: str) -> PaymentStatus:
        """State of an outgoing payment. FAILED only when the node is sure."""

    async def get_invoice_status(self, checking_id: str) -> PaymentStatus:
        """State of an incoming invoice (SUCCESS = paid)."""

    def paid_invoices_stream(self) -> AsyncIterator[str]:
        """Yield the checking_id of each invoice as it is paid, forever.
        Reconnect with backoff on disconnect; the host also polls pending
        invoices after a reconnect, so a missed settlement is found."""
