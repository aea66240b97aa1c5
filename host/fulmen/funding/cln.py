"""Core Lightning, over clnrest or the JSON-RPC unix socket.

Written against Core Lightning v24.x: clnrest (`POST /v1/<method>` with the
`Rune` header and a JSON object of named parameters) and the same commands
over `lightning-rpc`: getinfo, listfunds, invoice, listinvoices,
waitanyinvoice, pay and listpays.

With `FULMEN_CLN_RPC_SOCKET` set, the socket is used and no rune is needed;
otherwise `FULMEN_CLN_URL` plus a rune. `FULMEN_CLN_CERT_FILE` pins the
clnrest TLS certificate.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import bolt11 as bolt11_lib
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
    NodeUnreachable,
    as_int,
    error_code,
    error_message,
    read_secret_file,
)

log = logging.getLogger("fulmen.funding.cln")


class ClnSettings(VaultBackedSettings):
    model_config = SettingsConfigDict(env_prefix="FULMEN_CLN_", env_file=".env", extra="ignore")

    url: str = "https://127.0.0.1:3010"
    rune: SecretStr = SecretStr("")
    rune_file: Path | None = None
    cert_file: Path | None = None  # clnrest's certificate (or its CA): the only one trusted
    rpc_socket: Path | None = None  # lightning-rpc; used instead of clnrest when set
    timeout: float = 15.0
    pay_timeout: int = 60  # pay's retry_for
    wait_timeout: int = 60  # waitanyinvoice long-poll length
    reconnect_max: float = 60.0


class ClnRpcError(NodeAnswerError):
    """Core Lightning answered a command with a JSON-RPC error."""

    @property
    def code(self) -> int | None:
        return error_code(self.body)


# Rune refusals (clnrest / commando / checkrune).
_RUNE_CODES = {1501, 1502}
# pay errors that mean "this attempt cannot have sent anything", checked
# against listpays before we call the payment failed.
_PAY_DEFINITE_CODES = {
    -32602,  # invalid parameters (bad or unparseable invoice)
    203,  # permanent failure at the destination
    205,  # no route
    206,  # route too expensive (fee limit)
    207,  # invoice expired
    210,  # all attempts failed within retry_for
}
WAIT_TIMEOUT_CODE = 904  # waitanyinvoice: "Timed out"


def _msat(value: Any) -> int | None:
    """An msat amount: int (current) or "123msat" (older releases)."""
    if isinstance(value, dict):  # grpc-style {"msat": n}
        value = value.get("msat")
    return as_int(value)


class ClnFunding:
    name = "cln"

    def __init__(
        self,
        url: str = "",
        rune: str = "",
        cert_file: str | Path | None = None,
        *,
        rpc_socket: str | Path | None = None,
        timeout: float = 15.0,
        pay_timeout: int = 60,
        wait_timeout: int = 60,
        reconnect_initial: float = 0.5,
        reconnect_max: float = 60.0,
    ) -> None:
        if not rpc_socket and not (url and rune):
            raise FundingError(
                "Core Lightning needs FULMEN_CLN_URL with FULMEN_CLN_RUNE (or _RUNE_FILE), "
                "or FULMEN_CLN_RPC_SOCKET"
            )
        self.url = url
        self.rpc_socket = Path(rpc_socket) if rpc_socket else None
        self.timeout = timeout
        self.pay_timeout = pay_timeout
        self.wait_timeout = wait_timeout
        self.reconnect_initial = reconnect_initial
        self.reconnect_max = reconnect_max
        self.http = (
            None
            if self.rpc_socket
            else NodeClient(
                "Core Lightning", url, timeout=timeout, cert_file=cert_file, headers={"Rune": rune}
            )
        )
        self._ids = itertools.count(1)
        # pay_index of the last paid invoice we yielded; waitanyinvoice resumes after it.
        self.pay_index: int | None = None

    def __repr__(self) -> str:
        where = self.rpc_socket if self.rpc_socket else self.url
        return f"<ClnFunding {where}>"

    # ------------------------------------------------------------ transport

    async def call(
        self, method: str, params: dict | None = None, *, timeout: float | None = None
    ) -> Any:
        """Run one command; raise ClnRpcError for a command error."""
        timeout = timeout or self.timeout
        if self.rpc_socket:
            return await self._call_socket(method, params or {}, timeout)
        assert self.http is not None
        status, body = await self.http.request(
            "POST", f"/v1/{method}", json=params or {}, timeout=timeout, allow_error=True
        )
        if status >= 400:
            code = error_code(body)
            msg = error_message(body) or f"HTTP {status}"
            text = f"Core Lightning {method}: {msg}"
            if status in (401, 403) or code in _RUNE_CODES:
                raise NodeAuthError(f"Core Lightning refused the rune: {msg}", status, body)
            if code is not None and isinstance(body, dict):
                err = body["error"] if isinstance(body.get("error"), dict) else body
                raise ClnRpcError(text, status, err)
            raise NodeAnswerError(text, status, body)
        return body

    async def _call_socket(self, method: str, params: dict, timeout: float) -> Any:
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        writer = None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(
                    str(self.rpc_socket), limit=2**24
                )
                writer.write(json.dumps(request).encode())
                await writer.drain()
                decoder = json.JSONDecoder()
                buf = ""
                while True:
                    chunk = await reader.read(65536)
                    if not chunk:
                        raise NodeUnreachable("Core Lightning closed the RPC socket")
                    buf += chunk.decode()
                    try:
                        reply, _ = decoder.raw_decode(buf.lstrip())
                        break
                    except json.JSONDecodeError:
                        continue
        except TimeoutError:
            raise NodeUnreachable(f"Core Lightning did not answer {method} in time") from None
        except OSError as exc:
            raise NodeUnreachable(f"Core Lightning RPC socket: {exc.strerror or exc}") from None
        finally:
            if writer is not None:
                writer.close()
        if not isinstance(reply, dict):
            raise NodeAnswerError("Core Lightning sent an unparseable RPC answer")
        if "error" in reply:
            err = reply["error"]
            raise ClnRpcError(
                f"Core Lightning {method}: {error_message({'error': err})}",
                None,
                err if isinstance(err, dict) else {"message": str(err)},
            )
        return reply.get("result")

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        try:
            info = await self.call("getinfo")
        except NodeUnreachable as exc:
            log.warning("Core Lightning not reachable at start: %s", exc)
            return
        log.info(
            "connected to Core Lightning %s (%s)",
            (info or {}).get("alias", "?"),
            (info or {}).get("version", "?"),
        )

    async def close(self) -> None:
        if self.http is not None:
            await self.http.aclose()

    # ------------------------------------------------------------ status

    async def status(self) -> NodeStatus:
        funds = await self.call("listfunds")
        if not isinstance(funds, dict) or not isinstance(funds.get("channels"), list):
            raise NodeAnswerError("Core Lightning sent an unexpected listfunds answer")
        total = 0
        for ch in funds["channels"]:
            if isinstance(ch, dict) and ch.get("state") == "CHANNELD_NORMAL":
                total += _msat(ch.get("our_amount_msat")) or 0
        return NodeStatus(balance_msat=total)

    # ------------------------------------------------------------ invoices

    async def create_invoice(
        self, amount_msat: int, memo: str, description_hash: bytes | None, expiry: int
    ) -> CreatedInvoice:
        preimage = secrets.token_bytes(32)
        params: dict[str, Any] = {
            "amount_msat": int(amount_msat) if amount_msat else "any",
            "label": "fulmen-" + secrets.token_hex(12),
            "description": memo,
            "expiry": int(expiry),
            "preimage": preimage.hex(),
        }
        if description_hash is not None:
            # Core Lightning hashes the description itself; it must be the
            # text the hash commits to.
            if hashlib.sha256(memo.encode()).digest() != description_hash:
                raise FundingError(
                    "Core Lightning can only make description-hash invoices from the full "
                    "description: pass the text whose SHA-256 is the hash as the memo"
                )
            params["deschashonly"] = True
        body = await self.call("invoice", params)
        if not isinstance(body, dict) or not body.get("bolt11") or not body.get("payment_hash"):
            raise NodeAnswerError("Core Lightning sent no bolt11 for the new invoice")
        payment_hash = str(body["payment_hash"]).lower()
        if payment_hash != hashlib.sha256(preimage).hexdigest():
            raise NodeAnswerError("Core Lightning's invoice does not commit to our preimage")
        return CreatedInvoice(
            checking_id=payment_hash,
            payment_hash=payment_hash,
            bolt11=body["bolt11"],
            preimage=preimage.hex(),
        )

    async def get_invoice_status(self, checking_id: str) -> PaymentStatus:
        body = await self.call("listinvoices", {"payment_hash": checking_id})
        invoices = (body or {}).get("invoices") if isinstance(body, dict) else None
        if not isinstance(invoices, list):
            raise NodeAnswerError("Core Lightning sent an unexpected listinvoices answer")
        if not invoices:
            raise InvoiceUnknown("Core Lightning does not know this invoice")
        inv = invoices[0]
        status = inv.get("status")
        if status == "paid":
            return PaymentStatus(PaymentState.SUCCESS, preimage=inv.get("payment_preimage"))
        if status == "expired":
            return PaymentStatus(PaymentState.FAILED, error="invoice expired")
        return PaymentStatus(PaymentState.PENDING)

    # ------------------------------------------------------------ payments

    @staticmethod
    def _from_pays(pays: list) -> PaymentStatus:
        """Aggregate listpays entries (one per attempt group) for a hash."""
        pending = False
        failed = False
        for p in pays:
            if not isinstance(p, dict):
                continue
            st = p.get("status")
            if st == "complete":
                sent = _msat(p.get("amount_sent_msat"))
                amount = _msat(p.get("amount_msat"))
                fee = sent - amount if sent is not None and amount is not None else None
                return PaymentStatus(PaymentState.SUCCESS, fee_msat=fee, preimage=p.get("preimage"))
            if st == "pending":
                pending = True
            elif st == "failed":
                failed = True
        if failed and not pending:
            return PaymentStatus(PaymentState.FAILED, error="payment failed")
        return PaymentStatus(PaymentState.PENDING)

    async def pay_invoice(self, bolt11: str, fee_limit_msat: int) -> PaymentStatus:
        params = {
            "bolt11": bolt11,
            "maxfee": max(0, int(fee_limit_msat)),
            "retry_for": int(self.pay_timeout),
        }
        try:
            body = await self.call("pay", params, timeout=self.pay_timeout + self.timeout)
        except ClnRpcError as exc:
            return await self._after_pay_error(bolt11, exc)
        except NodeAuthError:
            return PaymentStatus(PaymentState.FAILED, error="Core Lightning refused the rune")
        except FundingError as exc:
            log.warning("Core Lightning payment outcome unknown: %s", exc)
            return PaymentStatus(PaymentState.PENDING, error=str(exc))
        except Exception as exc:
            log.exception("unexpected error while paying with Core Lightning")
            return PaymentStatus(PaymentState.PENDING, error=type(exc).__name__)
        if not isinstance(body, dict):
            return PaymentStatus(PaymentState.PENDING, error="unparseable pay answer")
        status = body.get("status")
        if status == "complete":
            sent = _msat(body.get("amount_sent_msat"))
            amount = _msat(body.get("amount_msat"))
            fee = sent - amount if sent is not None and amount is not None else None
            return PaymentStatus(
                PaymentState.SUCCESS, fee_msat=fee, preimage=body.get("payment_preimage")
            )
        if status == "failed":
            return PaymentStatus(PaymentState.FAILED, error="payment failed")
        return PaymentStatus(PaymentState.PENDING)

    async def _after_pay_error(self, bolt11: str, exc: ClnRpcError) -> PaymentStatus:
        msg = error_message({"error": exc.body}) or str(exc)
        code = exc.code
        if code not in _PAY_DEFINITE_CODES:
            log.warning("Core Lightning pay error %s: %s", code, msg)
            return PaymentStatus(PaymentState.PENDING, error=msg)
        if code == -32602:
            return PaymentStatus(PaymentState.FAILED, error=msg)
        # Make sure no attempt is still in flight before calling it failed.
        try:
            payment_hash = bolt11_lib.decode(bolt11).payment_hash
            pays = await self.call("listpays", {"payment_hash": payment_hash})
        except Exception:  # noqa: BLE001 - any doubt keeps it pending
            return PaymentStatus(PaymentState.PENDING, error=msg)
        st = self._from_pays((pays or {}).get("pays") or [])
        if st.state is PaymentState.PENDING and not (pays or {}).get("pays"):
            # pay refused before creating any attempt
            return PaymentStatus(PaymentState.FAILED, error=msg)
        if st.state is PaymentState.FAILED:
            return PaymentStatus(PaymentState.FAILED, error=msg)
        return st

    async def get_payment_status(self, payment_hash: str) -> PaymentStatus:
        body = await self.call("listpays", {"payment_hash": payment_hash})
        pays = (body or {}).get("pays") if isinstance(body, dict) else None
        if not isinstance(pays, list):
            raise NodeAnswerError("Core Lightning sent an unexpected listpays answer")
        if not pays:
            return PaymentStatus(PaymentState.PENDING, error="unknown to Core Lightning")
        return self._from_pays(pays)

    # ------------------------------------------------------------ stream

    async def _current_pay_index(self) -> int:
        body = await self.call("listinvoices", timeout=max(self.timeout, 60))
        best = 0
        for inv in (body or {}).get("invoices") or []:
            if isinstance(inv, dict):
                best = max(best, as_int(inv.get("pay_index"), 0) or 0)
        return best

    def watch(self, checking_id: str, expires_at: float | None = None) -> None:
        """Nothing to do: the stream resumes from the node's pay_index."""

    async def paid_invoices_stream(self) -> AsyncIterator[str]:
        backoff = Backoff(self.reconnect_initial, self.reconnect_max)
        while True:
            try:
                if self.pay_index is None:
                    self.pay_index = await self._current_pay_index()
                inv = await self.call(
                    "waitanyinvoice",
                    {"lastpay_index": self.pay_index, "timeout": self.wait_timeout},
                    timeout=self.wait_timeout + self.timeout,
                )
            except ClnRpcError as exc:
                if exc.code == WAIT_TIMEOUT_CODE:
                    backoff.reset()
                    continue
                log.warning("Core Lightning invoice wait error: %s", exc)
                await backoff.wait()
                continue
            except FundingError as exc:
                log.warning("Core Lightning invoice wait lost: %s", exc)
                await backoff.wait()
                continue
            backoff.reset()
            if not isinstance(inv, dict):
                continue
            idx = as_int(inv.get("pay_index"))
            if idx is not None:
                self.pay_index = max(self.pay_index or 0, idx)
            if inv.get("status") == "paid" and inv.get("payment_hash"):
                yield str(inv["payment_hash"]).lower()


def from_settings(settings: Any = None) -> ClnFunding:
    s = ClnSettings()
    rune = s.rune.get_secret_value().strip()
    if not rune and s.rune_file:
        rune = read_secret_file(s.rune_file, "rune").decode().strip()
        # `lightning-cli createrune` output or a plain rune file
        if rune.startswith("{"):
            try:
                rune = json.loads(rune)["rune"]
            except (ValueError, KeyError, TypeError):
                raise FundingError("FULMEN_CLN_RUNE_FILE holds no rune") from None
        elif rune.startswith("LIGHTNING_RUNE="):
            rune = rune.split("=", 1)[1].strip().strip('"')
    return ClnFunding(
        s.url,
        rune,
        s.cert_file,
        rpc_socket=s.rpc_socket,
        timeout=s.timeout,
        pay_timeout=s.pay_timeout,
        wait_timeout=s.wait_timeout,
        reconnect_max=s.reconnect_max,
    )
