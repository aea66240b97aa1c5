"""lnurlp: fiat-priced links (LNbits's `currency` and `fiat_base_multiplier`)."""

from fulmen import ddl_migration

ID = "2026-12-02T10:00:00:000000"
VERSION = "1.0"
DESCRIPTION = "lnurlp fiat-priced links"

# With a currency, min and max are fiat amounts times fiat_base_multiplier
# (whole cents for 100), as LNbits stores them.
DDL = """
ALTER TABLE lnurlp_pay_link ADD COLUMN currency VARCHAR(8);
ALTER TABLE lnurlp_pay_link ADD COLUMN fiat_base_multiplier INTEGER NOT NULL DEFAULT 100
"""


forwards = ddl_migration("lnurlp", ID, DESCRIPTION, DDL)
