"""FakeWallet: the embedded default funding source.

It signs real BOLT11 invoices with a persistent node key, so any wallet or
library can decode and verify them, but it is connected to no network: it
can only be paid by this host (internal payments) or by an admin "settle as
if paid from outside". It refuses to pay invoices from other nodes.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import time
from pathlib import Path
from typing import AsyncIterator

import bolt11
from bolt11 import Bolt11, MilliSatoshi, TagChar, Tags
from coincurve import PrivateKey

from .base import CreatedInvoice, FundingError, NodeStatus, PaymentState, PaymentStatus


def load_or_create_node_key(data_dir: Path, configured: str = "") -> str:
    """The node key as hex: from settings, else data_dir/node_key (created 0600)."""
    if configured:
        return configured
    path = data_dir / "node_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


class FakeWallet:
    name = "fake"

    def __init__(self, node_key_hex: str, network: str = "bc") -> None:
        self.private_key = node_key_hex
        self.pubkey = PrivateKey(bytes.fromhex(node_key_hex)).public_key.format().hex()
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
        preimage = secrets.token_bytes(32)
        payment_hash = hashlib.sha256(preimage).hexdigest()
        tags = Tags()
        tags.add(TagChar.payment_hash, payment_hash)
        tags.add(TagChar.payment_secret, secrets.token_hex(32))
        if description_hash is not None:
            tags.add(TagChar.description_hash, description_hash.hex())
        else:
            tags.add(TagChar.description, memo)
        tags.add(TagChar.expire_time, expiry)
        tags.add(TagChar.min_final_cltv_expiry, 18)
        invoice = Bolt11(
            currency=self.network,
            date=int(time.time()),
            tags=tags,
            amount_msat=MilliSatoshi(amount_msat) if amount_msat else None,
        )
        encoded = bolt11.encode(invoice, self.private_key)
        return CreatedInvoice(
            checking_id=payment_hash,
            payment_hash=payment_hash,
            bolt11=encoded,
            preimage=preimage.hex(),
        )

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
