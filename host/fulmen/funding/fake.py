"""FakeWallet: the embedded default funding source.

It signs real BOLT11 invoices with a persistent node key, so any wallet or
library can decode and verify them, but it is connected to no network: it
can only be paid by this host (internal payments) or by an admin "settle as
if paid from outside". It refuses to pay invoices from other nodes.

An invoice's preimage is HMAC-SHA256(node key, the invoice's random payment
secret), so it is not stored while the invoice is unpaid: the host asks
`preimage_of` when it settles the invoice, and a copy of the database alone
(which holds the invoice text, hence the payment secret, but not the node
key) cannot claim an unpaid invoice.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

from coincurve import PrivateKey

from ..secret_files import read_or_create_secret
from .base import CreatedInvoice, FundingError, NodeStatus, PaymentState, PaymentStatus
from .bolt11_encode import encode_invoice, read_payment_secret


def load_or_create_node_key(data_dir: Path, configured: str = "") -> str:
    """The node key as hex: from settings, else data_dir/node_key (created 0600)."""
    if configured:
        return configured
    return read_or_create_secret(data_dir / "node_key", lambda: secrets.token_hex(32))[0]


class FakeWallet:
    name = "fake"

    def __init__(self, node_key_hex: str, network: str = "bc") -> None:
        self._key = PrivateKey(bytes.fromhex(node_key_hex))
        self._preimage_key = hmac.new(self._key.secret, b"fulmen fake preimages", hashlib.sha256).digest()
        self.pubkey = self._key.public_key.format().hex()
        self.network = network
        self._paid: asyncio.Queue[str] = asyncio.Queue()

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def status(self) -> NodeStatus:
        return NodeStatus(balance_msat=0)

    async def create_invoice(
        self, amount_msat: int, memo: str, description_hash: bytes | None, expiry: int
    ) -> CreatedInvoice:
        secret = secrets.token_bytes(32)
        payment_hash = hashlib.sha256(self._preimage(secret)).hexdigest()
        encoded = encode_invoice(
            self._key, self.network, amount_msat, int(time.time()), bytes.fromhex(payment_hash),
            secret, memo, description_hash, expiry,
        )
        return CreatedInvoice(
            checking_id=payment_hash,
            payment_hash=payment_hash,
            bolt11=encoded,
            preimage=None,  # derived again when paid (`preimage_of`)
            self_encoded=True,
        )

    def _preimage(self, payment_secret: bytes) -> bytes:
        return hmac.new(self._preimage_key, payment_secret, hashlib.sha256).digest()

    def preimage_of(self, bolt11: str, payment_hash: str) -> str | None:
        """The preimage of an invoice this FakeWallet made (None for any other)."""
        secret = read_payment_secret(bolt11)
        if secret is None:
            return None
        preimage = self._preimage(secret)
        if not hmac.compare_digest(hashlib.sha256(preimage).hexdigest(), payment_hash.lower()):
            return None
        return preimage.hex()

    async def pay_invoice(self, bolt11: str, fee_limit_msat: int) -> PaymentStatus:
        return PaymentStatus(
            PaymentState.FAILED,
            error="FakeWallet is not connected to the Lightning Network: "
            "it can only pay invoices issued by this host",
        )

    async def get_payment_status(self, payment_hash: str) -> PaymentStatus:
        # Nothing FakeWallet pays ever leaves the host, so nothing is in flight.
        return PaymentStatus(PaymentState.FAILED, error="unknown to FakeWallet")

    async def get_invoice_status(self, checking_id: str) -> PaymentStatus:
        return PaymentStatus(PaymentState.PENDING)

    def mark_paid(self, checking_id: str) -> None:
        """Used by the admin "settle from outside" call."""
        self._paid.put_nowait(checking_id)

    async def paid_invoices_stream(self) -> AsyncIterator[str]:
        while True:
            yield await self._paid.get()


__all__ = ["FakeWallet", "FundingError", "load_or_create_node_key"]


def from_settings(settings) -> FakeWallet:
    key = load_or_create_node_key(settings.data_dir, settings.fake_node_key)
    return FakeWallet(key, settings.network)
