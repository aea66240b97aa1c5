"""Tables of the withdraw plugin.

The schema is created by the migrations in `migrations/`; these classes
describe it for Piccolo. A link's amounts are whole sats (as LNbits serves
them); times are Unix milliseconds.
"""

from __future__ import annotations

from piccolo.columns import BigInt, Boolean, Integer, Text, Varchar
from piccolo.table import Table


class WithdrawLink(Table, tablename="withdraw_link"):
    """A withdraw link of one wallet."""

    id = Varchar(length=32, primary_key=True)
    #: the wallet the withdrawals are paid from
    wallet = Varchar(length=32, index=True)
    #: the `defaultDescription` of the withdraw request
    title = Text()
    min_withdrawable = BigInt()
    max_withdrawable = BigInt()
    #: how many withdrawals the link allows, and how many were taken
    uses = Integer()
    used = Integer(default=0)
    #: seconds between two withdrawals
    wait_time = Integer(default=0)
    #: stored for LNbits clients; every use has its own k1 anyway
    is_unique = Boolean(default=False)
    #: sha256 (hex) of the link's secret, the last part of its LNURL; the
    #: secret itself is derived from the id with the plugin's key (links.py)
    unique_hash = Varchar(length=64, unique=True)
    #: when the last use was taken (0: never)
    last_used_at = BigInt(default=0)
    webhook_url = Text(null=True)
    webhook_headers = Text(null=True)
    webhook_body = Text(null=True)
    custom_url = Text(null=True)
    enabled = Boolean(default=True)
    created_at = BigInt()
    updated_at = BigInt()


class WithdrawK1(Table, tablename="withdraw_k1"):
    """A k1 issued by a withdraw request. Each is spent at most once: the
    claim marks it spent in the same transaction that takes the link's use."""

    k1 = Varchar(length=64, primary_key=True)
    link_id = Varchar(length=32, index=True)
    issued_at = BigInt()
    #: NULL until a claim spends it
    spent_at = BigInt(null=True)
    #: issued | claimed | paid | failed
    status = Varchar(length=8)
    payment_hash = Varchar(length=64, null=True)
    error = Text(null=True)
