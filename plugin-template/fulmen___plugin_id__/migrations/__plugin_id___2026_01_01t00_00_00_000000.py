"""Create the table of paid invoices. The same SQL runs on SQLite and PostgreSQL."""

from fulmen import ddl_migration

ID = "2026-01-01T00:00:00:000000"
DESCRIPTION = "paid invoices"

DDL = """
CREATE TABLE __plugin_id___paid_invoice (
    payment_id BIGINT PRIMARY KEY,
    wallet_id VARCHAR(32) NOT NULL,
    amount_msat BIGINT NOT NULL,
    memo TEXT NOT NULL DEFAULT '',
    paid_at BIGINT NOT NULL
);
CREATE INDEX __plugin_id___paid_invoice_wallet ON __plugin_id___paid_invoice (wallet_id, paid_at)
"""


forwards = ddl_migration("__plugin_id__", ID, DESCRIPTION, DDL)
