"""An upstream LNbits-compatible server, through one wallet's API.

Written against the LNbits wallet API of v0.12 and v1.x: `X-Api-Key` with the
wallet's admin key; GET /api/v1/wallet, POST /api/v1/payments (out=false to
create, out=true to pay), GET /api/v1/payments/{payment_hash}.

Settlements are found by polling the invoices this process created (or was
told to watch); the websocket is not used. LNbits takes no per-payment fee
limit: the upstream server applies its own fee reserve.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import bolt11 as bolt11_lib
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

log = logging.getLogger("fulmen.funding.lnbits")


class LnbitsSettings(VaultBackedSettings):
    model_config = SettingsConfigDict(env_prefix="FULMEN_LNBITS_", env_file=".env", extra="ignore")

    url: str = ""
    admin_key: SecretStr = SecretStr("")
    admin_key_file: Path | None = None
    cert_file: Path | None = None  # pin the server's certificate (self-hosted TLS)
    timeout: float = 15.0
    pay_timeout: int = 90  # LNbits answers a payment when its own node is done
    poll_interval: float = 2.0
    reconnect_max: float = 60.0


class LnbitsFunding:
    name = "lnbits"

    def __init__(
        self,
        url: str,
        admin_key: str,
        cert_file: str | Path | None = None,
        *,
        timeout: float = 15.0,
        pay_timeout: int = 90,
        poll_interval: float = 2.0,
        reconnect_initial: float = 0.5,
        reconnect_max: float = 60.0,
    ) -> None:
        if not url or not admin_key:
            raise FundingError(
                "LNbits needs FULMEN_LNBITS_URL and FULMEN_LNBITS_ADMIN_KEY (or _ADMIN_KEY_FILE)"
            )
        self.url = url
        self.pay_timeout = pay_timeout
        self.http = NodeClient(
            "LNbits", url, timeout=timeout, cert_file=cert_file, headers={"X-Api-Key": admin_key}
        )
        self.watcher = InvoiceWatcher(
            self._poll_one, poll_interval, reconnect_initial, reconnect_max, "LNbits"
        )

    def __repr__(self) -> str:
        return f"<LnbitsFunding {self.url}>"

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        try:
            wallet = await self._wallet()
        except NodeAuthError:
            raise NodeAuthError("LNbits refused the admin key") from None
        except FundingError as exc:
            log.warning("LNbits not reachable at start: %s", exc)
            return
        log.info("connected to LNbits wallet %s", wallet.get("name", "?"))

    async def close(self) -> None:
        await self.http.aclose()

    async def _wallet(self) -> dict:
        _, body = await self.http.request("GET", "/api/v1/wallet")
        if not isinstance(body, dict):
            raise NodeAnswerError("LNbits sent an unexpected wallet answer")
        return body

    async def status(self) -> NodeStatus:
        wallet = await self._wallet()
        balance = as_int(wallet.get("balance"))
        if balance is None:
            raise NodeAnswerError("LNbits sent no balance")
        return NodeStatus(balance_msat=balance)

    # ------------------------------------------------------------ invoices

    async def create_invoice(
        self, amount_msat: int, memo: str, description_hash: bytes | None, expiry: int
    ) -> CreatedInvoice:
        if amount_msat % 1000:
            raise FundingError("LNbits invoices are in whole satoshis")
        data: dict[str, Any] = {
            "out": False,
            "amount": amount_msat // 1000,
            "memo": memo,
            "expiry": int(expiry),
        }
        if description_hash is not None:
            data["description_hash"] = description_hash.hex()
            if hashlib.sha256(memo.encode()).digest() == description_hash:
                data["unhashed_description"] = memo.encode().hex()
        _, body = await self.http.request("POST", "/api/v1/payments", json=data)
        if not isinstance(body, dict):
            raise NodeAnswerError("LNbits sent an unexpected invoice answer")
        bolt11 = body.get("bolt11") or body.get("payment_request")
        if not bolt11 or not isinstance(bolt11, str):
            raise NodeAnswerError("LNbits sent no invoice")
        payment_hash = hash32_hex(body.get("payment_hash"), "payment_hash")
        if not payment_hash:
            # Some LNbits versions omit it: the invoice itself carries it.
            try:
                payment_hash = bolt11_lib.decode(bolt11).payment_hash
            except Exception:  # noqa: BLE001 - the decoder raises many types
                raise NodeAnswerError("LNbits sent an invoice that cannot be decoded") from None
        self.watcher.watch(payment_hash, time.time() + expiry)
        return CreatedInvoice(checking_id=payment_hash, payment_hash=payment_hash, bolt11=bolt11)

    async def _payment(self, payment_hash: str) -> dict | None:
        status, body = await self.http.request(
            "GET", f"/api/v1/payments/{payment_hash}", allow_error=True
        )
        if status == 404:
            return None
        if status in (401, 403):
            raise NodeAuthError("LNbits refused the admin key", status, body)
        if status >= 400 or not isinstance(body, dict):
            raise NodeAnswerError(
                f"LNbits answered HTTP {status}: {error_message(body) or 'error'}", status, body
            )
        return body

    @staticmethod
    def _state(body: dict) -> PaymentStatus:
        details: dict[str, Any] = body["details"] if isinstance(body.get("details"), dict) else {}
        status = body.get("status") or details.get("status")
        preimage = hash32_hex(body.get("preimage") or details.get("preimage"), "preimage")
        fee = as_int(details.get("fee"))
        fee = abs(fee) if fee is not None else None
        if status == "success" or body.get("paid") is True:
            return PaymentStatus(PaymentState.SUCCESS, fee_msat=fee, preimage=preimage)
        if status == "failed":
            return PaymentStatus(PaymentState.FAILED, error="payment failed")
        return PaymentStatus(PaymentState.PENDING)

    async def get_invoice_status(self, checking_id: str) -> PaymentStatus:
        body = await self._payment(checking_id)
        if body is None:
            raise InvoiceUnknown("LNbits does not know this invoice")
        st = self._state(body)
        return PaymentStatus(st.state, preimage=st.preimage, error=st.error)

    async def _poll_one(self, checking_id: str) -> PaymentState:
        return (await self.get_invoice_status(checking_id)).state

    def watch(self, checking_id: str, expires_at: float | None = None) -> None:
        """Also report this invoice (e.g. created before a restart) when paid."""
        self.watcher.watch(checking_id, expires_at)

    def paid_invoices_stream(self) -> AsyncIterator[str]:
        return self.watcher.stream()

    # ------------------------------------------------------------ payments

    async def pay_invoice(self, bolt11: str, fee_limit_msat: int) -> PaymentStatus:
        try:
            payment_hash = bolt11_lib.decode(bolt11).payment_hash
        except Exception as exc:  # noqa: BLE001
            return PaymentStatus(PaymentState.FAILED, error=f"invalid invoice: {exc}")
        try:
            status, body = await self.http.request(
                "POST",
                "/api/v1/payments",
                json={"out": True, "bolt11": bolt11},
                timeout=self.pay_timeout + self.http.timeout,
                allow_error=True,
            )
        except FundingError as exc:
            log.warning("LNbits payment outcome unknown: %s", exc)
            return PaymentStatus(PaymentState.PENDING, error=str(exc))
        except Exception as exc:
            log.exception("unexpected error while paying with LNbits")
            return PaymentStatus(PaymentState.PENDING, error=type(exc).__name__)
        if status in (401, 403):
            return PaymentStatus(PaymentState.FAILED, error="LNbits refused the admin key")
        msg = error_message(body) if status >= 400 else None
        # Whatever the answer, the payment record is the truth.
        try:
            record = await self._payment(payment_hash)
        except FundingError as exc:
            return PaymentStatus(PaymentState.PENDING, error=msg or str(exc))
        if record is None:
            if 400 <= status < 500 and status not in UNSURE_4XX:
                # refused before a payment record existed: nothing was sent
                return PaymentStatus(PaymentState.FAILED, error=msg or f"HTTP {status}")
            return PaymentStatus(PaymentState.PENDING, error=msg or "no payment record")
        st = self._state(record)
        if st.state is PaymentState.FAILED and msg:
            return PaymentStatus(PaymentState.FAILED, error=msg)
        return st

    async def get_payment_status(self, payment_hash: str) -> PaymentStatus:
        body = await self._payment(payment_hash)
        if body is None:
            return PaymentStatus(PaymentState.PENDING, error="unknown to LNbits")
        return self._state(body)


def from_settings(settings: Any = None) -> LnbitsFunding:
    s = LnbitsSettings()
    key = s.admin_key.get_secret_value().strip()
    if not key and s.admin_key_file:
        key = read_secret_file(s.admin_key_file, "admin key").decode().strip()
    return LnbitsFunding(
        s.url,
        key,
        s.cert_file,
        timeout=s.timeout,
        pay_timeout=s.pay_timeout,
        poll_interval=s.poll_interval,
        reconnect_max=s.reconnect_max,
    )
