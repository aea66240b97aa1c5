"""splitpayments: find a share by its invoice's payment hash; one marker row
per split payment, so one run records its shares."""

from fulmen import run_ddl
from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-27T10:00:00:000000"
VERSION = "1.0"
DESCRIPTION = "splitpayments: share invoice hash index; split payment markers"

DDL = """
CREATE INDEX splitpayments_split_hash ON splitpayments_split (payment_hash);
CREATE TABLE splitpayments_payment (
    payment_id BIGINT PRIMARY KEY,
    created_at BIGINT NOT NULL
)
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="splitpayments", description=DESCRIPTION)

    async def run():
        await run_ddl(DDL)

    manager.add_raw(run)
    return manager
