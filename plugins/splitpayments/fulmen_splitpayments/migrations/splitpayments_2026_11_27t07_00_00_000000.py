"""splitpayments: targets and the record of shares paid."""

from fulmen import ddl_migration

ID = "2026-11-27T07:00:00:000000"
VERSION = "1.0"
DESCRIPTION = "splitpayments targets and splits"

DDL = """
CREATE TABLE splitpayments_target (
    id VARCHAR(32) PRIMARY KEY,
    source VARCHAR(32) NOT NULL,
    wallet VARCHAR(32) NOT NULL,
    alias TEXT NOT NULL DEFAULT '',
    percent DOUBLE PRECISION NOT NULL CHECK (percent > 0 AND percent <= 100),
    created_at BIGINT NOT NULL,
    UNIQUE (source, wallet)
);
CREATE INDEX splitpayments_target_source ON splitpayments_target (source);
CREATE TABLE splitpayments_split (
    id {serial} PRIMARY KEY,
    payment_id BIGINT NOT NULL,
    source VARCHAR(32) NOT NULL,
    target_wallet VARCHAR(32) NOT NULL,
    alias TEXT NOT NULL DEFAULT '',
    percent DOUBLE PRECISION NOT NULL,
    amount_msat BIGINT NOT NULL CHECK (amount_msat >= 0),
    status VARCHAR(8) NOT NULL,
    bolt11 TEXT,
    payment_hash VARCHAR(64),
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (payment_id, target_wallet)
);
CREATE INDEX splitpayments_split_source ON splitpayments_split (source, created_at)
"""


forwards = ddl_migration("splitpayments", ID, DESCRIPTION, DDL)
