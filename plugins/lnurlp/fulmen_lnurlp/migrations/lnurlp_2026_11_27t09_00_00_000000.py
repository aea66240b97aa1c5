"""lnurlp: pay links."""

from fulmen import ddl_migration

ID = "2026-11-27T09:00:00:000000"
VERSION = "1.0"
DESCRIPTION = "lnurlp pay links"

DDL = """
CREATE TABLE lnurlp_pay_link (
    id VARCHAR(32) PRIMARY KEY,
    wallet VARCHAR(32) NOT NULL,
    description TEXT NOT NULL,
    min BIGINT NOT NULL CHECK (min >= 1),
    max BIGINT NOT NULL CHECK (max >= min),
    comment_chars INTEGER NOT NULL DEFAULT 0 CHECK (comment_chars >= 0),
    username VARCHAR(210) UNIQUE,
    domain VARCHAR(253),
    success_text TEXT,
    success_url TEXT,
    webhook_url TEXT,
    webhook_headers TEXT,
    webhook_body TEXT,
    disposable BOOLEAN NOT NULL DEFAULT TRUE,
    served_meta BIGINT NOT NULL DEFAULT 0,
    served_pr BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX lnurlp_pay_link_wallet ON lnurlp_pay_link (wallet, created_at)
"""


forwards = ddl_migration("lnurlp", ID, DESCRIPTION, DDL)
