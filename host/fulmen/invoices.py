"""Every number and date taken from a BOLT11 invoice or a node's answer, bounded.

An invoice is signed by whoever made it, so its fields are attacker input: a
2^38-second expiry, a timestamp centuries ahead, an amount above all bitcoin.
Stored unchecked, such a value overflows the date type when the payment is
shown and freezes the payment. `decode_invoice` refuses what does not fit
with a 400 before anything is stored or sent to the node, and
`check_created` holds a node's new invoice to what the host asked for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import bolt11 as bolt11_lib

from .errors import BadNodeAnswer, BadRequest

#: 21 million bitcoin in msat: no amount or balance can be larger.
MAX_MSAT = 21_000_000 * 100_000_000 * 1000
#: The longest invoice expiry accepted: one year.
MAX_EXPIRY_SECONDS = 365 * 24 * 3600
#: How far ahead of this host's clock an invoice's timestamp may be.
MAX_CLOCK_SKEW_SECONDS = 24 * 3600
#: The first day of Lightning invoices (2017-01-01); older timestamps are nonsense.
MIN_TIMESTAMP = 1_483_228_800
#: The largest final CLTV delta a payer's node accepts (LND's and Core
#: Lightning's default maximum is 2016 blocks, two weeks).
MAX_MIN_FINAL_CLTV = 2016

NETWORK_NAMES = {"bc": "mainnet", "tb": "testnet", "tbs": "signet", "bcrt": "regtest"}


@dataclass(frozen=True)
class DecodedInvoice:
    payment_hash: str
    amount_msat: int  # 0 for an amountless invoice
    timestamp: int  # Unix seconds
    expiry: int  # seconds
    min_final_cltv: int
    currency: str
    description: str | None
    description_hash: str | None
    payee: str | None

    @property
    def expires_at_ms(self) -> int:
        return (self.timestamp + self.expiry) * 1000


def network_name(currency: str) -> str:
    return NETWORK_NAMES.get(currency, currency)


def decode_invoice(bolt11: str, network: str | None = None) -> DecodedInvoice:
    """Decode and bound an invoice; BadRequest (400) for anything out of range,
    or for an invoice of another network than `network` (a bolt11 currency
    prefix: bc, tb, tbs, bcrt)."""
    try:
        decoded = bolt11_lib.decode(bolt11)
    except Exception as exc:  # noqa: BLE001 - the decoder raises many types for bad input
        raise BadRequest(f"Invalid bolt11 invoice: {exc or type(exc).__name__}") from None
    currency = str(decoded.currency)
    if network is not None and currency != network:
        raise BadRequest(
            f"This invoice is for bitcoin {network_name(currency)} ({currency}); "
            f"this host uses {network_name(network)} ({network}) invoices only"
        )
    amount = int(decoded.amount_msat or 0)
    if not 0 <= amount <= MAX_MSAT:
        raise BadRequest("Invoice amount is out of range (more than 21 million bitcoin)")
    timestamp = int(decoded.date)
    if timestamp < MIN_TIMESTAMP or timestamp > time.time() + MAX_CLOCK_SKEW_SECONDS:
        raise BadRequest("Invoice timestamp is out of range")
    expiry = int(decoded.expiry)
    if not 0 <= expiry <= MAX_EXPIRY_SECONDS:
        raise BadRequest(
            f"Invoice expiry of {expiry} seconds is out of range (at most {MAX_EXPIRY_SECONDS})"
        )
    cltv = int(decoded.min_final_cltv_expiry or 0)
    if not 0 <= cltv <= MAX_MIN_FINAL_CLTV:
        raise BadRequest(
            f"Invoice min_final_cltv_expiry of {cltv} blocks is out of range "
            f"(at most {MAX_MIN_FINAL_CLTV})"
        )
    return DecodedInvoice(
        payment_hash=str(decoded.payment_hash).lower(), amount_msat=amount, timestamp=timestamp,
        expiry=expiry, min_final_cltv=cltv, currency=currency, description=decoded.description,
        description_hash=decoded.description_hash, payee=decoded.payee,
    )


def check_created(
    bolt11: str, payment_hash: str | None, amount_msat: int, network: str | None
) -> DecodedInvoice:
    """A funding source's new invoice must decode, be bounded, be for this
    host's network, commit to the payment hash the node returned (when it
    returned one) and ask for the amount the host asked for. Anything else is
    refused (BadNodeAnswer, 502): the invoice is not stored or shown."""
    try:
        decoded = decode_invoice(bolt11, network)
    except BadRequest as exc:
        raise BadNodeAnswer(
            f"The funding source returned an unusable invoice: {exc.detail}"
        ) from None
    if payment_hash and decoded.payment_hash != payment_hash.lower():
        raise BadNodeAnswer(
            "The funding source returned an invoice whose payment hash "
            f"({decoded.payment_hash}) differs from the one it reported ({payment_hash.lower()})"
        )
    if decoded.amount_msat != amount_msat:
        raise BadNodeAnswer(
            f"The funding source returned an invoice for {decoded.amount_msat} msat; "
            f"{amount_msat} msat was asked for"
        )
    return decoded
