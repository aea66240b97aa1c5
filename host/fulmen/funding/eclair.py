"""Eclair over its HTTP API.

Written against the Eclair API of v0.10/v0.11: form-encoded POSTs with HTTP
basic auth (empty user, the API password): getinfo, usablebalances,
createinvoice, payinvoice (blocking=true), getsentinfo, getreceivedinfo.

Settlements are found by polling `getreceivedinfo` for the invoices this
process created or was told to watch; Eclair's websocket is not used.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from ..vault import VaultBackedSettings
from .base import CreatedInvoice, FundingError, NodeStatus, PaymentState, PaymentStatus
from .http import (
    UNSURE_4XX,
    InvoiceUnknown,
    InvoiceWatcher,
    NodeAnswerError,
    NodeAuthError,
    NodeClient,
    as_int,
    error_message,
    hash32_hex,
    read_secret_file,
)

log = logging.getLogger("fulmen.funding.eclair")


class EclairSettings(VaultBackedSettings):
    model_config = SettingsConfigDict(env_prefix="FULMEN_ECLAIR_", env_file=".env", extra="ignore")

    url: str = "http://127.0.0.1:8080"
    password: SecretStr = SecretStr("")
    password_file: Path | None = None
    cert_file: Path | None = None  # when Eclair sits behind TLS with its own certificate
    timeout: float = 15.0
    pay_timeout: int = 60  # how long a blocking payinvoice may take
    poll_interval: float = 2.0  # seconds between settlement polls
    reconnect_max: float = 60.0


class EclairFunding:
    name = "eclair"

    def __init__(
        self,
        url: str,
        password: str,
        cert_file: str | Path | None = None,
        *,
        timeout: float = 15.0,
        pay_timeout: int = 60,
        poll_interval: float = 2.0,
        reconnect_initial: float = 0.5,
        reconnect_max: float = 60.0,
    ) -> None:
        if not password:
            raise FundingError("Eclair needs FULMEN_ECLAIR_PASSWORD or FULMEN_ECLAIR_PASSWORD_FILE")
        self.url = url
        self.pay_timeout = pay_timeout
        self.http = NodeClient(
            "Eclair", url, timeout=timeout, cert_file=cert_file, auth=("", password)
        )
        self.watcher = InvoiceWatcher(
            self._poll_one, poll_interval, reconnect_initial, reconnect_max, "Eclair"
        )

    def __repr__(self) -> str:
        return f"<EclairFunding {self.url}>"

    async def _post(self, method: str, data: dict | None = None, **kw: Any) -> Any:
        return (await self.http.request("POST", f"/{method}", data=data or {}, **kw))[1]

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        try:
            info = await self._post("getinfo")
        except NodeAuthError:
            raise NodeAuthError("Eclair refused the API password") from None
        except FundingError as exc:
            log.warning("Eclair not reachable at start: %s", exc)
            return
        log.info(
            "connected to Eclair %s (%s)",
            (info or {}).get("alias", "?"),
            (info or {}).get("version", "?"),
        )

    async def close(self) -> None:
        await self.http.aclose()

    # ------------------------------------------------------------ status

    async def status(self) -> NodeStatus:
        body = await self._post("usablebalances")
        if not isinstance(body, list):
            raise NodeAnswerError("Eclair sent an unexpected usablebalances answer")
        total = sum(as_int(ch.get("canSend"), 0) or 0 for ch in body if isinstance(ch, dict))
        return NodeStatus(balance_msat=total)

    # ------------------------------------------------------------ invoices

    async def create_invoice(
        self, amount_msat: int, memo: str, description_hash: bytes | None, expiry: int
    ) -> CreatedInvoice:
        preimage = secrets.token_bytes(32)
        data: dict[str, Any] = {"expireIn": int(expiry), "paymentPreimage": preimage.hex()}
        if amount_msat:
            data["amountMsat"] = int(amount_msat)
        if description_hash is not None:
            data["descriptionHash"] = description_hash.hex()
        else:
            data["description"] = memo
        body = await self._post("createinvoice", data)
        if not isinstance(body, dict) or not body.get("serialized"):
            raise NodeAnswerError("Eclair sent no invoice")
        payment_hash = str(body.get("paymentHash", "")).lower()
        if payment_hash != hashlib.sha256(preimage).hexdigest():
            raise NodeAnswerError("Eclair's invoice does not commit to our preimage")
        self.watcher.watch(payment_hash, time.time() + expiry)
        return CreatedInvoice(
            checking_id=payment_hash,
            payment_hash=payment_hash,
            bolt11=body["serialized"],
            preimage=preimage.hex(),
        )

    async def get_invoice_status(self, checking_id: str) -> PaymentStatus:
        try:
            body = await self._post("getreceivedinfo", {"paymentHash": checking_id})
        except NodeAnswerError as exc:
            not_found = "not found" in (error_message(exc.body) or "").lower()
            if exc.status == 404 or (exc.status in (400, 500) and not_found):
                raise InvoiceUnknown("Eclair does not know this invoice") from None
            raise
        if not isinstance(body, dict):
            raise NodeAnswerError("Eclair sent an unexpected getreceivedinfo answer")
        status = body.get("status") or {}
        kind = status.get("type") if isinstance(status, dict) else None
        if kind == "received":
            return PaymentStatus(
                PaymentState.SUCCESS, preimage=hash32_hex(body.get("paymentPreimage"), "preimage")
            )
        if kind == "expired":
            return PaymentStatus(PaymentState.FAILED, error="invoice expired")
        return PaymentStatus(PaymentState.PENDING)

    async def _poll_one(self, checking_id: str) -> PaymentState:
        return (await self.get_invoice_status(checking_id)).state

    def watch(self, checking_id: str, expires_at: float | None = None) -> None:
        """Also report this invoice (e.g. created before a restart) when paid."""
        self.watcher.watch(checking_id, expires_at)

    def paid_invoices_stream(self) -> AsyncIterator[str]:
        return self.watcher.stream()

    # ------------------------------------------------------------ payments

    @staticmethod
    def _from_sent(items: list) -> PaymentStatus:
        """Aggregate getsentinfo entries (one per attempt / part)."""
        fee = 0
        preimage = None
        succeeded = pending = failed = False
        last_error = None
        for p in items:
            if not isinstance(p, dict):
                continue
            status = p.get("status") or {}
            kind = status.get("type") if isinstance(status, dict) else None
            if kind == "sent":
                succeeded = True
                fee += as_int(status.get("feesPaid"), 0) or 0
                preimage = preimage or status.get("paymentPreimage")
            elif kind == "pending":
                pending = True
            elif kind == "failed":
                failed = True
                fails = status.get("failures") or []
                if fails and isinstance(fails[-1], dict):
                    last_error = fails[-1].get("failureMessage") or last_error
        if succeeded:
            return PaymentStatus(
                PaymentState.SUCCESS, fee_msat=fee, preimage=hash32_hex(preimage, "preimage")
            )
        if pending or not failed:
            return PaymentStatus(PaymentState.PENDING)
        return PaymentStatus(PaymentState.FAILED, error=last_error or "payment failed")

    async def pay_invoice(self, bolt11: str, fee_limit_msat: int) -> PaymentStatus:
        data = {
            "invoice": bolt11,
            # Eclair's budget is max(flat, pct * amount); a zero pct leaves the flat cap.
            "maxFeeFlatSat": max(0, int(fee_limit_msat)) // 1000,
            "maxFeePct": 0,
            "blocking": "true",
        }
        try:
            status, body = await self.http.request(
                "POST",
                "/payinvoice",
                data=data,
                timeout=self.pay_timeout + self.http.timeout,
                allow_error=True,
            )
        except FundingError as exc:
            log.warning("Eclair payment outcome unknown: %s", exc)
            return PaymentStatus(PaymentState.PENDING, error=str(exc))
        except Exception as exc:
            log.exception("unexpected error while paying with Eclair")
            return PaymentStatus(PaymentState.PENDING, error=type(exc).__name__)
        if status in (401, 403):
            return PaymentStatus(PaymentState.FAILED, error="Eclair refused the API password")
        if status >= 500 or status in UNSURE_4XX or not isinstance(body, (dict, str)):
            return PaymentStatus(
                PaymentState.PENDING, error=error_message(body) or f"HTTP {status}"
            )
        if status >= 400:
            # Eclair validates before it starts: confirm it holds no attempt.
            return await self._after_refusal(bolt11, error_message(body) or f"HTTP {status}")
        if isinstance(body, str):  # a payment id: not blocking after all
            return PaymentStatus(PaymentState.PENDING)
        kind = body.get("type")
        if kind == "payment-sent":
            fee = sum(
                as_int(part.get("feesPaid"), 0) or 0
                for part in body.get("parts") or []
                if isinstance(part, dict)
            )
            return PaymentStatus(
                PaymentState.SUCCESS,
                fee_msat=fee,
                preimage=hash32_hex(body.get("paymentPreimage"), "paymentPreimage"),
            )
        if kind == "payment-failed":
            fails = body.get("failures") or []
            msg = None
            if fails and isinstance(fails[-1], dict):
                msg = fails[-1].get("failureMessage") or fails[-1].get("t")
            return PaymentStatus(PaymentState.FAILED, error=str(msg or "payment failed"))
        return PaymentStatus(PaymentState.PENDING)

    async def _after_refusal(self, bolt11: str, msg: str) -> PaymentStatus:
        import bolt11 as bolt11_lib

        try:
            payment_hash = bolt11_lib.decode(bolt11).payment_hash
        except Exception:  # noqa: BLE001 - the node refused an invoice we cannot read either
            return PaymentStatus(PaymentState.FAILED, error=msg)
        try:
            items = await self._post("getsentinfo", {"paymentHash": payment_hash})
        except FundingError:
            return PaymentStatus(PaymentState.PENDING, error=msg)
        if isinstance(items, list) and not items:
            return PaymentStatus(PaymentState.FAILED, error=msg)
        st = self._from_sent(items if isinstance(items, list) else [])
        return (
            st
            if st.state is not PaymentState.FAILED
            else PaymentStatus(PaymentState.FAILED, error=msg)
        )

    async def get_payment_status(self, payment_hash: str) -> PaymentStatus:
        body = await self._post("getsentinfo", {"paymentHash": payment_hash})
        if not isinstance(body, list):
            raise NodeAnswerError("Eclair sent an unexpected getsentinfo answer")
        if not body:
            return PaymentStatus(PaymentState.PENDING, error="unknown to Eclair")
        return self._from_sent(body)


def from_settings(settings: Any = None) -> EclairFunding:
    s = EclairSettings()
    password = s.password.get_secret_value()
    if not password and s.password_file:
        password = read_secret_file(s.password_file, "password").decode().strip()
    return EclairFunding(
        s.url,
        password,
        s.cert_file,
        timeout=s.timeout,
        pay_timeout=s.pay_timeout,
        poll_interval=s.poll_interval,
        reconnect_max=s.reconnect_max,
    )
