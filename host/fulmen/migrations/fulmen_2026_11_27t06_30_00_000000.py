"""Core schema: accounts, wallets, keys, payments, ledger, hook outbox, plugin state."""

from fulmen.db import ddl_migration

ID = "2026-11-27T06:30:00:000000"
VERSION = "1.0"
DESCRIPTION = "core schema"

DDL = """
CREATE TABLE fulmen_account (
    id VARCHAR(32) PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    token_hash VARCHAR(64) NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE TABLE fulmen_wallet (
    id VARCHAR(32) PRIMARY KEY,
    account_id VARCHAR(32) NOT NULL REFERENCES fulmen_account(id),
    name TEXT NOT NULL DEFAULT '',
    currency VARCHAR(8),
    balance_msat BIGINT NOT NULL DEFAULT 0 CHECK (balance_msat >= 0),
    -- the number of this wallet's latest event (events are numbered per wallet)
    event_seq BIGINT NOT NULL DEFAULT 0,
    -- live webhook endpoints, so payments of wallets without any skip the lookup
    webhook_endpoints INTEGER NOT NULL DEFAULT 0,
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);
CREATE INDEX fulmen_wallet_account ON fulmen_wallet (account_id);
CREATE TABLE fulmen_api_key (
    key_hash VARCHAR(64) PRIMARY KEY,
    wallet_id VARCHAR(32) NOT NULL REFERENCES fulmen_wallet(id),
    kind VARCHAR(8) NOT NULL
);
CREATE INDEX fulmen_api_key_wallet ON fulmen_api_key (wallet_id);
CREATE TABLE fulmen_payment (
    id {serial} PRIMARY KEY,
    wallet_id VARCHAR(32) NOT NULL REFERENCES fulmen_wallet(id),
    out BOOLEAN NOT NULL,
    status VARCHAR(8) NOT NULL,
    payment_hash VARCHAR(64) NOT NULL,
    checking_id TEXT NOT NULL,
    bolt11 TEXT NOT NULL,
    bolt11_hash VARCHAR(64),
    amount_msat BIGINT NOT NULL,
    fee_msat BIGINT NOT NULL DEFAULT 0,
    fee_reserve_msat BIGINT NOT NULL DEFAULT 0,
    memo TEXT NOT NULL DEFAULT '',
    preimage VARCHAR(64),
    expires_at BIGINT NOT NULL,
    webhook TEXT,
    extra {json} NOT NULL DEFAULT '{{}}',
    tag VARCHAR(64),
    internal BOOLEAN NOT NULL DEFAULT FALSE,
    idempotency_key VARCHAR(128),
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX fulmen_payment_wallet_time ON fulmen_payment (wallet_id, created_at, id);
CREATE INDEX fulmen_payment_hash ON fulmen_payment (payment_hash);
CREATE INDEX fulmen_payment_checking ON fulmen_payment (checking_id);
CREATE UNIQUE INDEX fulmen_payment_bolt11_incoming ON fulmen_payment (bolt11_hash) WHERE NOT out;
-- An invoice is received once, and paid by at most one live outgoing payment.
CREATE UNIQUE INDEX fulmen_payment_one_incoming ON fulmen_payment (payment_hash) WHERE NOT out;
CREATE UNIQUE INDEX fulmen_payment_one_outgoing ON fulmen_payment (payment_hash)
    WHERE out AND status <> 'failed';
CREATE UNIQUE INDEX fulmen_payment_idempotency ON fulmen_payment (wallet_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX fulmen_payment_pending ON fulmen_payment (status) WHERE status = 'pending';
CREATE TABLE fulmen_ledger (
    id {serial} PRIMARY KEY,
    wallet_id VARCHAR(32) NOT NULL REFERENCES fulmen_wallet(id),
    amount_msat BIGINT NOT NULL,
    kind VARCHAR(16) NOT NULL,
    payment_id BIGINT,
    reason TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE INDEX fulmen_ledger_wallet ON fulmen_ledger (wallet_id);
CREATE TABLE fulmen_hook_delivery (
    id {serial} PRIMARY KEY,
    payment_id BIGINT NOT NULL,
    plugin_id VARCHAR(64) NOT NULL,
    hook VARCHAR(32) NOT NULL,
    status VARCHAR(8) NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (payment_id, plugin_id, hook)
);
CREATE INDEX fulmen_hook_delivery_due ON fulmen_hook_delivery (next_attempt_at)
    WHERE status = 'pending';
CREATE TABLE fulmen_plugin_state (
    plugin_id VARCHAR(64) PRIMARY KEY,
    enabled BOOLEAN NOT NULL,
    updated_at BIGINT NOT NULL
);
"""


forwards = ddl_migration("fulmen", ID, DESCRIPTION, DDL)
