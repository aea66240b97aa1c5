"""LND over its REST gateway.

Written against the LND REST API as of v0.18 (lnrpc + routerrpc):
GET /v1/getinfo, GET /v1/balance/channels, POST /v1/invoices,
GET /v1/invoice/{r_hash_str}, POST /v2/router/send,
GET /v2/router/track/{payment_hash}, GET /v1/invoices/subscribe and
GET /v1/invoices (to find the settle index at start).

The macaroon goes in the `Grpc-Metadata-macaroon` header as hex. With
`FULMEN_LND_CERT_FILE` the connection trusts only that certificate.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from ..vault import VaultBackedSettings
from .base import CreatedInvoice, FundingError, NodeStatus, PaymentState, PaymentStatus
from .http import (
    Backoff,
    InvoiceUnknown,
    NodeAnswerError,
    NodeAuthError,
    NodeClient,
    NodeStreamIdle,
    NodeUnreachable,
    as_int,
    b64_to_hex,
    error_code,
    error_message,
    hash32_hex,
    hex_to_b64,
    macaroon_hex,
)

log = logging.getLogger("fulmen.funding.lnd")


class LndSettings(VaultBackedSettings):
    model_config = SettingsConfigDict(env_prefix="FULMEN_LND_", env_file=".env", extra="ignore")

    url: str = "https://127.0.0.1:8080"
    macaroon: SecretStr = SecretStr("")  # hex (base64 accepted)
    macaroon_file: Path | None = None  # e.g. .../admin.macaroon (binary)
    cert_file: Path | None = None  # tls.cert: the only certificate trusted
    timeout: float = 15.0  # seconds, every request
    pay_timeout: int = 60  # seconds LND may spend on one payment
    stream_idle_timeout: float = 900.0  # reconnect the invoice stream after this much silence
    reconnect_max: float = 60.0  # longest wait between reconnects
    # Add route hints for private channels to every invoice (LND's `private`),
    # so a node whose channels are all private can still be paid.
    private_invoices: bool = True


# gRPC status codes LND's gateway puts in {"code": ...}.
GRPC_NOT_FOUND = 5

# SendPaymentV2 refusals that happen before any HTLC leaves the node.
_DEFINITE_SEND_ERRORS = (
    "invoice expired",
    "invalid bech32",
    "checksum failed",
    "failed to decode",
    "unable to decode",
    "invalid payment request",
    "amount must be specified",
    "amount must not be specified",
    "self-payments not allowed",
    "no payment request",
    "invalid fee limit",
    "payment_request is required",
)

_AUTH_HINTS = ("verification failed", "macaroon", "permission denied", "cannot get macaroon")


def _is_auth_error(body: Any, status: int | None = None) -> bool:
    if status in (401, 403):
        return True
    msg = (error_message(body) or "").lower()
    return any(h in msg for h in _AUTH_HINTS)


class LndRestFunding:
    name = "lnd"

    def __init__(
        self,
        url: str,
        macaroon: str,
        cert_file: str | Path | None = None,
        *,
        timeout: float = 15.0,
        pay_timeout: int = 60,
        stream_idle_timeout: float = 900.0,
        reconnect_initial: float = 0.5,
        reconnect_max: float = 60.0,
        private_invoices: bool = True,
    ) -> None:
        if not macaroon:
            raise FundingError("LND needs FULMEN_LND_MACAROON or FULMEN_LND_MACAROON_FILE")
        self.url = url
        self._macaroon = macaroon
        self.pay_timeout = pay_timeout
        self.stream_idle_timeout = stream_idle_timeout
        self.reconnect_initial = reconnect_initial
        self.reconnect_max = reconnect_max
        self.private_invoices = private_invoices
        self.http = NodeClient(
            "LND",
            url,
            timeout=timeout,
            cert_file=cert_file,
            headers={"Grpc-Metadata-macaroon": macaroon},
        )
        # Highest settle_index seen: the subscription resumes after it.
        self.settle_index: int | None = None

    def __repr__(self) -> str:
        return f"<LndRestFunding {self.url}>"

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        try:
            _, info = await self.http.request("GET", "/v1/getinfo")
        except NodeUnreachable as exc:
            # The host may start before its node; every call retries.
            log.warning("LND not reachable at start: %s", exc)
            return
        except NodeAnswerError as exc:
            if _is_auth_error(exc.body, exc.status):
                raise NodeAuthError(
                    f"LND refused the macaroon: {error_message(exc.body)}", exc.status, exc.body
                ) from None
            raise
        log.info(
            "connected to LND %s (%s)",
            (info or {}).get("alias", "?"),
            (info or {}).get("version", "?"),
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def _get(self, path: str, **kw: Any) -> Any:
        try:
            return (await self.http.request("GET", path, **kw))[1]
        except NodeAnswerError as exc:
            if _is_auth_error(exc.body, exc.status):
                raise NodeAuthError(
                    f"LND refused the macaroon: {error_message(exc.body)}", exc.status, exc.body
                ) from None
            raise

    # ------------------------------------------------------------ status

    async def status(self) -> NodeStatus:
        body = await self._get("/v1/balance/channels")
        if not isinstance(body, dict):
            raise NodeAnswerError("LND sent an unexpected balance answer")
        local = body.get("local_balance")
        msat = as_int(local.get("msat")) if isinstance(local, dict) else None
        if msat is None:
            sat = as_int(body.get("balance"))
            if sat is None:
                raise NodeAnswerError("LND sent no channel balance")
            msat = sat * 1000
        return NodeStatus(balance_msat=msat)

    # ------------------------------------------------------------ invoices

    async def create_invoice(
        self, amount_msat: int, memo: str, description_hash: bytes | None, expiry: int
    ) -> CreatedInvoice:
        preimage = secrets.token_bytes(32)
        data: dict[str, Any] = {
            "value_msat": str(int(amount_msat)),
            "expiry": str(int(expiry)),
            "r_preimage": hex_to_b64(preimage),
        }
        if self.private_invoices:
            data["private"] = True  # route hints for private channels
        if description_hash is not None:
            data["description_hash"] = hex_to_b64(description_hash)
        else:
            data["memo"] = memo
        try:
            _, body = await self.http.request("POST", "/v1/invoices", json=data)
        except NodeAnswerError as exc:
            if _is_auth_error(exc.body, exc.status):
                raise NodeAuthError(
                    f"LND refused the macaroon: {error_message(exc.body)}", exc.status, exc.body
                ) from None
            raise
        if not isinstance(body, dict) or not body.get("payment_request"):
            raise NodeAnswerError("LND sent no payment_request for the new invoice")
        payment_hash = b64_to_hex(body.get("r_hash"), "r_hash")
        if payment_hash != hashlib.sha256(preimage).hexdigest():
            raise NodeAnswerError("LND's invoice does not commit to our preimage")
        return CreatedInvoice(
            checking_id=payment_hash,
            payment_hash=payment_hash,
            bolt11=body["payment_request"],
            preimage=preimage.hex(),
        )

    async def get_invoice_status(self, checking_id: str) -> PaymentStatus:
        try:
            body = await self._get(f"/v1/invoice/{checking_id}")
        except NodeAnswerError as exc:
            if exc.status == 404 or error_code(exc.body) == GRPC_NOT_FOUND:
                raise InvoiceUnknown("LND does not know this invoice") from None
            raise
        if not isinstance(body, dict):
            raise NodeAnswerError("LND sent an unexpected invoice answer")
        state = body.get("state")
        if state == "SETTLED" or (state is None and body.get("settled") is True):
            return PaymentStatus(
                PaymentState.SUCCESS, preimage=hash32_hex(body.get("r_preimage"), "r_preimage")
            )
        if state == "CANCELED":
            return PaymentStatus(PaymentState.FAILED, error="invoice canceled or expired")
        return PaymentStatus(PaymentState.PENDING)

    # ------------------------------------------------------------ payments

    @staticmethod
    def _payment_status(p: dict) -> PaymentStatus | None:
        """A routerrpc Payment -> status; None for a malformed update."""
        status = p.get("status")
        if status == "SUCCEEDED":
            return PaymentStatus(
                PaymentState.SUCCESS,
                fee_msat=as_int(p.get("fee_msat"), 0),
                preimage=hash32_hex(p.get("payment_preimage"), "payment_preimage"),
            )
        if status == "FAILED":
            reason = p.get("failure_reason") or "FAILURE_REASON_ERROR"
            return PaymentStatus(PaymentState.FAILED, error=_failure_text(reason))
        if status in ("IN_FLIGHT", "INITIATED", "UNKNOWN"):
            return PaymentStatus(PaymentState.PENDING)
        return None

    async def pay_invoice(self, bolt11: str, fee_limit_msat: int) -> PaymentStatus:
        data = {
            "payment_request": bolt11,
            "fee_limit_msat": str(max(0, int(fee_limit_msat))),
            "timeout_seconds": int(self.pay_timeout),
            "no_inflight_updates": True,
        }
        deadline = self.pay_timeout + self.http.timeout
        try:
            async with asyncio.timeout(deadline):
                return await self._follow_send(data, deadline)
        except NodeAnswerError as exc:
            if _is_auth_error(exc.body, exc.status):
                return PaymentStatus(PaymentState.FAILED, error="LND refused the macaroon")
            if exc.body is not None and isinstance(exc.body, dict):
                return self._send_error(exc.body)
            log.warning("LND payment outcome unknown: %s", exc)
            return PaymentStatus(PaymentState.PENDING, error=str(exc))
        except (FundingError, TimeoutError) as exc:
            log.warning("LND payment outcome unknown: %s", exc or "timeout")
            return PaymentStatus(PaymentState.PENDING, error=str(exc) or "timeout")
        except Exception as exc:  # never turn an unknown into a failure
            log.exception("unexpected error while paying with LND")
            return PaymentStatus(PaymentState.PENDING, error=type(exc).__name__)

    async def _follow_send(self, data: dict, read_timeout: float) -> PaymentStatus:
        last = PaymentStatus(PaymentState.PENDING)
        updates = self.http.stream_json_lines(
            "POST", "/v2/router/send", json=data, read_timeout=read_timeout
        )
        async with aclosing(updates):  # type: ignore[type-var]
            async for msg in updates:
                if not isinstance(msg, dict):
                    continue
                if "error" in msg:
                    return self._send_error(msg)
                result = msg.get("result", msg)
                st = self._payment_status(result) if isinstance(result, dict) else None
                if st is None:
                    continue
                last = st
                if st.final:
                    return st
        return last

    def _send_error(self, body: dict) -> PaymentStatus:
        msg = error_message(body) or "unknown error"
        low = msg.lower()
        if any(hint in low for hint in _DEFINITE_SEND_ERRORS) or _is_auth_error(body):
            return PaymentStatus(PaymentState.FAILED, error=msg)
        # "already paid", "payment is in transition" and anything unknown:
        # the node may hold an attempt for this hash, so we cannot say failed.
        log.warning("LND refused payment with an unclassified error: %s", msg)
        return PaymentStatus(PaymentState.PENDING, error=msg)

    async def get_payment_status(self, payment_hash: str) -> PaymentStatus:
        try:
            path = "/v2/router/track/" + hex_to_b64(payment_hash, urlsafe=True)
        except ValueError:
            raise FundingError("payment hash is not hex") from None
        try:
            async with asyncio.timeout(self.http.timeout):
                return await self._track_once(path)
        except TimeoutError:
            return PaymentStatus(PaymentState.PENDING)
        except NodeAnswerError as exc:
            if error_code(exc.body) == GRPC_NOT_FOUND:
                return PaymentStatus(PaymentState.PENDING, error="unknown to LND")
            if _is_auth_error(exc.body, exc.status):
                raise NodeAuthError("LND refused the macaroon", exc.status, exc.body) from None
            raise

    async def _track_once(self, path: str) -> PaymentStatus:
        updates = self.http.stream_json_lines("GET", path, read_timeout=self.http.timeout)
        async with aclosing(updates):  # type: ignore[type-var]
            async for msg in updates:
                if not isinstance(msg, dict):
                    continue
                if "error" in msg:
                    if error_code(msg) == GRPC_NOT_FOUND:
                        return PaymentStatus(PaymentState.PENDING, error="unknown to LND")
                    if _is_auth_error(msg):
                        raise NodeAuthError("LND refused the macaroon", None, msg)
                    raise NodeAnswerError(f"LND: {error_message(msg)}", None, msg)
                result = msg.get("result", msg)
                st = self._payment_status(result) if isinstance(result, dict) else None
                if st is not None:
                    # The first update is the current state; an in-flight
                    # payment keeps the stream open, so stop here.
                    return st
        return PaymentStatus(PaymentState.PENDING)

    # ------------------------------------------------------------ stream

    async def _initial_settle_index(self) -> int:
        """A lower bound of the node's settle index, from its latest invoices."""
        body = await self._get(
            "/v1/invoices", params={"reversed": "true", "num_max_invoices": "200"}
        )
        best = 0
        for inv in (body or {}).get("invoices") or []:
            if isinstance(inv, dict):
                best = max(best, as_int(inv.get("settle_index"), 0) or 0)
        return best

    def _settled_hash(self, msg: Any) -> str | None:
        """The payment hash of a settlement event not yet yielded, else None."""
        if not isinstance(msg, dict):
            return None
        if "error" in msg:
            raise NodeAnswerError(f"LND stream: {error_message(msg)}", None, msg)
        inv = msg.get("result", msg)
        if not isinstance(inv, dict):
            return None
        if inv.get("state") != "SETTLED" and inv.get("settled") is not True:
            return None
        idx = as_int(inv.get("settle_index"), 0) or 0
        if self.settle_index and idx and idx <= self.settle_index:
            return None  # already yielded before a reconnect
        try:
            payment_hash = b64_to_hex(inv.get("r_hash"), "r_hash")
        except NodeAnswerError:
            log.warning("LND stream: settled invoice without a usable r_hash")
            return None
        if idx:
            self.settle_index = max(self.settle_index or 0, idx)
        return payment_hash

    def watch(self, checking_id: str, expires_at: float | None = None) -> None:
        """Nothing to do: the stream resumes from the node's settle_index."""

    async def paid_invoices_stream(self) -> AsyncIterator[str]:
        backoff = Backoff(self.reconnect_initial, self.reconnect_max)
        while True:
            try:
                if self.settle_index is None:
                    self.settle_index = await self._initial_settle_index()
                params = {"settle_index": str(self.settle_index)} if self.settle_index else {}
                events = self.http.stream_json_lines(
                    "GET",
                    "/v1/invoices/subscribe",
                    params=params,
                    read_timeout=self.stream_idle_timeout,
                )
                async with aclosing(events):  # type: ignore[type-var]
                    async for msg in events:
                        backoff.reset()
                        payment_hash = self._settled_hash(msg)
                        if payment_hash is not None:
                            yield payment_hash
                log.info("LND invoice stream ended; reconnecting")
            except NodeStreamIdle:
                log.info("LND invoice stream idle; reconnecting")
                continue
            except NodeUnreachable as exc:
                log.warning("LND invoice stream lost: %s", exc)
            except FundingError as exc:
                log.warning("LND invoice stream error: %s", exc)
            await backoff.wait()


def _failure_text(reason: str) -> str:
    return {
        "FAILURE_REASON_TIMEOUT": "payment timed out",
        "FAILURE_REASON_NO_ROUTE": "no route within the fee limit",
        "FAILURE_REASON_ERROR": "payment failed",
        "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS": "recipient rejected the payment",
        "FAILURE_REASON_INSUFFICIENT_BALANCE": "insufficient channel balance",
        "FAILURE_REASON_CANCELED": "payment canceled",
    }.get(reason, reason)


def from_settings(settings: Any = None) -> LndRestFunding:
    s = LndSettings()
    mac = macaroon_hex(s.macaroon.get_secret_value(), s.macaroon_file)
    return LndRestFunding(
        s.url,
        mac,
        s.cert_file,
        timeout=s.timeout,
        pay_timeout=s.pay_timeout,
        stream_idle_timeout=s.stream_idle_timeout,
        reconnect_max=s.reconnect_max,
        private_invoices=s.private_invoices,
    )
