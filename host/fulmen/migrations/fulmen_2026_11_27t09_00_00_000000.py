"""Wallets whose payment hooks a `watch_wallets` plugin gets."""

from fulmen.db import ddl_migration

ID = "2026-11-27T09:00:00:000000"
VERSION = "1.0"
DESCRIPTION = "wallets watched by plugins"

DDL = """
CREATE TABLE fulmen_hook_wallet (
    plugin_id VARCHAR(64) NOT NULL,
    wallet_id VARCHAR(32) NOT NULL,
    PRIMARY KEY (plugin_id, wallet_id)
)
"""


forwards = ddl_migration("fulmen", ID, DESCRIPTION, DDL)
