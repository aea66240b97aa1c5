"""splitpayments: find a share by its invoice's payment hash; one marker row
per split payment, so one run records its shares."""

from fulmen import ddl_migration

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


forwards = ddl_migration("splitpayments", ID, DESCRIPTION, DDL)
