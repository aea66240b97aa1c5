"""Web sign-in: optional username and password on accounts, browser sessions."""

from fulmen.db import ddl_migration

ID = "2026-12-02T10:30:00:000000"
VERSION = "1.0"
DESCRIPTION = "web sign-in: usernames, password hashes, sessions"

DDL = """
ALTER TABLE fulmen_account ADD COLUMN username VARCHAR(64);
ALTER TABLE fulmen_account ADD COLUMN password_hash TEXT;
CREATE UNIQUE INDEX fulmen_account_username ON fulmen_account (username);
CREATE TABLE fulmen_web_session (
    token_hash VARCHAR(64) PRIMARY KEY,
    account_id VARCHAR(32),
    admin BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX fulmen_web_session_account ON fulmen_web_session (account_id)
"""

forwards = ddl_migration("fulmen", ID, DESCRIPTION, DDL)
