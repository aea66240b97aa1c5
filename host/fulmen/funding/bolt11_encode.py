"""Encode and sign a BOLT11 invoice, fast.

The `bolt11` package decodes (and can encode) invoices, but its encoder
packs bits through `bitstring` and costs several milliseconds per invoice,
which capped invoice creation on FakeWallet. Encoding the handful of fields
FakeWallet uses is a few integer shifts; the result is checked against the
`bolt11` decoder in the tests.
"""

from __future__ import annotations

import hashlib

from bech32 import bech32_encode, convertbits
from bolt11.utils import msat_to_amount
from coincurve import PrivateKey

# BOLT11 tagged-field types (the bech32 character's value)
PAYMENT_HASH, PAYMENT_SECRET, DESCRIPTION, DESCRIPTION_HASH = 1, 16, 13, 23
EXPIRY, MIN_FINAL_CLTV = 6, 24


def _words(data: bytes) -> list[int]:
    return convertbits(data, 8, 5, True) or []


def _int_words(value: int) -> list[int]:
    words = []
    while True:
        words.append(value & 31)
        value >>= 5
        if not value:
            return words[::-1]


def _field(kind: int, words: list[int]) -> list[int]:
    return [kind, len(words) >> 5, len(words) & 31, *words]


def encode_invoice(
    key: PrivateKey,
    currency: str,
    amount_msat: int,
    timestamp: int,
    payment_hash: bytes,
    payment_secret: bytes,
    description: str | None,
    description_hash: bytes | None,
    expiry: int,
    min_final_cltv: int = 18,
) -> str:
    hrp = "ln" + currency + (msat_to_amount(amount_msat) if amount_msat else "")
    data = [(timestamp >> (5 * i)) & 31 for i in range(6, -1, -1)]  # 35-bit timestamp
    data += _field(PAYMENT_HASH, _words(payment_hash))
    data += _field(PAYMENT_SECRET, _words(payment_secret))
    if description_hash is not None:
        data += _field(DESCRIPTION_HASH, _words(description_hash))
    else:
        data += _field(DESCRIPTION, _words((description or "").encode()))
    data += _field(EXPIRY, _int_words(expiry))
    data += _field(MIN_FINAL_CLTV, _int_words(min_final_cltv))
    # The signature covers the hrp and the data words packed into bytes.
    message = hrp.encode() + bytes(convertbits(data, 5, 8, True) or [])
    signature = key.sign_recoverable(hashlib.sha256(message).digest(), hasher=None)
    return bech32_encode(hrp, data + _words(signature))
