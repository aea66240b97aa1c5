"""Events and webhooks: the per-wallet event log, webhook endpoints, deliveries."""

from fulmen.db import ddl_migration

ID = "2026-11-27T08:00:00:000000"
VERSION = "1.0"
DESCRIPTION = "event log, webhook endpoints and deliveries"

DDL = """
CREATE TABLE fulmen_event (
    id {serial} PRIMARY KEY,
    wallet_id VARCHAR(32) NOT NULL,
    seq BIGINT NOT NULL,
    type VARCHAR(32) NOT NULL,
    payment_id BIGINT NOT NULL,
    payment_hash VARCHAR(64) NOT NULL,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (wallet_id, seq)
);
CREATE INDEX fulmen_event_payment ON fulmen_event (payment_id);
CREATE INDEX fulmen_event_time ON fulmen_event (created_at);
CREATE TABLE fulmen_webhook_endpoint (
    id VARCHAR(32) PRIMARY KEY,
    wallet_id VARCHAR(32) NOT NULL,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    secret VARCHAR(128) NOT NULL,
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);
CREATE INDEX fulmen_webhook_endpoint_wallet ON fulmen_webhook_endpoint (wallet_id);
-- The signing secret for a wallet's per-invoice `webhook` URLs.
CREATE TABLE fulmen_webhook_wallet_secret (
    wallet_id VARCHAR(32) PRIMARY KEY,
    secret VARCHAR(128) NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE fulmen_webhook_delivery (
    id {serial} PRIMARY KEY,
    wallet_id VARCHAR(32) NOT NULL,
    -- NULL for a per-invoice webhook (the invoice's own `webhook` URL)
    endpoint_id VARCHAR(32),
    event_id BIGINT NOT NULL,
    event_type VARCHAR(32) NOT NULL,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    status VARCHAR(8) NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until BIGINT NOT NULL DEFAULT 0,
    give_up_at BIGINT NOT NULL,
    last_status_code INTEGER,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE UNIQUE INDEX fulmen_webhook_delivery_once ON fulmen_webhook_delivery (endpoint_id, event_id)
    WHERE endpoint_id IS NOT NULL;
CREATE UNIQUE INDEX fulmen_webhook_delivery_invoice_once ON fulmen_webhook_delivery (event_id)
    WHERE endpoint_id IS NULL;
CREATE INDEX fulmen_webhook_delivery_due ON fulmen_webhook_delivery (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX fulmen_webhook_delivery_endpoint ON fulmen_webhook_delivery (endpoint_id, id)
"""


forwards = ddl_migration("fulmen", ID, DESCRIPTION, DDL)
