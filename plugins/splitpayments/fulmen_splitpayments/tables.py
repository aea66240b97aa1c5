"""Tables of the splitpayments plugin.

The schema is created by the migrations in `migrations/`; these classes
describe it for Piccolo. Money is integer msat, times are Unix milliseconds.
"""

from __future__ import annotations

from piccolo.columns import BigInt, BigSerial, DoublePrecision, Text, Varchar
from piccolo.table import Table


class Target(Table, tablename="splitpayments_target"):
    """One share of a source wallet's incoming payments."""

    id = Varchar(length=32, primary_key=True)
    #: the wallet whose incoming payments are split
    source = Varchar(length=32, index=True)
    #: the wallet on this host that receives the share
    wallet = Varchar(length=32)
    alias = Text(default="")
    #: 0 < percent <= 100; the shares of one source sum to at most 100
    percent = DoublePrecision()
    created_at = BigInt()


class Split(Table, tablename="splitpayments_split"):
    """One share paid (or to be paid) for one incoming payment.

    Unique per (payment_id, target_wallet): a retried hook finds the row and
    never pays the same share twice.
    """

    id = BigSerial(primary_key=True)
    #: the incoming payment being split (fulmen_payment.id)
    payment_id = BigInt()
    source = Varchar(length=32)
    target_wallet = Varchar(length=32)
    alias = Text(default="")
    percent = DoublePrecision()
    amount_msat = BigInt()
    #: pending | done | failed | skipped
    status = Varchar(length=8)
    #: the invoice created in the target wallet for this share
    bolt11 = Text(null=True)
    payment_hash = Varchar(length=64, null=True)
    error = Text(null=True)
    created_at = BigInt()
    updated_at = BigInt()


class SplitPayment(Table, tablename="splitpayments_payment"):
    """One row per incoming payment whose shares were recorded: the run that
    inserts it records the shares, in the same transaction."""

    payment_id = BigInt(primary_key=True)
    created_at = BigInt()
