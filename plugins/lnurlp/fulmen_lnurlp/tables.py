"""Tables of the lnurlp plugin.

The schema is created by the migrations in `migrations/`; this class
describes it for Piccolo. Amounts of a link are whole sats (as LNbits
serves them), invoices are msat; times are Unix milliseconds.
"""

from __future__ import annotations

from piccolo.columns import BigInt, Boolean, Integer, Text, Varchar
from piccolo.table import Table


class PayLink(Table, tablename="lnurlp_pay_link"):
    """A reusable LNURL-pay link of one wallet."""

    id = Varchar(length=32, primary_key=True)
    #: the wallet that receives the payments
    wallet = Varchar(length=32, index=True)
    #: shown to the payer; the `text/plain` metadata entry
    description = Text()
    #: smallest and largest amount: sats, or with a `currency` the fiat
    #: amount times `fiat_base_multiplier` (cents for 100)
    min = BigInt()
    max = BigInt()
    #: ISO 4217 code of a fiat-priced link (NULL: sats)
    currency = Varchar(length=8, null=True)
    fiat_base_multiplier = Integer(default=100)
    #: LUD-12: longest comment accepted (0: none)
    comment_chars = Integer(default=0)
    #: LUD-16: the Lightning Address name, unique on the host (NULL: none)
    username = Varchar(length=210, null=True, unique=True)
    #: domain served in the address's `text/identifier` (NULL: the host's)
    domain = Varchar(length=253, null=True)
    #: LUD-09: the success action
    success_text = Text(null=True)
    success_url = Text(null=True)
    #: called (POST) once a payment of the link is credited
    webhook_url = Text(null=True)
    #: JSON object of extra headers, and a JSON document sent as `body`
    webhook_headers = Text(null=True)
    webhook_body = Text(null=True)
    #: LUD-11: whether wallets may store the link
    disposable = Boolean(default=True)
    #: NIP-57 zaps (needs the nostrzaps plugin)
    zaps = Boolean(default=False)
    #: counters: pay requests served, invoices issued
    served_meta = BigInt(default=0)
    served_pr = BigInt(default=0)
    created_at = BigInt()
    updated_at = BigInt()
