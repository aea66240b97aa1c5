"""Plugins' durable jobs (fulmen/jobs.py), in the one outbox shape."""

from fulmen.db import ddl_migration

ID = "2026-12-02T10:00:00:000000"
VERSION = "1.0"
DESCRIPTION = "plugin jobs"

DDL = """
CREATE TABLE fulmen_job (
    id {serial} PRIMARY KEY,
    plugin_id VARCHAR(64) NOT NULL,
    kind VARCHAR(64) NOT NULL,
    -- with a key, a job is recorded once per (plugin, kind, key)
    job_key VARCHAR(200),
    payload TEXT NOT NULL,
    status VARCHAR(8) NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until BIGINT NOT NULL DEFAULT 0,
    give_up_at BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX fulmen_job_once ON fulmen_job (plugin_id, kind, job_key)
    WHERE job_key IS NOT NULL;
CREATE INDEX fulmen_job_due ON fulmen_job (next_attempt_at) WHERE status = 'pending'
"""


forwards = ddl_migration("fulmen", ID, DESCRIPTION, DDL)
