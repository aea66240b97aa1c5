"""The plugin's tables, as its migrations create them (queries use SQL).

Piccolo takes one primary-key column: for the tables whose key has several
columns, the first is marked and the migration holds the real key.
"""

from __future__ import annotations

from piccolo.columns import BigInt, BigSerial, Boolean, Integer, Text, Varchar
from piccolo.table import Table


class ZapRequest(Table, tablename="nostrzaps_request"):
    """A zap request (kind 9734) an invoice was made for; key (request_hash, wallet_id, amount_msat)."""

    request_hash = Varchar(length=64, primary_key=True)
    link_id = Varchar(length=32)
    wallet_id = Varchar(length=32)
    amount_msat = BigInt()
    sender = Varchar(length=64)
    created_at = BigInt()


class Zap(Table, tablename="nostrzaps_zap"):
    """A paid zap and its signed receipt (kind 9735)."""

    id = BigSerial(primary_key=True)
    payment_id = BigInt(unique=True)
    payment_hash = Varchar(length=64)
    wallet_id = Varchar(length=32)
    link_id = Varchar(length=32, null=True, default=None)
    sender = Varchar(length=64)
    recipient = Varchar(length=64)
    zapped_event = Varchar(length=64, null=True, default=None)
    amount_msat = BigInt()
    content = Text()
    request = Text()
    receipt = Text()
    receipt_id = Varchar(length=64)
    receipt_pubkey = Varchar(length=64)
    paid_at = BigInt()
    created_at = BigInt()


class Delivery(Table, tablename="nostrzaps_delivery"):
    """One receipt sent to one relay, and how the relay answered."""

    id = BigSerial(primary_key=True)
    zap_id = BigInt()
    relay = Text()
    status = Varchar(length=16)
    message = Text(null=True, default=None)
    attempts = Integer(default=0)
    updated_at = BigInt()


class LinkKey(Table, tablename="nostrzaps_link_key"):
    """A pay link's own Nostr key; key (link_id, pubkey)."""

    link_id = Varchar(length=32, primary_key=True)
    pubkey = Varchar(length=64)
    wallet_id = Varchar(length=32)
    private_key = Varchar(length=64)
    active = Boolean()
    created_at = BigInt()
