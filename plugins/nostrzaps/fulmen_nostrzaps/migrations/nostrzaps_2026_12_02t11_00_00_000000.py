"""nostrzaps: an optional Nostr key per pay link."""

from fulmen import ddl_migration

ID = "2026-12-02T11:00:00:000000"
VERSION = "1.0"
DESCRIPTION = "nostrzaps key per link"

DDL = """
CREATE TABLE nostrzaps_link_key (
    link_id VARCHAR(32) NOT NULL,
    pubkey VARCHAR(64) NOT NULL,
    wallet_id VARCHAR(32) NOT NULL,
    private_key VARCHAR(64) NOT NULL,
    active BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (link_id, pubkey)
)
"""

forwards = ddl_migration("nostrzaps", ID, DESCRIPTION, DDL)
