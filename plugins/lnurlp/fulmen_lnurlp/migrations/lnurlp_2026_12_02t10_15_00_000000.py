"""lnurlp: the `zaps` flag of a pay link (NIP-57, served by the nostrzaps plugin)."""

from fulmen import ddl_migration

ID = "2026-12-02T10:15:00:000000"
VERSION = "1.0"
DESCRIPTION = "lnurlp pay link zaps flag"

DDL = "ALTER TABLE lnurlp_pay_link ADD COLUMN zaps BOOLEAN NOT NULL DEFAULT FALSE"

forwards = ddl_migration("lnurlp", ID, DESCRIPTION, DDL)
