"""The payment service: every change to a balance happens here.

Read it top to bottom:

1. `create_invoice`  - ask the funding source for an invoice, store it pending.
2. `pay`             - an invoice this host issued settles internally in one
                       transaction; any other goes out through the funding
                       source with a fee reserve held until the node answers.
3. `settle_incoming` - the funding source says an invoice was paid: credit once.
4. `finish_outgoing` - the node's final word on an outgoing payment.
5. `reconcile`       - after a crash or restart, ask the node about anything
                       still pending.

The rules every path follows:
- A balance changes only in a transaction that also writes the ledger entry
  explaining it, so `balance == sum(ledger)` always (`fulmen audit`).
- Spending is a conditional UPDATE (`... WHERE balance_msat >= amount`), and
  a status change is a conditional UPDATE on the old status. The database
  decides who wins a race, so the rules hold across processes.
- What a final state causes (the wallet's event, webhook and plugin-hook
  deliveries) is written by the settlement step (fulmen/settlement.py) in
  the same transaction, and carried out after the commit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import secrets
from typing import Any

from piccolo.engine.base import Engine

from . import internal_payment
from .db import is_postgres, now_ms, query, transaction
from .errors import BadRequest, Conflict, InsufficientBalance, NotFound, PaymentFailed
from .events import Event
from .funding import FundingError, FundingSource, PaymentState, PaymentStatus
from .hooks import Hooks
from .invoices import MAX_MSAT as MAX_BALANCE_MSAT
from .invoices import check_created, decode_invoice
from .models import InvoiceInfo, InvoiceRequest, Payment, WalletAuth
from .settings import Settings
from .settlement import Recorded, Settlement

log = logging.getLogger(__name__)

#: an invoice this host issued, found by the hash of its text; on PostgreSQL
#: with its row version, so a one-statement payment claims only what was read
_OWN_INVOICE = "SELECT * FROM fulmen_payment WHERE bolt11_hash = {} AND NOT out"
_OWN_INVOICE_PG = _OWN_INVOICE.replace("*", "*, xmin::text AS row_version", 1)
#: Pending incoming invoices are still checked this long after they expired.
INVOICE_GRACE_MS = 3_600_000


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def is_unique_violation(exc: BaseException) -> bool:
    """A unique index refused the row (sqlite3 or asyncpg)."""
    name = type(exc).__name__
    return name == "UniqueViolationError" or (name == "IntegrityError" and "UNIQUE" in str(exc))


BALANCE_CEILING_MESSAGE = (
    f"This would take the wallet's balance above the maximum of {MAX_BALANCE_MSAT} msat "
    "(21 million bitcoin)"
)


def is_balance_ceiling_violation(exc: BaseException) -> bool:
    """The database refused a balance above the ceiling (its CHECK or trigger)."""
    return "fulmen_wallet_balance_max" in str(exc)


def _unpayable_reason(invoice: Payment) -> str:
    if invoice.status == "success":
        return "Invoice is already paid"
    if invoice.expires_at <= now_ms():
        return "Invoice has expired"
    return f"Invoice cannot be paid (it is {invoice.status})"


def _in_lock_order(payer: str, payee: str, amount: int) -> list[tuple[str, int]]:
    """The two balance changes of an internal payment, in wallet-id order, so
    two opposite payments lock the rows in the same order and cannot deadlock."""
    return sorted([(payer, -amount), (payee, amount)])


class PaymentService:
    def __init__(self, settings: Settings, engine: Engine, funding: FundingSource, hooks: Hooks,
                 settlement: Settlement) -> None:
        self.settings = settings
        self.engine = engine
        self.funding = funding
        self.hooks = hooks
        self.settlement = settlement

    # --- 1. receive -------------------------------------------------------------

    async def create_invoice(self, wallet: WalletAuth, request: InvoiceRequest) -> Payment:
        if request.amount_msat <= 0:
            raise BadRequest("amount must be greater than zero")
        if request.amount_msat > self.settings.max_invoice_msat:
            raise BadRequest(
                f"amount is above this host's limit of {self.settings.max_invoice_msat // 1000} sat"
            )
        await self.hooks.before_invoice_created(wallet=wallet, request=request)
        try:
            created = await self.funding.create_invoice(
                request.amount_msat, request.memo, request.description_hash, request.expiry
            )
        except FundingError as exc:
            raise PaymentFailed(f"The funding source could not create an invoice: {exc}") from exc
        # A node's invoice must commit to the hash and amount it reports
        # (decoding costs milliseconds: skipped for invoices the host encoded).
        if not created.self_encoded:
            checked = check_created(
                created.bolt11, created.payment_hash, request.amount_msat, self.settings.network
            )
            if not created.payment_hash:  # e.g. an upstream LNbits that omits it
                created = dataclasses.replace(
                    created, payment_hash=checked.payment_hash,
                    checking_id=created.checking_id or checked.payment_hash,
                )
        now = now_ms()
        extra = json.dumps(request.extra)
        payment = Payment(
            id=0, wallet_id=wallet.wallet_id, out=False, status="pending",
            payment_hash=created.payment_hash, checking_id=created.checking_id,
            bolt11=created.bolt11, amount_msat=request.amount_msat, fee_msat=0,
            fee_reserve_msat=0, memo=request.memo, preimage=created.preimage,
            expires_at=now + request.expiry * 1000, webhook=request.webhook,
            extra=json.loads(extra),  # as stored, and as a read of the row gives it
            tag=request.extra.get("tag"), internal=False, error=None, created_at=now,
            updated_at=now,
        )
        # Only the id comes back: the row is what was just written (columns
        # left out are NULL), and returning every column costs more than
        # the insert on SQLite.
        rows = await query(
            "INSERT INTO fulmen_payment (wallet_id, out, status, payment_hash, checking_id, bolt11, "
            "bolt11_hash, amount_msat, fee_msat, fee_reserve_msat, memo, preimage, expires_at, "
            "webhook, extra, tag, internal, created_at, updated_at) VALUES "
            "({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}) "
            "RETURNING id",
            payment.wallet_id, payment.out, payment.status, payment.payment_hash,
            payment.checking_id, payment.bolt11, sha256_hex(payment.bolt11.lower()),
            payment.amount_msat, payment.fee_msat, payment.fee_reserve_msat, payment.memo,
            payment.preimage, payment.expires_at, payment.webhook, extra, payment.tag,
            payment.internal, now, now,
        )
        payment.id = int(rows[0]["id"])
        return payment

    # --- 2. send ----------------------------------------------------------------

    async def pay(
        self,
        wallet: WalletAuth,
        bolt11: str,
        extra: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Payment:
        bolt11 = bolt11.strip()
        if bolt11.lower().startswith("lightning:"):
            bolt11 = bolt11[len("lightning:"):]
        if idempotency_key:
            earlier = await self._idempotent_result(wallet, idempotency_key, bolt11)
            if earlier:
                return earlier

        invoice, own = await self._invoice_info(bolt11)
        if invoice.amount_msat <= 0:
            raise BadRequest("Amountless invoices are not supported; ask for an invoice with an amount")
        if invoice.expires_at <= now_ms():
            raise BadRequest("Invoice has expired")
        await self.hooks.before_payment_sent(wallet=wallet, invoice=invoice)

        try:
            if own is not None:
                return await self._pay_internal(wallet, own, extra or {}, idempotency_key)
            return await self._pay_external(wallet, invoice, extra or {}, idempotency_key)
        except Exception:
            if idempotency_key:
                # A concurrent request with the same key may have won the race
                # (it claimed the invoice, or its row holds the key): its result
                # is the answer to this request too. A failure stays a failure.
                earlier = await self._idempotent_result(wallet, idempotency_key, bolt11)
                if earlier and earlier.status != "failed":
                    return earlier
            raise

    async def transfer(
        self,
        from_wallet_id: str,
        to_wallet_id: str,
        amount_msat: int,
        *,
        memo: str = "",
        extra: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Payment:
        """Move money between two wallets of this host: an invoice in the
        payee's wallet, paid at once (internally) from the payer's, so both
        histories show it. Returns the outgoing payment. With
        `idempotency_key`, a repeated or concurrent call with the same key
        returns the first transfer instead of paying twice."""
        payer = await self._wallet_auth(from_wallet_id, "admin")
        if idempotency_key and (earlier := await self._by_idempotency_key(payer, idempotency_key)):
            return earlier
        payee = await self._wallet_auth(to_wallet_id, "invoice")
        # Checked again, atomically, by the debit; this early look only spares
        # the payee an unpaid invoice in its history when the payer is short.
        balance = await query("SELECT balance_msat FROM fulmen_wallet WHERE id = {}", from_wallet_id)
        if int(balance[0]["balance_msat"]) < amount_msat:
            raise InsufficientBalance("Insufficient balance.")
        invoice = await self.create_invoice(
            payee, InvoiceRequest(amount_msat=amount_msat, memo=memo, expiry=600,
                                  extra=dict(extra or {})),
        )
        try:
            return await self.pay(payer, invoice.bolt11, extra, idempotency_key)
        except Exception:
            if idempotency_key:  # a concurrent transfer with this key may have won
                earlier = await self._by_idempotency_key(payer, idempotency_key)
                if earlier and earlier.status != "failed":
                    return earlier
            raise

    async def _wallet_auth(self, wallet_id: str, kind: str) -> WalletAuth:
        rows = await query(
            "SELECT account_id FROM fulmen_wallet WHERE id = {} AND NOT deleted", wallet_id
        )
        if not rows:
            raise NotFound("Wallet not found.")
        return WalletAuth(wallet_id=wallet_id, account_id=rows[0]["account_id"], kind=kind)

    async def _by_idempotency_key(self, wallet: WalletAuth, key: str) -> Payment | None:
        rows = await query(
            "SELECT * FROM fulmen_payment WHERE wallet_id = {} AND idempotency_key = {}",
            wallet.wallet_id, key,
        )
        return Payment.from_row(rows[0]) if rows else None

    async def _idempotent_result(self, wallet: WalletAuth, key: str, bolt11: str) -> Payment | None:
        payment = await self._by_idempotency_key(wallet, key)
        if payment is None:
            return None
        if payment.bolt11.lower() != bolt11.lower():
            raise Conflict("Idempotency-Key was already used with a different invoice")
        return payment

    async def _invoice_info(self, bolt11: str) -> tuple[InvoiceInfo, dict | None]:
        """Facts about the invoice, and its incoming row if this host issued it.
        Our own invoices are found by hash of their text, without decoding."""
        rows = await query(
            _OWN_INVOICE_PG if is_postgres() else _OWN_INVOICE, sha256_hex(bolt11.lower())
        )
        if rows:
            row = rows[0]
            info = InvoiceInfo(
                bolt11=bolt11, payment_hash=row["payment_hash"], amount_msat=int(row["amount_msat"]),
                expires_at=int(row["expires_at"]), description=row["memo"], description_hash=None,
                payee=None, internal=True,
            )
            return info, row
        # Bounded (amount, expiry, timestamp, final CLTV) and of this host's network.
        decoded = decode_invoice(bolt11, self.settings.network)
        info = InvoiceInfo(
            bolt11=bolt11, payment_hash=decoded.payment_hash,
            amount_msat=decoded.amount_msat,
            expires_at=decoded.expires_at_ms,
            description=decoded.description, description_hash=decoded.description_hash,
            payee=decoded.payee, internal=False,
        )
        # Only the very invoice we issued (matched by its text above) settles
        # internally: an invoice from elsewhere that reuses one of our payment
        # hashes must not be paid at our invoice's amount.
        return info, None

    def known_preimage(self, row: dict[str, Any]) -> str | None:
        """An incoming invoice's preimage: stored, or (FakeWallet) derived
        from the invoice with the node key, so unpaid ones are not stored."""
        if row.get("preimage"):
            return row["preimage"]
        derive = getattr(self.funding, "preimage_of", None)
        return derive(row["bolt11"], row["payment_hash"]) if derive else None

    async def _pay_internal(
        self, wallet: WalletAuth, invoice_row: dict, extra: dict, idempotency_key: str | None
    ) -> Payment:
        # Settling writes the preimage into the invoice row (and the payer's).
        invoice_row = {**invoice_row, "preimage": self.known_preimage(invoice_row)}
        # PostgreSQL: one statement, unless the payer is also the payee (one
        # wallet row would change twice in it).
        one_statement = is_postgres() and wallet.wallet_id != invoice_row["wallet_id"]
        if one_statement:
            try:
                return await self._pay_internal_in_one_statement(
                    wallet, invoice_row, extra, idempotency_key
                )
            except internal_payment.Mismatch:
                log.warning("internal payment of invoice %s: settling step by step", invoice_row["id"])
            except Exception as exc:
                if is_balance_ceiling_violation(exc):  # the database's CHECK refused it
                    raise BadRequest(BALANCE_CEILING_MESSAGE) from None
                raise
        async with transaction(self.engine):
            incoming, outgoing = await self._settle_internal_step_by_step(
                wallet, invoice_row, extra, idempotency_key
            )
            recorded = (await self.settlement.record(incoming, "on_invoice_paid"),
                        await self.settlement.record(outgoing, "on_payment_sent"))
        self.settlement.after_commit(*recorded)
        return outgoing

    async def _pay_internal_in_one_statement(
        self, wallet: WalletAuth, invoice_row: dict, extra: dict, idempotency_key: str | None
    ) -> Payment:
        """PostgreSQL: the same writes as the step-by-step path and its
        settlement step, in one statement (`fulmen/internal_payment.py`)."""
        now = now_ms()
        predicted_in, predicted_out = internal_payment.predicted_payments(wallet, invoice_row, extra, now)
        predicted = (predicted_in.to_lnbits(), predicted_out.to_lnbits())
        hook_targets = self.settlement.statement_hook_targets(
            ((predicted_in, "on_invoice_paid"), (predicted_out, "on_payment_sent"))
        )
        lock_order = _in_lock_order(
            wallet.wallet_id, invoice_row["wallet_id"], int(invoice_row["amount_msat"])
        )
        settle = functools.partial(
            internal_payment.settle, wallet, invoice_row, extra, idempotency_key, now, lock_order,
            hook_targets, predicted,
        )
        try:
            # The common case, no webhook to record: the statement alone.
            if not invoice_row.get("webhook"):
                with contextlib.suppress(internal_payment.HasWebhooks):
                    rows = await settle(alone=True)
                    recorded = await self._statement_recorded(invoice_row["id"], rows, predicted, now)
                    self.settlement.after_commit(*recorded)
                    return recorded[1].payment
            async with transaction(self.engine):
                rows = await settle(alone=False)
                recorded = await self._statement_recorded(invoice_row["id"], rows, predicted, now)
                for item in recorded:
                    # The webhook deliveries need the event's id, so they follow here.
                    assert item.event is not None
                    item.webhook_rows = await self.settlement.record_webhooks(item.event, item.payment)
        except internal_payment.Refused:
            live = await query(
                "SELECT id FROM fulmen_wallet WHERE id IN ({}, {}) AND NOT deleted",
                wallet.wallet_id, invoice_row["wallet_id"],
            )
            if len(live) < 2:
                raise NotFound("Wallet not found.") from None
            raise InsufficientBalance("Insufficient balance.") from None
        self.settlement.after_commit(*recorded)
        return recorded[1].payment

    async def _statement_recorded(
        self, invoice_id: int, rows: list[dict[str, Any]], predicted: tuple[dict, dict], now: int
    ) -> list[Recorded]:
        """The incoming and outgoing payment the statement wrote, with their
        events (the statement wrote the hook deliveries too)."""
        by_side = {bool(r["out"]): r for r in rows}
        if len(by_side) < 2:  # nothing claimed: not payable, or the row changed since read
            current = await self.get_by_id(invoice_id)
            if current.status == "pending" and current.expires_at > now_ms():
                raise internal_payment.Mismatch()
            raise BadRequest(_unpayable_reason(current))
        recorded = []
        for payment_data, row in zip(predicted, (by_side[False], by_side[True])):
            payment = Payment.from_row(row)
            data = {"wallet_balance": int(row["wallet_balance_msat"]) // 1000, "payment": payment_data}
            event = Event(int(row["event_id"]), payment.wallet_id, int(row["event_seq"]),
                          "payment.sent" if payment.out else "payment.received", payment.id,
                          payment.payment_hash, data, now, wallet_webhooks=int(row["wallet_webhooks"]))
            recorded.append(Recorded(payment, event, 0, int(row["deliveries"])))
        return recorded

    async def _settle_internal_step_by_step(
        self, wallet: WalletAuth, invoice_row: dict, extra: dict, idempotency_key: str | None
    ) -> tuple[Payment, Payment]:
        """Claim the invoice, move the money, record both sides: a statement each."""
        amount = int(invoice_row["amount_msat"])
        now = now_ms()
        # Claim the invoice first: of two concurrent payers, one gets the row.
        claimed = await query(
            "UPDATE fulmen_payment SET status = 'success', preimage = COALESCE(preimage, {}), "
            "updated_at = {} WHERE id = {} AND status = 'pending' AND expires_at > {} RETURNING *",
            invoice_row.get("preimage"), now, invoice_row["id"], now,
        )
        if not claimed:
            raise BadRequest(_unpayable_reason(await self.get_by_id(int(invoice_row["id"]))))
        incoming = Payment.from_row(claimed[0])
        for wallet_id, delta in _in_lock_order(wallet.wallet_id, incoming.wallet_id, amount):
            await self._change_balance(wallet_id, delta)
        outgoing = await self._insert_outgoing(
            wallet, incoming.bolt11, incoming.payment_hash, amount, 0, "success",
            f"internal_{incoming.payment_hash}", incoming.memo, incoming.expires_at,
            extra, idempotency_key, internal=True, preimage=incoming.preimage,
        )
        await query(
            "INSERT INTO fulmen_ledger (wallet_id, amount_msat, kind, payment_id, reason, created_at) "
            "VALUES ({}, {}, 'payment', {}, '', {}), ({}, {}, 'payment', {}, '', {})",
            wallet.wallet_id, -amount, outgoing.id, now, incoming.wallet_id, amount, incoming.id, now,
        )
        return incoming, outgoing

    async def _pay_external(
        self, wallet: WalletAuth, invoice: InvoiceInfo, extra: dict, idempotency_key: str | None
    ) -> Payment:
        amount = invoice.amount_msat
        reserve = self.settings.fee_reserve(amount)
        now = now_ms()
        try:
            async with transaction(self.engine):
                await self._change_balance(wallet.wallet_id, -(amount + reserve))
                outgoing = await self._insert_outgoing(
                    wallet, invoice.bolt11, invoice.payment_hash, amount, reserve, "pending",
                    invoice.payment_hash, invoice.description or "", invoice.expires_at,
                    extra, idempotency_key, internal=False, preimage=None,
                )
                await self._ledger(wallet.wallet_id, -(amount + reserve), "payment", outgoing.id, now)
        except Exception as exc:
            if is_unique_violation(exc):
                # Another live payment of this invoice exists (unique index).
                raise Conflict("This invoice is already paid or being paid") from None
            raise

        # The reservation is committed: from here a crash leaves a pending
        # payment that `reconcile` resolves. An error is not a failure.
        try:
            status = await self.funding.pay_invoice(invoice.bolt11, reserve)
        except Exception as exc:
            log.warning("pay_invoice for %s raised %r; left pending", invoice.payment_hash, exc)
            status = PaymentStatus(PaymentState.PENDING)
        try:
            final = await self.finish_outgoing(outgoing.id, status)
        except Exception as exc:  # left pending with its error; `reconcile` retries
            log.exception("payment %s: cannot apply the node's answer", outgoing.id)
            await self.record_check_error(outgoing.id, exc)
            return await self.get_by_id(outgoing.id)
        if final.status == "failed":
            raise PaymentFailed(f"Payment failed: {final.error or 'the node could not route it'}")
        return final

    # --- 3. an invoice paid from outside ------------------------------------------

    async def settle_incoming(self, checking_id: str, require_unexpired: bool = False) -> Payment | None:
        """Credit an incoming invoice the funding source reports as paid.
        Returns the payment if this call credited it, None if it was already
        settled (or unknown): safe to call any number of times, from any process."""
        now = now_ms()
        async with transaction(self.engine):
            expiry_clause = " AND expires_at > {}" if require_unexpired else ""
            args: list[Any] = [now, checking_id] + ([now] if require_unexpired else [])
            rows = await query(
                "UPDATE fulmen_payment SET status = 'success', updated_at = {} "
                "WHERE checking_id = {} AND NOT out AND status = 'pending'" + expiry_clause
                + " RETURNING *",
                *args,
            )
            if not rows:
                return None
            row = rows[0]
            if row["preimage"] is None and (preimage := self.known_preimage(row)):
                await query("UPDATE fulmen_payment SET preimage = {} WHERE id = {}", preimage, row["id"])
                row = {**row, "preimage": preimage}
            incoming = Payment.from_row(row)
            await self._change_balance(incoming.wallet_id, incoming.amount_msat)
            await self._ledger(incoming.wallet_id, incoming.amount_msat, "payment", incoming.id, now)
            recorded = await self.settlement.record(incoming, "on_invoice_paid")
        self.settlement.after_commit(recorded)
        return incoming

    # --- 4. the node's final word on an outgoing payment ------------------------------

    async def finish_outgoing(self, payment_id: int, status: PaymentStatus) -> Payment:
        """Apply a final status once; a pending status changes nothing."""
        if status.state is PaymentState.PENDING:
            return await self.get_by_id(payment_id)
        now = now_ms()
        async with transaction(self.engine):
            if status.state is PaymentState.SUCCESS:
                # The wallet pays at most the reserve it agreed to, and a node's
                # negative fee never becomes a credit.
                fee = max(0, status.fee_msat or 0)
                rows = await query(
                    "UPDATE fulmen_payment SET status = 'success', fee_msat = CASE WHEN {} > "
                    "fee_reserve_msat THEN fee_reserve_msat ELSE {} END, preimage = {}, updated_at = {} "
                    "WHERE id = {} AND status = 'pending' RETURNING *",
                    fee, fee, status.preimage, now, payment_id,
                )
                if rows and (status.fee_msat or 0) != int(rows[0]["fee_msat"]):
                    log.error("payment %s: node reported fee %s msat, reserve was %s; charged %s",
                              payment_id, status.fee_msat, rows[0]["fee_reserve_msat"], rows[0]["fee_msat"])
            else:
                rows = await query(
                    "UPDATE fulmen_payment SET status = 'failed', error = {}, updated_at = {} "
                    "WHERE id = {} AND status = 'pending' RETURNING *",
                    status.error, now, payment_id,
                )
            if not rows:  # someone else already applied a final status
                return await self.get_by_id(payment_id)
            payment = Payment.from_row(rows[0])
            held = -payment.amount_msat + payment.fee_reserve_msat
            if payment.status == "success":
                refund = payment.fee_reserve_msat - payment.fee_msat
                hook = "on_payment_sent"
            else:
                refund = held
                hook = "on_payment_failed"
            if refund:
                await self._change_balance(payment.wallet_id, refund)
                await self._ledger(payment.wallet_id, refund, "refund", payment.id, now)
            recorded = await self.settlement.record(payment, hook)
        self.settlement.after_commit(recorded)
        return payment

    # --- 5. reconciliation ---------------------------------------------------------

    async def reconcile(self) -> int:
        """Ask the funding source about every pending outgoing payment and
        apply final answers. Returns how many were resolved."""
        rows = await query(
            "SELECT id, payment_hash, check_error FROM fulmen_payment "
            "WHERE status = 'pending' AND out AND NOT internal"
        )
        resolved = 0
        for row in rows:
            try:
                status = await self.funding.get_payment_status(row["payment_hash"])
            except Exception as exc:
                log.warning("status check for %s failed: %r", row["payment_hash"], exc)
                continue
            if status.final:
                # One row that cannot be settled must not stop the others:
                # its error is recorded on it for the admin, and it is tried
                # again next time.
                if await self._finish_isolated(int(row["id"]), status, row.get("check_error")):
                    resolved += 1
        return resolved

    async def _finish_isolated(
        self, payment_id: int, status: PaymentStatus, old_error: Any
    ) -> bool:
        try:
            await self.finish_outgoing(payment_id, status)
        except Exception as exc:
            log.exception("payment %s: cannot apply the node's final answer", payment_id)
            await self.record_check_error(payment_id, exc)
            return False
        if old_error:
            await self.record_check_error(payment_id, None)
        return True

    async def record_check_error(self, payment_id: int, exc: BaseException | str | None) -> None:
        """Note on the payment why settling or checking it failed (None clears it)."""
        if exc is None or isinstance(exc, str):
            text = exc
        else:
            text = f"{type(exc).__name__}: {exc}"
        try:
            await query(
                "UPDATE fulmen_payment SET check_error = {} WHERE id = {}",
                None if text is None else text[:1000], payment_id,
            )
        except Exception:  # recording is best effort; the row is retried anyway
            log.exception("payment %s: cannot record its error", payment_id)

    async def settle_incoming_isolated(self, checking_id: str) -> Payment | None:
        """`settle_incoming` for background work: an invoice that cannot be
        credited gets its error recorded and is left pending, without
        stopping the settlement of any other invoice."""
        try:
            return await self.settle_incoming(checking_id)
        except Exception as exc:
            log.exception("invoice %s: cannot credit it", checking_id)
            rows = await query(
                "SELECT id FROM fulmen_payment WHERE checking_id = {} AND NOT out", checking_id
            )
            for row in rows:
                await self.record_check_error(int(row["id"]), exc)
            return None

    async def watch_pending_invoices(self) -> int:
        """Hand unexpired pending invoices to a funding source that polls for
        settlements (Eclair, upstream LNbits), so invoices made before a
        restart, or by another process, are still noticed."""
        watch = getattr(self.funding, "watch", None)
        if watch is None:
            return 0
        rows = await query(
            "SELECT checking_id, expires_at FROM fulmen_payment WHERE status = 'pending' AND NOT out "
            "AND expires_at > {}",
            now_ms(),
        )
        for row in rows:
            watch(row["checking_id"], int(row["expires_at"]) / 1000)
        return len(rows)

    async def check_pending_invoices(self) -> int:
        """Ask the funding source about pending incoming invoices that are
        unexpired or expired less than `INVOICE_GRACE_MS` ago (at start, after
        a stream reconnect, and every `invoice_check_interval` seconds)."""
        rows = await query(
            "SELECT checking_id FROM fulmen_payment WHERE status = 'pending' AND NOT out "
            "AND expires_at > {} ORDER BY id",
            now_ms() - INVOICE_GRACE_MS,
        )
        settled = 0
        for row in rows:
            try:
                status = await self.funding.get_invoice_status(row["checking_id"])
            except Exception:
                continue  # unknown or unreachable now: asked again next time
            if status.state is PaymentState.SUCCESS and await self.settle_incoming_isolated(
                row["checking_id"]
            ):
                settled += 1
        return settled

    # --- admin ----------------------------------------------------------------

    async def admin_adjust(self, wallet_id: str, amount_msat: int, reason: str) -> int:
        """Credit (positive) or debit (negative) a wallet; returns the new balance.
        Recorded as a settled payment ("Admin credit" / "Admin debit", as
        LNbits does), so the wallet's history adds up to its balance."""
        if amount_msat == 0:
            raise BadRequest("amount must not be zero")
        now = now_ms()
        payment_hash = secrets.token_hex(32)
        async with transaction(self.engine):
            balance = await self._change_balance(wallet_id, amount_msat)
            rows = await query(
                "INSERT INTO fulmen_payment (wallet_id, out, status, payment_hash, checking_id, "
                "bolt11, amount_msat, fee_msat, fee_reserve_msat, memo, expires_at, extra, tag, "
                "internal, created_at, updated_at) VALUES "
                "({}, {}, 'success', {}, {}, '', {}, 0, 0, {}, {}, {}, NULL, {}, {}, {}) "
                "RETURNING id",
                wallet_id, amount_msat < 0, payment_hash, f"admin_{payment_hash}", amount_msat,
                "Admin credit" if amount_msat > 0 else "Admin debit", now,
                json.dumps({"reason": reason}), True, now, now,
            )
            await self._ledger(wallet_id, amount_msat, "admin", int(rows[0]["id"]), now, reason)
        return balance

    # --- reading ---------------------------------------------------------------

    async def get_by_id(self, payment_id: int) -> Payment:
        rows = await query("SELECT * FROM fulmen_payment WHERE id = {}", payment_id)
        if not rows:
            raise NotFound("Payment not found.")
        return Payment.from_row(rows[0])

    async def find_by_hash(self, payment_hash: str, wallet_id: str | None = None) -> list[Payment]:
        if wallet_id:
            rows = await query(
                "SELECT * FROM fulmen_payment WHERE payment_hash = {} AND wallet_id = {} ORDER BY id",
                payment_hash, wallet_id,
            )
        else:
            rows = await query(
                "SELECT * FROM fulmen_payment WHERE payment_hash = {} ORDER BY id", payment_hash
            )
        return [Payment.from_row(r) for r in rows]

    async def list_for_wallet(
        self,
        wallet_id: str,
        *,
        out: bool | None = None,
        status: str | None = None,
        open_or_settled_since: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Payment]:
        """A wallet's payments, newest first. `open_or_settled_since` (Unix ms)
        keeps only invoices still pending or that changed (were paid) since then."""
        clauses: list[str] = ["wallet_id = {}"]
        args: list[Any] = [wallet_id]
        if out is not None:
            clauses.append("out = {}")
            args.append(out)
        if status is not None:
            clauses.append("status = {}")
            args.append(status)
        if open_or_settled_since is not None:
            clauses.append("(status = 'pending' OR updated_at >= {})")
            args.append(open_or_settled_since)
        rows = await query(
            "SELECT * FROM fulmen_payment WHERE " + " AND ".join(clauses)
            + " ORDER BY created_at DESC, id DESC LIMIT {} OFFSET {}",
            *args, limit, offset,
        )
        return [Payment.from_row(r) for r in rows]

    # --- the building blocks -----------------------------------------------------

    async def _change_balance(self, wallet_id: str, delta: int) -> int:
        if delta < 0:
            rows = await query(
                "UPDATE fulmen_wallet SET balance_msat = balance_msat + {} "
                "WHERE id = {} AND NOT deleted AND balance_msat >= {} RETURNING balance_msat",
                delta, wallet_id, -delta,
            )
            if not rows:
                if not await query("SELECT 1 FROM fulmen_wallet WHERE id = {} AND NOT deleted", wallet_id):
                    raise NotFound("Wallet not found.")
                raise InsufficientBalance("Insufficient balance.")
        else:
            # The ceiling is checked here (a 400) before the database's own
            # CHECK would refuse it; `headroom` is negative for an impossible delta.
            rows = await query(
                "UPDATE fulmen_wallet SET balance_msat = balance_msat + {} WHERE id = {} "
                "AND NOT deleted AND balance_msat <= {} RETURNING balance_msat",
                delta, wallet_id, MAX_BALANCE_MSAT - delta,
            )
            if not rows:
                live = await query(
                    "SELECT 1 FROM fulmen_wallet WHERE id = {} AND NOT deleted", wallet_id
                )
                if not live:
                    raise NotFound("Wallet not found.")
                raise BadRequest(BALANCE_CEILING_MESSAGE)
        return int(rows[0]["balance_msat"])

    async def _ledger(
        self, wallet_id: str, amount: int, kind: str, payment_id: int | None, now: int, reason: str = ""
    ) -> None:
        await query(
            "INSERT INTO fulmen_ledger (wallet_id, amount_msat, kind, payment_id, reason, created_at) "
            "VALUES ({}, {}, {}, {}, {}, {})",
            wallet_id, amount, kind, payment_id, reason, now,
        )

    async def _insert_outgoing(
        self, wallet: WalletAuth, bolt11: str, payment_hash: str, amount: int, reserve: int,
        status: str, checking_id: str, memo: str, expires_at: int, extra: dict,
        idempotency_key: str | None, *, internal: bool, preimage: str | None,
    ) -> Payment:
        now = now_ms()
        rows = await query(
            "INSERT INTO fulmen_payment (wallet_id, out, status, payment_hash, checking_id, bolt11, "
            "amount_msat, fee_msat, fee_reserve_msat, memo, preimage, expires_at, extra, tag, "
            "internal, idempotency_key, created_at, updated_at) VALUES "
            "({}, {}, {}, {}, {}, {}, {}, 0, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}) RETURNING *",
            wallet.wallet_id, True, status, payment_hash, checking_id, bolt11, -amount, reserve,
            memo, preimage, expires_at, json.dumps(extra), extra.get("tag"), internal,
            idempotency_key, now, now,
        )
        return Payment.from_row(rows[0])

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait for post-commit work (used at shutdown and in tests)."""
        await self.settlement.drain(timeout)
