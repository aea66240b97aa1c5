"""An optional Nostr key per pay link, used instead of the server key for
that link's `nostrPubkey` and receipts."""

from __future__ import annotations

import secrets
from typing import Any

from coincurve import PrivateKey
from fulmen import (
    BadRequest,
    Forbidden,
    NotFound,
    PluginHost,
    WalletAuth,
    now_ms,
    query,
    transaction,
)

from .config import HEX_KEY, state


def pubkey_of(key: PrivateKey) -> str:
    return key.public_key_xonly.format().hex()


async def link_key(link_id: Any) -> PrivateKey | None:
    if not isinstance(link_id, str):
        return None
    rows = await query(
        "SELECT private_key FROM nostrzaps_link_key WHERE link_id = {} AND active = {}",
        link_id, True,
    )
    return PrivateKey(bytes.fromhex(rows[0]["private_key"])) if rows else None


async def signing_key(host: PluginHost, link_id: Any) -> PrivateKey:
    """The key that signs for this link now: its own, else the server's."""
    return await link_key(link_id) or state(host).key


async def receipt_key(host: PluginHost, link_id: Any, signer: Any) -> PrivateKey:
    """The key whose public key the payer was shown (`signer`, recorded at the
    callback), also when the link's key changed since (old keys are kept);
    else the link's current key."""
    server = state(host).key
    if signer == pubkey_of(server):
        return server
    if isinstance(link_id, str) and isinstance(signer, str):
        rows = await query(
            "SELECT private_key FROM nostrzaps_link_key WHERE link_id = {} AND pubkey = {}",
            link_id, signer,
        )
        if rows:
            return PrivateKey(bytes.fromhex(rows[0]["private_key"]))
    return await signing_key(host, link_id)


async def owned_link(link_id: str, wallet: WalletAuth) -> None:
    """The pay link exists (lnurlp's table) and belongs to the key's wallet."""
    try:
        rows = await query("SELECT wallet FROM lnurlp_pay_link WHERE id = {}", link_id)
    except Exception:  # noqa: BLE001 - lnurlp is not installed: its table does not exist
        rows = []
    if not rows:
        raise NotFound("Pay link does not exist.")
    if rows[0]["wallet"] != wallet.wallet_id:
        raise Forbidden("Not your pay link.")


async def read(host: PluginHost, wallet: WalletAuth, link_id: str) -> dict[str, Any]:
    await owned_link(link_id, wallet)
    own = await link_key(link_id)
    key = own or state(host).key
    return {"link": link_id, "pubkey": pubkey_of(key), "own_key": own is not None}


async def put(host: PluginHost, wallet: WalletAuth, link_id: str, data: Any) -> dict[str, Any]:
    """Give the link its own key: `{"private_key": hex}`, or `{}` to generate one."""
    await owned_link(link_id, wallet)
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    unknown = set(data) - {"private_key"}
    if unknown:
        raise BadRequest(f"unknown field {min(unknown)!r}")
    value = data.get("private_key")
    if value is None:
        value = secrets.token_bytes(32).hex()
    if not isinstance(value, str) or not HEX_KEY.match(value):
        raise BadRequest("private_key must be 64 hex characters (a Nostr secret key)")
    try:
        key = PrivateKey(bytes.fromhex(value))
    except ValueError:
        raise BadRequest("private_key is not a valid secp256k1 secret key") from None
    pubkey = pubkey_of(key)
    # Earlier keys are kept (inactive): invoices already handed out get
    # receipts signed by the key their payer was shown.
    async with transaction():
        await query("UPDATE nostrzaps_link_key SET active = {} WHERE link_id = {}", False, link_id)
        await query(
            "INSERT INTO nostrzaps_link_key (link_id, pubkey, wallet_id, private_key, active, "
            "created_at) VALUES ({}, {}, {}, {}, {}, {}) ON CONFLICT (link_id, pubkey) "
            "DO UPDATE SET active = excluded.active, wallet_id = excluded.wallet_id",
            link_id, pubkey, wallet.wallet_id, value.lower(), True, now_ms(),
        )
    return {"link": link_id, "pubkey": pubkey, "own_key": True}


async def delete(host: PluginHost, wallet: WalletAuth, link_id: str) -> dict[str, Any]:
    """Back to the server key."""
    await owned_link(link_id, wallet)
    await query("UPDATE nostrzaps_link_key SET active = {} WHERE link_id = {}", False, link_id)
    return {"link": link_id, "pubkey": pubkey_of(state(host).key), "own_key": False}
