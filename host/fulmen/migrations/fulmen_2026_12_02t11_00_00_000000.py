"""The host processes on this database and the plugins each runs (a heartbeat
every second; rows of processes silent for FULMEN_PROCESS_STALE_AFTER go)."""

from fulmen.db import ddl_migration

ID = "2026-12-02T11:00:00:000000"
VERSION = "1.0"
DESCRIPTION = "process heartbeats"

DDL = """
CREATE TABLE fulmen_process (
    id VARCHAR(64) PRIMARY KEY,
    hostname VARCHAR(255) NOT NULL,
    pid INTEGER NOT NULL,
    host_version VARCHAR(32) NOT NULL,
    plugins TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
)
"""

forwards = ddl_migration("fulmen", ID, DESCRIPTION, DDL)
