"""FakeWallet's encoder, checked by the `bolt11` package's decoder."""

import hashlib
import secrets

import bolt11
import pytest
from coincurve import PrivateKey
from fulmen.funding.bolt11_encode import encode_invoice

KEY = PrivateKey(bytes.fromhex("7f" * 32))
PUBKEY = KEY.public_key.format().hex()


@pytest.mark.parametrize("amount_msat", [1, 10, 999, 1000, 21_000, 150_000_000, 10**11 + 1, 2_100_000_000_000])
@pytest.mark.parametrize("currency", ["bc", "tb", "bcrt"])
def test_amounts_and_networks_round_trip(amount_msat, currency):
    payment_hash, secret = secrets.token_bytes(32), secrets.token_bytes(32)
    text = encode_invoice(KEY, currency, amount_msat, 1_790_000_000, payment_hash, secret, "x", None, 600)
    decoded = bolt11.decode(text)
    assert decoded.currency == currency and decoded.amount_msat == amount_msat
    assert decoded.payment_hash == payment_hash.hex() and decoded.payment_secret == secret.hex()
    assert decoded.date == 1_790_000_000 and decoded.expiry == 600 and decoded.min_final_cltv_expiry == 18
    assert decoded.signature.verify(PUBKEY)


@pytest.mark.parametrize("memo", ["", "coffee", "☕ ünïcode", "m" * 639])
def test_descriptions(memo):
    text = encode_invoice(KEY, "bc", 1000, 1_790_000_000, b"\x01" * 32, b"\x02" * 32, memo, None, 86_400)
    decoded = bolt11.decode(text)
    assert (decoded.description or "") == memo and decoded.expiry == 86_400
    assert decoded.signature.verify(PUBKEY)


def test_description_hash():
    h = hashlib.sha256(b'[["text/plain","hi"]]').digest()
    text = encode_invoice(KEY, "bc", 5000, 1_790_000_000, b"\x03" * 32, b"\x04" * 32, "ignored", h, 60)
    decoded = bolt11.decode(text)
    assert decoded.description_hash == h.hex() and decoded.description is None
    assert decoded.signature.verify(PUBKEY)


def test_a_wrong_key_does_not_verify():
    text = encode_invoice(KEY, "bc", 5000, 1_790_000_000, b"\x03" * 32, b"\x04" * 32, "x", None, 60)
    other = PrivateKey(bytes.fromhex("11" * 32)).public_key.format().hex()
    with pytest.raises(ValueError, match="Invalid signature"):
        bolt11.decode(text).signature.verify(other)


def test_bech32_steps_match_the_reference_package():
    """The table-driven checksum and the integer packing give what the
    `bech32` package (BIP-173's reference code) gives."""
    import os
    import random

    from bech32 import bech32_encode as reference_encode
    from bech32 import convertbits
    from fulmen.funding import bolt11_encode as ours

    rng = random.Random(11)
    for n in range(70):
        data = os.urandom(n)
        assert ours._words(data) == (convertbits(data, 8, 5, True) or [])
    for n in range(300):
        words = [rng.randrange(32) for _ in range(n)]
        assert ours._bytes(words) == bytes(convertbits(words, 5, 8, True) or [])
        assert ours.bech32_encode("lnbcrt10u", words) == reference_encode("lnbcrt10u", words)


@pytest.mark.parametrize("memo", ["", "coffee", "m" * 639])
def test_the_payment_secret_reads_back(memo):
    from fulmen.funding.bolt11_encode import read_payment_secret

    secret = secrets.token_bytes(32)
    text = encode_invoice(KEY, "bcrt", 1000, 1_790_000_000, b"\x01" * 32, secret, memo, None, 600)
    assert read_payment_secret(text) == secret
    assert read_payment_secret(text.upper()) == secret
    assert read_payment_secret(text[:90]) is None  # cut inside the secret
    assert read_payment_secret("lnbc1notbech32!") is None


async def test_a_fake_wallet_invoice_recovers_the_node_key():
    """What FakeWallet hands out decodes with the `bolt11` package, and its
    signature recovers the node's public key (there is no `n` field)."""
    from fulmen.funding.fake import FakeWallet

    wallet = FakeWallet("5a" * 32, "bcrt")
    created = await wallet.create_invoice(21_000, "coffee ☕", None, 3600)
    decoded = bolt11.decode(created.bolt11)
    assert decoded.payee == wallet.pubkey == PrivateKey(bytes.fromhex("5a" * 32)).public_key.format().hex()
    assert decoded.payment_hash == created.payment_hash and decoded.amount_msat == 21_000
    assert decoded.description == "coffee ☕" and decoded.expiry == 3600
    preimage = wallet.preimage_of(created.bolt11, created.payment_hash)
    assert preimage is not None and hashlib.sha256(bytes.fromhex(preimage)).hexdigest() == created.payment_hash
