"""An internal payment on PostgreSQL, in one statement.

`PaymentService._settle_internal_step_by_step` plus the settlement step are
the reference: claim the invoice, debit the payer, credit the payee, insert
the outgoing payment and both ledger rows, then write each wallet's event and
the plugins' hook-delivery rows (from fulmen/settlement.py's SQL fragments,
so that module stays the only writer of those tables). That is about ten statements, and between any
two of them both wallet rows stay locked while the process serves other
requests. A wallet that receives many payments at once (a shop) is then
limited by how long its row stays locked.

Here the same rows are written by one statement (a chain of data-modifying
CTEs). Each step runs only if the one before it returned a row, which also
fixes their order (claim, then the wallets in id order, as everywhere else).

Most payments need nothing else, so the statement runs as its own
transaction: one round trip, and the wallet rows are locked only for the
statement and its commit (no BEGIN and COMMIT round trips, no waiting for
this process's event loop in between). Two things keep that safe:

- a partial result (invoice claimed, a wallet refused the change) makes the
  statement raise (`fulmen_refuse`, a PostgreSQL function), which undoes it
  all: `Refused`;
- a wallet with webhook endpoints needs delivery rows that Python builds
  from the event, so the statement refuses to run alone there (`HasWebhooks`)
  and the caller runs it again inside a transaction.

The event rows need each payment's LNbits JSON before the statement creates
the payments, so it is built from the invoice row as read. The claim takes
only that very version of the row (`xmin`, PostgreSQL's row version): if the
row changed since, nothing is claimed and the caller settles step by step.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from .db import query
from .models import Payment, WalletAuth
from .settlement import EVENTS_CTE, HOOK_DELIVERIES_CTE

_SQL = """
WITH claimed AS (
    -- $17: the preimage, for an invoice that does not store it while unpaid
    UPDATE fulmen_payment SET status = 'success', preimage = COALESCE(preimage, $17), updated_at = $1
    -- $18: the row version read, so the predicted event rows describe this row
    WHERE id = $2 AND status = 'pending' AND expires_at > $1 AND xmin::text = $18
    RETURNING *
), first_wallet AS (
    -- `balance_msat + change >= 0`: the no-overdraw rule for the debit,
    -- always true for the credit. Each wallet gets one event: its next number.
    UPDATE fulmen_wallet SET balance_msat = balance_msat + $4, event_seq = event_seq + 1
    WHERE id = $3 AND NOT deleted AND balance_msat + $4 >= 0 AND EXISTS (SELECT 1 FROM claimed)
    RETURNING id, balance_msat, event_seq, webhook_endpoints
), second_wallet AS (
    UPDATE fulmen_wallet SET balance_msat = balance_msat + $6, event_seq = event_seq + 1
    WHERE id = $5 AND NOT deleted AND balance_msat + $6 >= 0 AND EXISTS (SELECT 1 FROM first_wallet)
    RETURNING id, balance_msat, event_seq, webhook_endpoints
), outgoing AS (
    INSERT INTO fulmen_payment (wallet_id, out, status, payment_hash, checking_id, bolt11,
        amount_msat, fee_msat, fee_reserve_msat, memo, preimage, expires_at, extra, tag,
        internal, idempotency_key, created_at, updated_at)
    SELECT $7, TRUE, 'success', payment_hash, 'internal_' || payment_hash, bolt11,
        -amount_msat, 0, 0, memo, preimage, expires_at, $8, $9, TRUE, $10, $1, $1
    FROM claimed WHERE EXISTS (SELECT 1 FROM second_wallet)
    RETURNING *
), paid AS (
    -- both payments, only once everything above succeeded
    SELECT * FROM claimed WHERE EXISTS (SELECT 1 FROM outgoing)
    UNION ALL SELECT * FROM outgoing
), wallets AS (
    SELECT * FROM first_wallet UNION ALL SELECT * FROM second_wallet
), ledger AS (
    INSERT INTO fulmen_ledger (wallet_id, amount_msat, kind, payment_id, reason, created_at)
    SELECT wallet_id, amount_msat, 'payment', id, '', $1 FROM paid
), {events_cte}, {deliveries_cte}, verdict AS (
    -- Raising undoes the whole statement. $19: no webhook deliveries can be
    -- written here (the statement is its own transaction).
    SELECT fulmen_refuse(CASE
        WHEN NOT EXISTS (SELECT 1 FROM claimed) THEN NULL
        WHEN NOT EXISTS (SELECT 1 FROM outgoing) THEN 'refused'
        WHEN $19 AND EXISTS (SELECT 1 FROM wallets WHERE webhook_endpoints > 0) THEN 'webhooks'
    END) AS refused
)
SELECT p.*, e.id AS event_id, e.seq AS event_seq, w.balance_msat AS wallet_balance_msat,
    w.webhook_endpoints AS wallet_webhooks, (SELECT count(*) FROM deliveries) AS deliveries
FROM (SELECT * FROM claimed UNION ALL SELECT * FROM outgoing) p
CROSS JOIN verdict
LEFT JOIN events e ON e.payment_id = p.id
LEFT JOIN wallets w ON w.id = p.wallet_id
"""
SQL = _SQL.replace("{events_cte}", EVENTS_CTE).replace("{deliveries_cte}", HOOK_DELIVERIES_CTE)


class Mismatch(Exception):
    """The invoice row changed after it was read, so the event rows predicted
    from it would be wrong: nothing was written, settle step by step."""


class Refused(Exception):
    """The invoice was claimable but a wallet refused the change (its
    balance, or it was deleted): nothing was written."""


class HasWebhooks(Exception):
    """A wallet has webhook endpoints: nothing was written; run the statement
    inside a transaction that also writes their deliveries."""


_REFUSALS = {"refused": Refused, "webhooks": HasWebhooks}


def predicted_payments(
    payer: WalletAuth, invoice_row: dict, extra: dict, now: int
) -> tuple[Payment, Payment]:
    """The incoming and outgoing payments as the statement will leave them."""
    incoming = replace(Payment.from_row(invoice_row), status="success", updated_at=now)
    outgoing = Payment(
        id=0, wallet_id=payer.wallet_id, out=True, status="success",
        payment_hash=incoming.payment_hash, checking_id=f"internal_{incoming.payment_hash}",
        bolt11=incoming.bolt11, amount_msat=-incoming.amount_msat, fee_msat=0, fee_reserve_msat=0,
        memo=incoming.memo, preimage=incoming.preimage, expires_at=incoming.expires_at,
        webhook=None, extra=extra, tag=extra.get("tag"), internal=True, error=None,
        created_at=now, updated_at=now,
    )
    return incoming, outgoing


async def settle(
    payer: WalletAuth,
    invoice_row: dict,
    extra: dict,
    idempotency_key: str | None,
    now: int,
    lock_order: list[tuple[str, int]],
    hook_targets: list[list[Any]],
    event_payments: tuple[dict[str, Any], dict[str, Any]],
    alone: bool,
) -> list[dict[str, Any]]:
    """Run the statement: both payments' rows, or none if the invoice was not
    claimed (not payable, or changed since read: `invoice_row["row_version"]`).
    `hook_targets`: four arrays (plugin ids, hooks, for the outgoing payment,
    only for watched wallets; `Settlement.statement_hook_targets`);
    `event_payments`: the predicted incoming and outgoing payments'
    `to_lnbits()`, for the event rows; `alone`: the statement is its own
    transaction (so it refuses wallets with webhooks). Raises `Refused`
    or `HasWebhooks`, having written nothing."""
    (first, first_delta), (second, second_delta) = lock_order
    incoming_json, outgoing_json = (json.dumps(p) for p in event_payments)
    try:
        return await query(
            SQL, now, invoice_row["id"], first, first_delta, second, second_delta,
            payer.wallet_id, json.dumps(extra), extra.get("tag"), idempotency_key,
            incoming_json, outgoing_json, *hook_targets, invoice_row.get("preimage"),
            invoice_row["row_version"], alone,
        )
    except Exception as exc:
        if getattr(exc, "sqlstate", None) == "FU001":
            reason = str(exc).removeprefix("fulmen_refuse: ")
            raise _REFUSALS[reason]() from None
        raise
