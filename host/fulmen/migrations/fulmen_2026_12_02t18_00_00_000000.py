"""`fulmen_refuse(reason)`, PostgreSQL only: raises its reason (SQLSTATE
FU001) when it is not NULL, which undoes the statement that called it. The
one-statement internal payment (`fulmen/internal_payment.py`) runs as its own
transaction and uses it to undo a claim whose money could not move."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from fulmen import db

ID = "2026-12-02T18:00:00:000000"
VERSION = "1.0"
DESCRIPTION = "fulmen_refuse, for the one-statement internal payment"

REFUSE_FUNCTION = """
CREATE OR REPLACE FUNCTION fulmen_refuse(reason text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF reason IS NOT NULL THEN
        RAISE EXCEPTION 'fulmen_refuse: %', reason USING ERRCODE = 'FU001';
    END IF;
    RETURN FALSE;
END
$$"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="fulmen", description=DESCRIPTION)

    async def run() -> None:
        if db.is_postgres():
            engine = db.piccolo_conf.DB
            assert engine is not None
            await engine.run_ddl(REFUSE_FUNCTION)

    manager.add_raw(run)
    return manager
