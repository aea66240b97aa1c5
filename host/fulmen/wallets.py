"""Accounts, wallets and their keys."""

from __future__ import annotations

from typing import Any

from piccolo.engine.base import Engine

from .db import is_postgres, now_ms, query, transaction
from .errors import Conflict, Forbidden, NotFound, Unauthorized
from .keycache import CHANNEL as KEY_CHANNEL
from .keycache import KeyCache
from .keys import key_hash, new_id, new_key
from .models import KEY_KINDS, Wallet, WalletAuth


class WalletService:
    def __init__(self, engine: Engine, key_cache: KeyCache | None = None) -> None:
        self.engine = engine
        self.key_cache = key_cache or KeyCache(ttl=0)  # off unless the host starts one

    # --- authentication -------------------------------------------------------

    async def authenticate_key(self, key: str) -> WalletAuth:
        """Resolve an X-Api-Key. The lookup is by the key's hash (an indexed
        equality on a digest), so the plaintext is never compared."""
        return await self.authenticate_key_digest(key_hash(key))

    @staticmethod
    def key_digest(key: str) -> str:
        """A one-way digest of a wallet key, for a plugin that issues its own
        credentials from a key and must stop honouring them once the key is
        rotated or its wallet deleted (see `authenticate_key_digest`)."""
        return key_hash(key)

    async def authenticate_key_digest(self, digest: str) -> WalletAuth:
        """`authenticate_key` for a key known only by its `key_digest`."""
        cached = self.key_cache.get(digest)
        if cached is not None:
            return cached
        generation = self.key_cache.generation()
        rows = await query(
            "SELECT k.wallet_id, k.kind, w.account_id FROM fulmen_api_key k "
            "JOIN fulmen_wallet w ON w.id = k.wallet_id "
            "WHERE k.key_hash = {} AND NOT w.deleted",
            digest,
        )
        if not rows:
            raise Unauthorized("Invalid API key.")
        row = rows[0]
        auth = WalletAuth(wallet_id=row["wallet_id"], account_id=row["account_id"], kind=row["kind"])
        self.key_cache.put(digest, auth, generation)
        return auth

    async def authenticate_account(self, token: str) -> str:
        rows = await query("SELECT id FROM fulmen_account WHERE token_hash = {}", key_hash(token))
        if not rows:
            raise Unauthorized("Invalid account credential.")
        return rows[0]["id"]

    # --- accounts and wallets ----------------------------------------------------

    async def create_account(self, name: str, wallet_name: str | None = None) -> tuple[str, str, Wallet]:
        """Returns (account_id, account_token, first wallet with keys)."""
        account_id, token = new_id(), new_key()
        async with transaction(self.engine):
            await query(
                "INSERT INTO fulmen_account (id, name, token_hash, created_at) VALUES ({}, {}, {}, {})",
                account_id, name, key_hash(token), now_ms(),
            )
            wallet = await self._insert_wallet(account_id, wallet_name or name or "My Wallet")
        return account_id, token, wallet

    async def rotate_account_token(self, account_id: str) -> str:
        token = new_key()
        await query("UPDATE fulmen_account SET token_hash = {} WHERE id = {}", key_hash(token), account_id)
        return token

    async def create_wallet(self, account_id: str, name: str) -> Wallet:
        async with transaction(self.engine):
            return await self._insert_wallet(account_id, name)

    async def _insert_wallet(self, account_id: str, name: str) -> Wallet:
        wallet = Wallet(
            id=new_id(), account_id=account_id, name=name, balance_msat=0,
            currency=None, created_at=now_ms(),
        )
        await query(
            "INSERT INTO fulmen_wallet (id, account_id, name, balance_msat, deleted, created_at) "
            "VALUES ({}, {}, {}, 0, {}, {})",
            wallet.id, account_id, name, False, wallet.created_at,
        )
        wallet.keys = await self._issue_keys(wallet.id)
        return wallet

    async def _issue_keys(self, wallet_id: str) -> dict[str, str]:
        keys = {kind: new_key() for kind in KEY_KINDS}
        for kind, key in keys.items():
            await query(
                "INSERT INTO fulmen_api_key (key_hash, wallet_id, kind) VALUES ({}, {}, {})",
                key_hash(key), wallet_id, kind,
            )
        return keys

    async def rotate_keys(self, wallet_id: str) -> Wallet:
        """Replace all three keys; the old ones stop working when this commits."""
        async with transaction(self.engine):
            await query("DELETE FROM fulmen_api_key WHERE wallet_id = {}", wallet_id)
            keys = await self._issue_keys(wallet_id)
            await self._keys_changed(wallet_id)
        self.key_cache.drop_wallet(wallet_id)
        wallet = await self.get(wallet_id)
        wallet.keys = keys
        return wallet

    async def get(self, wallet_id: str) -> Wallet:
        rows = await query("SELECT * FROM fulmen_wallet WHERE id = {} AND NOT deleted", wallet_id)
        if not rows:
            raise NotFound("Wallet not found.")
        return Wallet.from_row(rows[0])

    async def balance(self, wallet_id: str) -> int:
        rows = await query("SELECT balance_msat FROM fulmen_wallet WHERE id = {}", wallet_id)
        if not rows:
            raise NotFound("Wallet not found.")
        return int(rows[0]["balance_msat"])

    async def list_for_account(self, account_id: str) -> list[Wallet]:
        rows = await query(
            "SELECT * FROM fulmen_wallet WHERE account_id = {} AND NOT deleted ORDER BY created_at, id",
            account_id,
        )
        return [Wallet.from_row(r) for r in rows]

    async def update(self, wallet_id: str, *, name: str | None = None, currency: str | None = None) -> Wallet:
        if name is not None:
            await query("UPDATE fulmen_wallet SET name = {} WHERE id = {}", name, wallet_id)
        if currency is not None:
            await query("UPDATE fulmen_wallet SET currency = {} WHERE id = {}", currency or None, wallet_id)
        return await self.get(wallet_id)

    async def delete(self, wallet_id: str, account_id: str) -> None:
        """Delete an empty wallet. Its payment history stays for the audit."""
        async with transaction(self.engine):
            # Conditional on an empty balance, so a credit racing the delete
            # either lands first (and the delete is refused) or is refused itself.
            deleted = await query(
                "UPDATE fulmen_wallet SET deleted = {} WHERE id = {} AND account_id = {} "
                "AND NOT deleted AND balance_msat = 0 RETURNING id",
                True, wallet_id, account_id,
            )
            if not deleted:
                rows = await query(
                    "SELECT account_id FROM fulmen_wallet WHERE id = {} AND NOT deleted", wallet_id
                )
                if not rows or rows[0]["account_id"] != account_id:
                    raise NotFound("Wallet not found.")
                raise Conflict("Wallet still holds funds; move them out before deleting it.")
            pending = await query(
                "SELECT 1 FROM fulmen_payment WHERE wallet_id = {} AND out AND status = 'pending' LIMIT 1",
                wallet_id,
            )
            if pending:
                raise Conflict("Wallet has a payment in flight.")
            # Its open invoices can no longer be paid.
            await query(
                "UPDATE fulmen_payment SET status = 'failed', error = 'wallet deleted' "
                "WHERE wallet_id = {} AND NOT out AND status = 'pending'",
                wallet_id,
            )
            await query("DELETE FROM fulmen_api_key WHERE wallet_id = {}", wallet_id)
            await self._keys_changed(wallet_id)
        self.key_cache.drop_wallet(wallet_id)

    @staticmethod
    async def _keys_changed(wallet_id: str) -> None:
        """Tell every process's key cache, when this transaction commits."""
        if is_postgres():
            await query("SELECT pg_notify({}, {})", KEY_CHANNEL, wallet_id)

    def check_owner(self, wallet: Wallet, account_id: str) -> None:
        if wallet.account_id != account_id:
            raise Forbidden("This wallet belongs to another account.")

    # --- admin ------------------------------------------------------------------

    async def list_accounts(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        return await query(
            "SELECT a.id, a.name, a.created_at, COUNT(w.id) AS wallets, "
            "COALESCE(SUM(w.balance_msat), 0) AS balance_msat "
            "FROM fulmen_account a LEFT JOIN fulmen_wallet w ON w.account_id = a.id AND NOT w.deleted "
            "GROUP BY a.id, a.name, a.created_at ORDER BY a.created_at, a.id LIMIT {} OFFSET {}",
            limit, offset,
        )

    async def list_wallets(self, limit: int = 100, offset: int = 0) -> list[Wallet]:
        rows = await query(
            "SELECT * FROM fulmen_wallet WHERE NOT deleted ORDER BY created_at, id LIMIT {} OFFSET {}",
            limit, offset,
        )
        return [Wallet.from_row(r) for r in rows]

    async def audit(self) -> list[dict[str, Any]]:
        """Wallets whose balance differs from the sum of their ledger entries."""
        return await query(
            "SELECT w.id, w.balance_msat, COALESCE(l.total, 0) AS ledger_msat FROM fulmen_wallet w "
            "LEFT JOIN (SELECT wallet_id, SUM(amount_msat) AS total FROM fulmen_ledger "
            "GROUP BY wallet_id) l ON l.wallet_id = w.id "
            "WHERE w.balance_msat <> COALESCE(l.total, 0)"
        )
