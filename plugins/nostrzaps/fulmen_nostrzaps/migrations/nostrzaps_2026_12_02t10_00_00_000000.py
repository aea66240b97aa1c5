"""nostrzaps: recorded zap requests, receipts and their relay deliveries."""

from fulmen import ddl_migration

ID = "2026-12-02T10:00:00:000000"
VERSION = "1.0"
DESCRIPTION = "nostrzaps requests, receipts, deliveries"

DDL = """
CREATE TABLE nostrzaps_request (
    request_hash VARCHAR(64) NOT NULL,
    link_id VARCHAR(32) NOT NULL,
    wallet_id VARCHAR(32) NOT NULL,
    amount_msat BIGINT NOT NULL,
    sender VARCHAR(64) NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (request_hash, wallet_id, amount_msat)
);
CREATE TABLE nostrzaps_zap (
    id {serial} PRIMARY KEY,
    payment_id BIGINT NOT NULL UNIQUE,
    payment_hash VARCHAR(64) NOT NULL,
    wallet_id VARCHAR(32) NOT NULL,
    link_id VARCHAR(32),
    sender VARCHAR(64) NOT NULL,
    recipient VARCHAR(64) NOT NULL,
    zapped_event VARCHAR(64),
    amount_msat BIGINT NOT NULL,
    content TEXT NOT NULL,
    request TEXT NOT NULL,
    receipt TEXT NOT NULL,
    receipt_id VARCHAR(64) NOT NULL,
    receipt_pubkey VARCHAR(64) NOT NULL,
    paid_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX nostrzaps_zap_wallet ON nostrzaps_zap (wallet_id, id);
CREATE TABLE nostrzaps_delivery (
    id {serial} PRIMARY KEY,
    zap_id BIGINT NOT NULL,
    relay TEXT NOT NULL,
    status VARCHAR(16) NOT NULL,
    message TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    UNIQUE (zap_id, relay)
);
CREATE INDEX nostrzaps_delivery_status ON nostrzaps_delivery (status, zap_id)
"""

forwards = ddl_migration("nostrzaps", ID, DESCRIPTION, DDL)
