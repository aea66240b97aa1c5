"""withdraw: store only the sha256 of each link's secret.

Links made before this keep their LNURL working: a presented secret is
looked up by its sha256. Their secret was random, not derived from the
link's id, so after this migration it is no longer shown anywhere.
"""

import hashlib

from fulmen import query
from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-02T12:00:00:000000"
VERSION = "1.1"
DESCRIPTION = "withdraw link secrets stored as sha256"


async def hash_stored_secrets() -> int:
    """Replace each stored secret by its sha256; returns how many changed.
    Values that already are a sha256 (64 hex digits) are left alone, so a
    run cut short is finished by running it again."""
    changed = 0
    for row in await query("SELECT id, unique_hash FROM withdraw_link"):
        value = row["unique_hash"]
        if len(value) == 64 and all(c in "0123456789abcdef" for c in value):
            continue
        await query("UPDATE withdraw_link SET unique_hash = {} WHERE id = {}",
                    hashlib.sha256(value.encode()).hexdigest(), row["id"])
        changed += 1
    return changed


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="withdraw", description=DESCRIPTION)

    async def run() -> None:
        await hash_stored_secrets()

    manager.add_raw(run)
    return manager
