"""Wallets whose payment hooks a `watch_wallets` plugin gets."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from fulmen.db import run_ddl

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


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="fulmen", description=DESCRIPTION)

    async def run():
        await run_ddl(DDL)

    manager.add_raw(run)
    return manager
