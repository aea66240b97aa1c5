"""The host's tables.

Money columns are integer millisatoshis (BigInt). Times are integer Unix
milliseconds, the same on SQLite and PostgreSQL. The schema itself is created
by the migrations in `fulmen/migrations/`; these classes declare it, table by
table and column by column (name, type, nullability, default), and
tests/host/test_schema.py checks them against a migrated SQLite and
PostgreSQL database. A new migration updates the class here in the same
commit.

Nothing here opens or names a database: `fulmen.db.bind()` points these
classes at the host's engine when the host is built.
"""

from __future__ import annotations

from piccolo.columns import (
    JSONB,
    BigInt,
    BigSerial,
    Boolean,
    Integer,
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
    #: optional web sign-in name and its Argon2id hash
    username = Varchar(length=64, null=True, default=None)
    password_hash = Text(null=True, default=None)


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
    id = BigSerial(primary_key=True)
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
    #: JSONB on PostgreSQL, TEXT on SQLite
    extra = JSONB(default="{}")
    tag = Varchar(length=64, null=True)
    internal = Boolean(default=False)
    idempotency_key = Varchar(length=128, null=True)
    error = Text(null=True)
    #: why the last attempt to settle or check this payment failed (admin view)
    check_error = Text(null=True)
    created_at = BigInt()
    updated_at = BigInt()


class LedgerEntry(Table, tablename="fulmen_ledger"):
    id = BigSerial(primary_key=True)
    wallet_id = Varchar(length=32)
    amount_msat = BigInt()
    #: payment | reserve | refund | fee | admin
    kind = Varchar(length=16)
    payment_id = BigInt(null=True)
    reason = Text(default="")
    created_at = BigInt()


class HookDelivery(Table, tablename="fulmen_hook_delivery"):
    """One durable call of a payment hook for one plugin (the outbox)."""

    id = BigSerial(primary_key=True)
    payment_id = BigInt()
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


class HookWallet(Table, tablename="fulmen_hook_wallet"):
    """A wallet whose payment hooks a `watch_wallets` plugin gets.

    The table's key is (plugin_id, wallet_id); Piccolo takes one primary key
    column, so only plugin_id is marked (the schema comes from the migration).
    """

    plugin_id = Varchar(length=64, primary_key=True)
    wallet_id = Varchar(length=32)


class Event(Table, tablename="fulmen_event"):
    """One entry of a wallet's event log, numbered per wallet (`seq`)."""

    id = BigSerial(primary_key=True)
    wallet_id = Varchar(length=32)
    seq = BigInt()
    type = Varchar(length=32)
    payment_id = BigInt()
    payment_hash = Varchar(length=64)
    #: the event's JSON document, as sent
    data = Text()
    created_at = BigInt()


class WebhookEndpoint(Table, tablename="fulmen_webhook_endpoint"):
    id = Varchar(length=32, primary_key=True)
    wallet_id = Varchar(length=32, index=True)
    url = Text()
    #: JSON list of the event types sent to this endpoint
    events = Text()
    description = Text(default="")
    #: the signing secret
    secret = Varchar(length=128)
    deleted = Boolean(default=False)
    created_at = BigInt()


class WebhookWalletSecret(Table, tablename="fulmen_webhook_wallet_secret"):
    """The signing secret for a wallet's per-invoice `webhook` URLs."""

    wallet_id = Varchar(length=32, primary_key=True)
    secret = Varchar(length=128)
    created_at = BigInt()


class WebhookDelivery(Table, tablename="fulmen_webhook_delivery"):
    """One durable delivery of one event to one URL."""

    id = BigSerial(primary_key=True)
    wallet_id = Varchar(length=32)
    #: NULL for a per-invoice webhook (the invoice's own `webhook` URL)
    endpoint_id = Varchar(length=32, null=True, default=None)
    event_id = BigInt()
    event_type = Varchar(length=32)
    url = Text()
    body = Text()
    #: pending | done | failed (gave up)
    status = Varchar(length=8, default="pending")
    attempts = Integer(default=0)
    next_attempt_at = BigInt()
    locked_until = BigInt(default=0)
    give_up_at = BigInt()
    last_status_code = Integer(null=True, default=None)
    last_error = Text(null=True, default=None)
    created_at = BigInt()
    updated_at = BigInt()
    delivered_at = BigInt(null=True, default=None)


class Job(Table, tablename="fulmen_job"):
    """A plugin's durable job (fulmen/jobs.py), run by the outbox."""

    id = BigSerial(primary_key=True)
    plugin_id = Varchar(length=64)
    kind = Varchar(length=64)
    #: with a key, a job is recorded once per (plugin, kind, key)
    job_key = Varchar(length=200, null=True, default=None)
    payload = Text()
    #: pending | done | failed (gave up)
    status = Varchar(length=8, default="pending")
    attempts = Integer(default=0)
    next_attempt_at = BigInt()
    locked_until = BigInt(default=0)
    give_up_at = BigInt()
    last_error = Text(null=True, default=None)
    created_at = BigInt()
    updated_at = BigInt()


class WebSession(Table, tablename="fulmen_web_session"):
    """A signed-in browser (the cookie's token is stored as its sha256)."""

    token_hash = Varchar(length=64, primary_key=True)
    account_id = Varchar(length=32, null=True, default=None)
    admin = Boolean()
    created_at = BigInt()
    expires_at = BigInt()


class Process(Table, tablename="fulmen_process"):
    """A running host process and the plugins it runs (fulmen/plugins/processes.py)."""

    id = Varchar(length=64, primary_key=True)
    hostname = Varchar(length=255)
    pid = Integer()
    host_version = Varchar(length=32)
    plugins = Text()  # JSON: {plugin_id: {"version", "state", "migrations"}}
    started_at = BigInt()
    seen_at = BigInt()


CORE_TABLES: list[type[Table]] = [
    Account,
    Wallet,
    ApiKey,
    Payment,
    LedgerEntry,
    HookDelivery,
    PluginState,
    HookWallet,
    Event,
    WebhookEndpoint,
    WebhookWalletSecret,
    WebhookDelivery,
    Job,
    WebSession,
    Process,
]
"""Every table the host's migrations create, in migration order."""
