"""Tables of the tpos plugin.

The schema is created by the migrations in `migrations/`; these classes
describe it for Piccolo. Money is integer msat, times are Unix milliseconds.
"""

from __future__ import annotations

from piccolo.columns import BigInt, Text, Varchar
from piccolo.table import Table


class Tpos(Table, tablename="tpos_pos"):
    """A terminal."""

    id = Varchar(length=32, primary_key=True)
    #: the wallet that receives the terminal's payments
    wallet = Varchar(length=32, index=True)
    name = Text()
    #: "sats" or an ISO 4217 code, for display
    currency = Varchar(length=8)
    #: JSON list of tip percentages, e.g. "[5, 10, 15]"
    tip_options = Text(default="[]")
    #: where tips go; NULL: the terminal takes no tips
    tip_wallet = Varchar(length=32, null=True)
    #: JSON list of items (title, price, ...)
    items = Text(default="[]")
    created_at = BigInt()
    updated_at = BigInt()


class TposPayment(Table, tablename="tpos_payment"):
    """An invoice a terminal created, and the state of its tip.

    The tip hook trusts only these rows (never the invoice's `extra`, which
    any invoice-key holder can write), and the row's conditional updates
    make the tip move exactly once.
    """

    payment_hash = Varchar(length=64, primary_key=True)
    tpos_id = Varchar(length=32, index=True)
    wallet = Varchar(length=32)
    amount_msat = BigInt()
    tip_msat = BigInt(default=0)
    #: the tip wallet when the invoice was made
    tip_wallet = Varchar(length=32, null=True)
    #: none | pending | done | failed
    tip_status = Varchar(length=8)
    tip_bolt11 = Text(null=True)
    tip_payment_hash = Varchar(length=64, null=True)
    tip_error = Text(null=True)
    created_at = BigInt()
    updated_at = BigInt()
