"""Errors a caller can act on. Each becomes a 4xx JSON `{"detail": ...}`."""

from __future__ import annotations


class FulmenError(Exception):
    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequest(FulmenError):
    status_code = 400


class Unauthorized(FulmenError):
    status_code = 401


class Forbidden(FulmenError):
    status_code = 403


class NotFound(FulmenError):
    status_code = 404


class Conflict(FulmenError):
    status_code = 409


class InsufficientBalance(FulmenError):
    status_code = 400


class PaymentFailed(FulmenError):
    """The payment was tried and failed; the funds are back in the wallet."""

    status_code = 400


class InvoiceRejected(FulmenError):
    """Raised by a plugin in `before_invoice_created` to refuse an invoice."""

    status_code = 400


class PaymentRejected(FulmenError):
    """Raised by a plugin in `before_payment_sent` to refuse a payment."""

    status_code = 403


class BadNodeAnswer(FulmenError):
    """The funding source answered with something the host refuses to use
    (an invoice for another hash, amount or network)."""

    status_code = 502
