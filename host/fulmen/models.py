"""The host's domain objects and their LNbits-compatible JSON shapes."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

KEY_KINDS = ("admin", "invoice", "read")


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The range a date can be shown in (year 1970 to 9999), in Unix ms.
ISO_MIN_MS, ISO_MAX_MS = 0, 253_402_300_799_999


@functools.lru_cache(maxsize=4096)  # a payment's rows share a few timestamps
def iso(ms: int) -> str:
    """Unix ms as ISO 8601 UTC. A stored value outside the date type's range
    (from before invoice dates were bounded) is shown clamped, never raised:
    one odd row must not make a payment, a history page or an export fail."""
    ms = min(max(int(ms), ISO_MIN_MS), ISO_MAX_MS)
    return (EPOCH + timedelta(milliseconds=ms)).isoformat()


@dataclass(frozen=True)
class WalletAuth:
    """The wallet a request's X-Api-Key opened, and with which kind of key."""

    wallet_id: str
    account_id: str
    kind: str  # admin | invoice | read

    @property
    def can_spend(self) -> bool:
        return self.kind == "admin"

    @property
    def can_receive(self) -> bool:
        return self.kind in ("admin", "invoice")


@dataclass
class Wallet:
    id: str
    account_id: str
    name: str
    balance_msat: int
    currency: str | None
    created_at: int
    #: plaintext keys, present only right after creation or rotation
    keys: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Wallet:
        return cls(
            id=row["id"],
            account_id=row["account_id"],
            name=row["name"],
            balance_msat=int(row["balance_msat"]),
            currency=row.get("currency"),
            created_at=int(row["created_at"]),
        )

    def to_lnbits(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "user": self.account_id,
            "name": self.name,
            "currency": self.currency,
            "balance_msat": self.balance_msat,
            "lightning_address": None,
            "wallet_type": "lightning",
            "extra": {},
            "deleted": False,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.created_at),
        }
        if self.keys:
            data["adminkey"] = self.keys["admin"]
            data["inkey"] = self.keys["invoice"]
            data["readkey"] = self.keys["read"]
        return data


@dataclass
class Payment:
    id: int
    wallet_id: str
    out: bool
    status: str
    payment_hash: str
    checking_id: str
    bolt11: str
    amount_msat: int
    fee_msat: int
    fee_reserve_msat: int
    memo: str
    preimage: str | None
    expires_at: int
    webhook: str | None
    extra: dict[str, Any]
    tag: str | None
    internal: bool
    error: str | None
    created_at: int
    updated_at: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Payment:
        extra = row.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra)
        return cls(
            id=int(row["id"]),
            wallet_id=row["wallet_id"],
            out=bool(row["out"]),
            status=row["status"],
            payment_hash=row["payment_hash"],
            checking_id=row["checking_id"],
            bolt11=row["bolt11"],
            amount_msat=int(row["amount_msat"]),
            fee_msat=int(row["fee_msat"]),
            fee_reserve_msat=int(row["fee_reserve_msat"]),
            memo=row["memo"],
            preimage=row.get("preimage"),
            expires_at=int(row["expires_at"]),
            webhook=row.get("webhook"),
            extra=extra,
            tag=row.get("tag"),
            internal=bool(row["internal"]),
            error=row.get("error"),
            created_at=int(row["created_at"]),
            updated_at=int(row["updated_at"]),
        )

    @property
    def paid(self) -> bool:
        return self.status == "success"

    def to_lnbits(self) -> dict[str, Any]:
        """LNbits's Payment fields. The preimage of an incoming invoice is
        shown only once it is paid: before that it is the secret that proves
        payment."""
        show_preimage = self.preimage if (self.out or self.paid) else None
        return {
            "checking_id": self.checking_id,
            "payment_hash": self.payment_hash,
            "wallet_id": self.wallet_id,
            "amount": self.amount_msat,
            "fee": -self.fee_msat if self.out else 0,
            "bolt11": self.bolt11,
            "payment_request": self.bolt11,
            "status": self.status,
            "pending": self.status == "pending",
            "memo": self.memo,
            "expiry": iso(self.expires_at),
            "preimage": show_preimage,
            "webhook": self.webhook,
            "extra": self.extra,
            "tag": self.tag,
            "extension": self.tag,
            "labels": [],
            "external_id": None,
            "fiat_provider": None,
            "time": iso(self.created_at),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


@dataclass
class InvoiceRequest:
    """What a caller asked for when creating an invoice. Plugins may change
    `extra` (and `memo`) in `before_invoice_created`."""

    amount_msat: int
    memo: str = ""
    expiry: int = 3600
    description_hash: bytes | None = None
    webhook: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InvoiceInfo:
    """The facts of an invoice about to be paid (decoded, or known because
    this host issued it)."""

    bolt11: str
    payment_hash: str
    amount_msat: int
    expires_at: int  # Unix ms
    description: str | None
    description_hash: str | None
    payee: str | None
    internal: bool
