"""tpos: terminals and the invoices they created."""

from fulmen import ddl_migration

ID = "2026-11-27T07:00:00:000000"
VERSION = "1.0"
DESCRIPTION = "tpos terminals and payments"

DDL = """
CREATE TABLE tpos_pos (
    id VARCHAR(32) PRIMARY KEY,
    wallet VARCHAR(32) NOT NULL,
    name TEXT NOT NULL,
    currency VARCHAR(8) NOT NULL,
    tip_options TEXT NOT NULL DEFAULT '[]',
    tip_wallet VARCHAR(32),
    items TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX tpos_pos_wallet ON tpos_pos (wallet);
CREATE TABLE tpos_payment (
    payment_hash VARCHAR(64) PRIMARY KEY,
    tpos_id VARCHAR(32) NOT NULL,
    wallet VARCHAR(32) NOT NULL,
    amount_msat BIGINT NOT NULL,
    tip_msat BIGINT NOT NULL DEFAULT 0 CHECK (tip_msat >= 0),
    tip_wallet VARCHAR(32),
    tip_status VARCHAR(8) NOT NULL,
    tip_bolt11 TEXT,
    tip_payment_hash VARCHAR(64),
    tip_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX tpos_payment_tpos ON tpos_payment (tpos_id, created_at)
"""


forwards = ddl_migration("tpos", ID, DESCRIPTION, DDL)
