"""API keys and bearer credentials: made by `secrets`, stored as sha256.

The keys are 128-bit random tokens, so a fast hash is enough (there is
nothing to brute-force); looking a key up by its hash also means the
plaintext never sits in the database or in a comparison.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid


def new_key() -> str:
    return secrets.token_hex(16)


def new_id() -> str:
    return uuid.uuid4().hex


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(a.encode(), b.encode())
