"""lndhub: access and refresh tokens."""

from fulmen import ddl_migration

ID = "2026-12-02T10:00:00:000000"
VERSION = "1.0"
DESCRIPTION = "lndhub tokens"

DDL = """
CREATE TABLE lndhub_token (
    token_hash VARCHAR(64) PRIMARY KEY,
    kind VARCHAR(8) NOT NULL,
    login VARCHAR(8) NOT NULL,
    wallet_id VARCHAR(32) NOT NULL,
    key_digest VARCHAR(64) NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX lndhub_token_expiry ON lndhub_token (expires_at)
"""

forwards = ddl_migration("lndhub", ID, DESCRIPTION, DDL)
