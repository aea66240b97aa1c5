"""HTTP: the LndHub API under `/lndhub/ext/`.

Every error is LndHub's `{"error": true, "code": N, "message": ...}` with a
4xx/5xx status; authentication failures are code 1 (clients log in again).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

from fulmen import (
    Conflict,
    FulmenError,
    InsufficientBalance,
    InvoiceRequest,
    PaymentFailed,
    PaymentRejected,
    PluginHost,
    WalletAuth,
    __version__,
    now_ms,
)
from litestar import Request, Response, Router, get, post
from litestar.di import Provide
from litestar.exceptions import HTTPException

from . import shapes, tokens
from .errors import (
    BAD_ARGUMENTS,
    IN_TRANSIT,
    NODE_FAILURE,
    NOT_A_VALID_INVOICE,
    NOT_ENOUGH_BALANCE,
    PAYMENT_FAILED,
    SERVER_ERROR,
    LndHubError,
    bad_arguments,
    bad_auth,
    not_supported,
)
from .tokens import Session

log = logging.getLogger(__name__)

HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
#: how long `payinvoice` waits for an in-flight payment to settle before it
#: answers "in transit" (the payment keeps going; gettxs shows it once done)
PAY_WAIT_SECONDS = 20.0
#: getuserinvoices: every open invoice, every invoice paid in this window,
#: and the newest `limit` others
RECENTLY_PAID_MS = 24 * 3600 * 1000
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000


# --- plumbing ----------------------------------------------------------------------------


def lndhub_error(_: Request, exc: Exception) -> Response[dict[str, Any]]:
    if isinstance(exc, LndHubError):
        err = exc
    elif isinstance(exc, FulmenError):
        err = LndHubError(BAD_ARGUMENTS, exc.detail, exc.status_code)
    elif isinstance(exc, HTTPException) and exc.status_code < 500:
        err = LndHubError(BAD_ARGUMENTS, str(exc.detail), exc.status_code)
    else:
        log.exception("lndhub: unexpected error", exc_info=exc)
        err = LndHubError(SERVER_ERROR, "Something went wrong. Please try again later", 500)
    return Response(err.body(), status_code=err.status_code)


async def body_of(request: Request) -> dict[str, Any]:
    """The request's JSON object, or its form fields (some clients send those)."""
    content_type = request.headers.get("content-type", "")
    if "application/x-www-form-urlencoded" in content_type or "multipart/" in content_type:
        return dict(await request.form())
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise bad_arguments("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise bad_arguments("the body must be a JSON object")
    return data


def whole(value: Any, name: str, default: int | None = None, maximum: int = 2**62) -> int:
    """A non-negative whole number sent as a number or a string of digits."""
    if value is None or value == "":
        if default is None:
            raise bad_arguments(f"{name} is required")
        return default
    if isinstance(value, bool):
        raise bad_arguments(f"{name} must be a whole number")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.isascii() and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise bad_arguments(f"{name} must be a whole number")
    if not 0 <= number <= maximum:
        raise bad_arguments(f"{name} must be from 0 to {maximum}")
    return number


def wallet_auth(s: Session) -> WalletAuth:
    return WalletAuth(wallet_id=s.wallet_id, account_id=s.account_id, kind=s.login)


# --- log in ------------------------------------------------------------------------------


@post("/auth", status_code=200)
async def auth(host: PluginHost, request: Request, type: str | None = None) -> dict[str, Any]:
    data = await body_of(request)
    if type in (None, "", "auth"):
        return await tokens.login(host, data.get("login"), data.get("password"))
    if type == "refresh_token":
        return await tokens.refresh(host, data.get("refresh_token"))
    raise bad_arguments("type must be auth or refresh_token")


# --- read --------------------------------------------------------------------------------


@get("/getinfo")
async def getinfo(host: PluginHost, session: Session) -> dict[str, Any]:
    pubkey = host.settings.node_pubkey
    return {
        "identity_pubkey": pubkey,
        "alias": "Fulmen",
        "color": "#3399ff",
        "version": f"fulmen {__version__}",
        "num_pending_channels": 0,
        "num_active_channels": 0,
        "num_inactive_channels": 0,
        "num_peers": 0,
        "block_height": 0,
        "block_hash": "",
        "synced_to_chain": True,
        "synced_to_graph": True,
        "testnet": host.settings.network != "bc",
        "chains": [{"chain": "bitcoin", "network": "mainnet" if host.settings.network == "bc"
                    else "testnet"}],
        "uris": [],
        "features": {},
    }


@get("/balance")
async def balance(host: PluginHost, session: Session) -> dict[str, Any]:
    msat = await host.wallets.balance(session.wallet_id)
    return {"BTC": {"AvailableBalance": shapes.sat(msat)}}


@get("/gettxs")
async def gettxs(host: PluginHost, session: Session, limit: str | None = None,
                 offset: str | None = None) -> list[dict[str, Any]]:
    """Finished outgoing payments, newest first (a client reads every entry
    here as complete: pending ones are not listed)."""
    payments = await host.payments.list_for_wallet(
        session.wallet_id, out=True, status="success",
        limit=whole(limit, "limit", DEFAULT_LIMIT, MAX_LIMIT), offset=whole(offset, "offset", 0),
    )
    return [shapes.paid_invoice(p) for p in payments]


@get("/getuserinvoices")
async def getuserinvoices(host: PluginHost, session: Session, limit: str | None = None,
                          offset: str | None = None) -> list[dict[str, Any]]:
    """Every invoice still open or paid in the last 24 hours, however old,
    plus the newest `limit` (default 100) from `offset`; newest first."""
    n, skip = whole(limit, "limit", DEFAULT_LIMIT, MAX_LIMIT), whole(offset, "offset", 0)
    page = await host.payments.list_for_wallet(session.wallet_id, out=False, limit=n, offset=skip)
    watched = await host.payments.list_for_wallet(
        session.wallet_id, out=False, open_or_settled_since=now_ms() - RECENTLY_PAID_MS,
        limit=10_000,
    )
    merged = {p.id: p for p in [*page, *watched]}
    return [shapes.user_invoice(merged[i]) for i in sorted(merged, reverse=True)]


@get("/getpending")
async def getpending(session: Session) -> list[dict[str, Any]]:
    """Unconfirmed on-chain deposits in LndHub: this host has none."""
    return []


@get("/decodeinvoice")
async def decodeinvoice(session: Session, invoice: str | None = None) -> dict[str, Any]:
    if not invoice:
        raise bad_arguments("invoice is required")
    try:
        return shapes.decoded(strip_scheme(invoice))
    except ValueError as exc:
        raise LndHubError(NOT_A_VALID_INVOICE, f"not a valid invoice: {exc}") from None


@get("/checkpayment/{payment_hash:str}")
async def checkpayment(host: PluginHost, session: Session, payment_hash: str) -> dict[str, Any]:
    if not HEX64.match(payment_hash):
        raise bad_arguments("payment_hash must be 64 hex characters")
    found = [p for p in await host.payments.find_by_hash(payment_hash.lower(), session.wallet_id)
             if not p.out]
    if not found:
        raise LndHubError(BAD_ARGUMENTS, "no invoice of this wallet has that payment hash", 404)
    return {"paid": found[0].status == "success"}


@get("/getbtc")
async def getbtc(session: Session) -> dict[str, Any]:
    raise not_supported("getbtc (on-chain deposits)")


# --- write -------------------------------------------------------------------------------


def strip_scheme(invoice: str) -> str:
    invoice = invoice.strip()
    return invoice[len("lightning:"):] if invoice.lower().startswith("lightning:") else invoice


@post("/addinvoice", status_code=200)
async def addinvoice(host: PluginHost, session: Session, request: Request) -> dict[str, Any]:
    data = await body_of(request)
    amount = whole(data.get("amt"), "amt", maximum=21_000_000 * 100_000_000)
    if amount == 0:
        raise bad_arguments("amt must be at least 1 sat")
    memo = data.get("memo") or ""
    if not isinstance(memo, str) or len(memo) > 639:
        raise bad_arguments("memo must be a string of at most 639 characters")
    description_hash = None
    raw_hash = data.get("description_hash")
    if raw_hash:
        if not isinstance(raw_hash, str) or not HEX64.match(raw_hash):
            raise bad_arguments("description_hash must be 64 hex characters (a sha256)")
        description_hash = bytes.fromhex(raw_hash)
    expiry = whole(data.get("expiry"), "expiry", 3600, 31 * 24 * 3600)
    if expiry == 0:
        raise bad_arguments("expiry must be at least 1 second")
    try:
        payment = await host.payments.create_invoice(
            wallet_auth(session),
            InvoiceRequest(amount_msat=amount * 1000, memo=memo, expiry=expiry,
                           description_hash=description_hash, extra={"tag": "lndhub"}),
        )
    except PaymentFailed as exc:  # the node could not make the invoice
        raise LndHubError(NODE_FAILURE, exc.detail, 503) from None
    return {
        "r_hash": shapes.buffer(payment.payment_hash),
        "payment_hash": payment.payment_hash,
        "payment_request": payment.bolt11,
        "pay_req": payment.bolt11,
        "add_index": payment.id,
    }


@post("/payinvoice", status_code=200)
async def payinvoice(host: PluginHost, session: Session, request: Request) -> dict[str, Any]:
    if not session.can_pay:
        raise bad_auth("bad auth: the invoice login cannot pay; connect with login admin")
    data = await body_of(request)
    invoice = data.get("invoice")
    if not isinstance(invoice, str) or not invoice.strip():
        raise bad_arguments("invoice is required")
    invoice = strip_scheme(invoice)
    try:
        decoded = shapes.decoded(invoice)
    except ValueError as exc:
        raise LndHubError(NOT_A_VALID_INVOICE, f"not a valid invoice: {exc}") from None
    if decoded["num_msat"] == 0:
        raise LndHubError(NOT_A_VALID_INVOICE,
                          "invoices without an amount are not supported; ask for one with an amount")
    try:
        payment = await host.payments.pay(wallet_auth(session), invoice, extra={"tag": "lndhub"})
    except InsufficientBalance as exc:
        raise LndHubError(NOT_ENOUGH_BALANCE, f"not enough balance: {exc.detail}") from None
    except (PaymentFailed, PaymentRejected, Conflict) as exc:
        raise LndHubError(PAYMENT_FAILED, f"Payment failed: {exc.detail}", exc.status_code) from None
    except FulmenError as exc:
        raise LndHubError(NOT_A_VALID_INVOICE, exc.detail, exc.status_code) from None
    deadline = asyncio.get_running_loop().time() + PAY_WAIT_SECONDS
    while payment.status == "pending" and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.5)
        payment = await host.payments.get_by_id(payment.id)
    if payment.status == "failed":
        raise LndHubError(PAYMENT_FAILED,
                          f"Payment failed: {payment.error or 'the node could not route it'}")
    if payment.status != "success":
        raise LndHubError(IN_TRANSIT, "The payment is still in flight: it is not known to be "
                          "paid yet; gettxs lists it once it is", 409)
    return shapes.payment_result(payment, decoded)


def router(host: PluginHost) -> Router:
    async def provide_host() -> PluginHost:
        return host

    async def provide_session(request: Request) -> Session:
        return await tokens.session(host, request.headers.get("authorization"))

    return Router(
        path="/ext",
        route_handlers=[auth, getinfo, balance, gettxs, getuserinvoices, getpending, decodeinvoice,
                        checkpayment, getbtc, addinvoice, payinvoice],
        dependencies={"host": Provide(provide_host), "session": Provide(provide_session)},
        exception_handlers={Exception: lndhub_error},
        # LndHub clients read errors in LndHub's shape: this plugin checks its
        # own bodies (body_of) instead of the host's input guard.
        opt={"raw_body": True},
    )
