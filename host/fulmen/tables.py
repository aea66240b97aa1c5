"""The host's tables.

Money columns are integer millisatoshis (BigInt). Times are integer Unix
milliseconds, the same on SQLite and PostgreSQL. The schema itself is created
by the migrations in `fulmen/migrations/`; these classes are for queries.
"""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    BigInt,
    Boolean,
    Integer,
    Serial,
    Text,
    Varchar,
)
from piccolo.table import Table


class Account(Table, tablename="fulmen_account"):
    id = Varchar(length=32, primary_key=True)
    name = Text(default="")
    #: sha256 of the account's bearer credential
    token_hash = Varchar(length=64, unique=True)
    created_at = BigInt()


class Wallet(Table, tablename="fulmen_wallet"):
    id = Varchar(length=32, primary_key=True)
    account_id = Varchar(length=32, index=True)
    name = Text(default="")
    currency = Varchar(length=8, null=True, default=None)
    #: the running balance; equals the sum of this wallet's ledger entries
    balance_msat = BigInt(default=0)
    event_seq = BigInt(default=0)
    webhook_endpoints = Integer(default=0)
    deleted = Boolean(default=False)
    created_at = BigInt()


class ApiKey(Table, tablename="fulmen_api_key"):
    #: sha256 of the key; the key itself is never stored
    key_hash = Varchar(length=64, primary_key=True)
    wallet_id = Varchar(length=32, index=True)
    kind = Varchar(length=8)  # admin | invoice | read


class Payment(Table, tablename="fulmen_payment"):
    id = Serial(primary_key=True)
    wallet_id = Varchar(length=32)
    out = Boolean()
    #: pending | success | failed
    status = Varchar(length=8)
    payment_hash = Varchar(length=64)
    checking_id = Text()
    bolt11 = Text()
    #: sha256 of the bolt11 text, to recognise our own invoices without decoding
    bolt11_hash = Varchar(length=64, null=True)
    #: signed: positive for incoming, negative for outgoing
    amount_msat = BigInt()
    fee_msat = BigInt(default=0)
    #: funds held back for routing fees while an external payment is pending
    fee_reserve_msat = BigInt(default=0)
    memo = Text(default="")
    preimage = Varchar(length=64, null=True)
    expires_at = BigInt()
    webhook = Text(null=True)
    extra = JSON(default="{}")
    tag = Varchar(length=64, null=True)
    internal = Boolean(default=False)
    idempotency_key = Varchar(length=128, null=True)
    error = Text(null=True)
    #: why the last attempt to settle or check this payment failed (admin view)
    check_error = Text(null=True)
    created_at = BigInt()
    updated_at = BigInt()


class LedgerEntry(Table, tablename="fulmen_ledger"):
    id = Serial(primary_key=True)
    wallet_id = Varchar(length=32)
    amount_msat = BigInt()
    #: payment | reserve | refund | fee | admin
    kind = Varchar(length=16)
    payment_id = Integer(null=True)
    reason = Text(default="")
    created_at = BigInt()


class HookDelivery(Table, tablename="fulmen_hook_delivery"):
    """One durable call of a payment hook for one plugin (the outbox)."""

    id = Serial(primary_key=True)
    payment_id = Integer()
    plugin_id = Varchar(length=64)
    hook = Varchar(length=32)
    #: pending | done | failed (gave up)
    status = Varchar(length=8, default="pending")
    attempts = Integer(default=0)
    next_attempt_at = BigInt()
    locked_until = BigInt(default=0)
    last_error = Text(null=True)
    created_at = BigInt()


class PluginState(Table, tablename="fulmen_plugin_state"):
    plugin_id = Varchar(length=64, primary_key=True)
    enabled = Boolean()
    updated_at = BigInt()


CORE_TABLES: list[type[Table]] = [
    Account,
    Wallet,
    ApiKey,
    Payment,
    LedgerEntry,
    HookDelivery,
    PluginState,
]
