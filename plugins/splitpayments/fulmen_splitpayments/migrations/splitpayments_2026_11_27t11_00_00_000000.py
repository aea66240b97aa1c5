"""splitpayments: watch the wallets that already have split targets, so the
host records their payment hooks (and only theirs)."""

from fulmen import query
from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-27T11:00:00:000000"
VERSION = "1.0"
DESCRIPTION = "splitpayments: watch wallets with targets"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="splitpayments", description=DESCRIPTION)

    async def run():
        await query(
            "INSERT INTO fulmen_hook_wallet (plugin_id, wallet_id) "
            "SELECT DISTINCT 'splitpayments', source FROM splitpayments_target WHERE true "
            # `WHERE true`: SQLite needs it to read ON CONFLICT after a SELECT
            "ON CONFLICT (plugin_id, wallet_id) DO NOTHING"
        )

    manager.add_raw(run)
    return manager
