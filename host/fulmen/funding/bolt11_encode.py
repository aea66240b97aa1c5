"""Encode and sign a BOLT11 invoice, fast.

The `bolt11` package decodes (and can encode) invoices, but its encoder
packs bits through `bitstring` and costs several milliseconds per invoice,
which capped invoice creation on FakeWallet. Encoding the handful of fields
FakeWallet uses is a few integer shifts; the result is checked against the
`bolt11` decoder in the tests. The bech32 step is here too: the `bech32`
package's checksum handles one bit at a time in Python, a table does ten
(two words); and words become bytes through `int(text, 32)`, in C.
"""

from __future__ import annotations

import base64
import hashlib
from functools import reduce

from bolt11.utils import msat_to_amount
from coincurve import PrivateKey

# BOLT11 tagged-field types (the bech32 character's value)
PAYMENT_HASH, PAYMENT_SECRET, DESCRIPTION, DESCRIPTION_HASH = 1, 16, 13, 23
EXPIRY, MIN_FINAL_CLTV = 6, 24


CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
# BIP-173's checksum step XORs in generator i for each bit i of the top five
# bits; for all five at once, XOR in this table's entry.
_TOP = [reduce(lambda a, i: a ^ (_GENERATOR[i] if b >> i & 1 else 0), range(5), 0) for b in range(32)]


def _step(chk: int, value: int) -> int:
    return ((chk & 0x1FFFFFF) << 5) ^ value ^ _TOP[chk >> 25]


# The step is linear, so two at once XOR in what the top ten bits become
# after two steps with nothing shifted in.
_TOP2 = [_step(_step(b << 20, 0), 0) for b in range(1024)]


def _polymod(values: list[int]) -> int:
    chk = 1
    if len(values) & 1:
        chk = _step(chk, values[0])
        values = values[1:]
    pairs = iter(values)
    for high, low in zip(pairs, pairs):
        chk = ((chk & 0xFFFFF) << 10) ^ (high << 5 | low) ^ _TOP2[chk >> 20]
    return chk


# 5-bit values to their bech32 characters, and to base-32 digits for int()
_TO_CHARSET = bytes.maketrans(bytes(range(32)), CHARSET.encode())
_TO_DIGITS = bytes.maketrans(bytes(range(32)), b"0123456789abcdefghijklmnopqrstuv")


def bech32_encode(hrp: str, data: list[int]) -> str:
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    mod = _polymod(expanded + data + [0] * 6) ^ 1
    checksum = [(mod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + bytes(data + checksum).translate(_TO_CHARSET).decode()


_VALUES = {c: i for i, c in enumerate(CHARSET)}
_SIGNATURE_WORDS = 104  # 65 bytes in 5-bit words, before the 6-word checksum


def read_payment_secret(bolt11: str) -> bytes | None:
    """The payment secret (`s` field) of an invoice in the layout above, read
    without checking checksum or signature (the caller checks what it derives
    from it)."""
    text = bolt11.strip().lower()
    try:
        words = [_VALUES[c] for c in text[text.rfind("1") + 1:-6]]
    except KeyError:
        return None
    i, end = 7, len(words) - _SIGNATURE_WORDS  # after the 35-bit timestamp
    while i + 3 <= end:
        kind, length = words[i], words[i + 1] * 32 + words[i + 2]
        if i + 3 + length > end:
            return None
        if kind == PAYMENT_SECRET and length == 52:  # 256 bits and 4 of padding
            return _bytes(words[i + 3:i + 55])[:32]
        i += 3 + length
    return None


_FROM_BASE32 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", bytes(range(32)))


def _words(data: bytes) -> list[int]:
    """Bytes as 5-bit words, zero-padded at the end (RFC 4648 base 32 packs
    them the same way, in C: only its alphabet and padding differ)."""
    return list(base64.b32encode(data).rstrip(b"=").translate(_FROM_BASE32))


def _bytes(words: list[int]) -> bytes:
    """5-bit words packed into bytes, zero-padded at the end."""
    if not words:
        return b""
    value = int(bytes(words).translate(_TO_DIGITS), 32)  # the words are base-32 digits
    bits = len(words) * 5
    size = (bits + 7) // 8
    return (value << (size * 8 - bits)).to_bytes(size, "big")


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
    message = hrp.encode() + _bytes(data)
    signature = key.sign_recoverable(hashlib.sha256(message).digest(), hasher=None)
    return bech32_encode(hrp, data + _words(signature))
