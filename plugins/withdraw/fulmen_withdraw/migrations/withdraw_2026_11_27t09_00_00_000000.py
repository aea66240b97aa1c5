"""withdraw: links and their one-time k1s."""

from fulmen import ddl_migration

ID = "2026-11-27T09:00:00:000000"
VERSION = "1.0"
DESCRIPTION = "withdraw links and k1s"

DDL = """
CREATE TABLE withdraw_link (
    id VARCHAR(32) PRIMARY KEY,
    wallet VARCHAR(32) NOT NULL,
    title TEXT NOT NULL,
    min_withdrawable BIGINT NOT NULL CHECK (min_withdrawable >= 1),
    max_withdrawable BIGINT NOT NULL CHECK (max_withdrawable >= min_withdrawable),
    uses INTEGER NOT NULL CHECK (uses >= 1),
    used INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0 AND used <= uses),
    wait_time INTEGER NOT NULL DEFAULT 0 CHECK (wait_time >= 0),
    is_unique BOOLEAN NOT NULL DEFAULT FALSE,
    unique_hash VARCHAR(64) NOT NULL UNIQUE,
    last_used_at BIGINT NOT NULL DEFAULT 0,
    webhook_url TEXT,
    webhook_headers TEXT,
    webhook_body TEXT,
    custom_url TEXT,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX withdraw_link_wallet ON withdraw_link (wallet, created_at);
CREATE TABLE withdraw_k1 (
    k1 VARCHAR(64) PRIMARY KEY,
    link_id VARCHAR(32) NOT NULL,
    issued_at BIGINT NOT NULL,
    spent_at BIGINT,
    status VARCHAR(8) NOT NULL,
    payment_hash VARCHAR(64),
    error TEXT
);
CREATE INDEX withdraw_k1_link ON withdraw_k1 (link_id, issued_at)
"""


forwards = ddl_migration("withdraw", ID, DESCRIPTION, DDL)
