"""Shared plumbing for the funding sources that talk to a node over HTTP.

Every backend goes through `NodeClient`: one `httpx.AsyncClient` with a
timeout on every request, optional TLS pinning, and one error vocabulary:

* `NodeUnreachable` - the request did not get an answer (refused, reset,
  timed out, TLS failure). For a payment this means "unknown".
* `NodeAnswerError` - the node answered, but with an HTTP error or with a
  body we cannot parse. `status` and the parsed `body` are kept so that a
  backend can recognise the few answers that are definite.
* `NodeAuthError` - the node refused our credentials.

All three are `FundingError`s. Credentials never appear in their messages.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from .base import FundingError, PaymentState

log = logging.getLogger("fulmen.funding")


class NodeUnreachable(FundingError):
    """No answer from the node: connection refused or reset, timeout, TLS failure."""


class NodeStreamIdle(NodeUnreachable):
    """A long-lived stream sent nothing for its idle timeout."""


class NodeAnswerError(FundingError):
    """The node answered with an error status or a body we could not parse."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class NodeAuthError(NodeAnswerError):
    """The node refused our credentials."""


# ---------------------------------------------------------------- TLS pinning


def pinned_ssl_context(cert_file: str | Path) -> ssl.SSLContext:
    """An SSL context that trusts exactly the certificate in `cert_file`.

    The system trust store is not loaded, so only a server presenting this
    certificate (or one issued by it, when it is a CA) is accepted. Node
    certificates are usually self-signed for `localhost` and a few addresses,
    so the host name is not checked: the pin is the check.
    """
    path = Path(cert_file).expanduser()
    try:
        pem = path.read_text()
    except OSError as exc:
        raise FundingError(f"cannot read TLS certificate {path}: {exc.strerror}") from None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    # A self-signed leaf in the store is a trust anchor on its own.
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    try:
        ctx.load_verify_locations(cadata=pem)
    except (ssl.SSLError, ValueError) as exc:
        raise FundingError(f"{path} is not a PEM certificate: {exc}") from None
    return ctx


# ---------------------------------------------------------------- credentials


def read_secret_file(path: str | Path, what: str) -> bytes:
    p = Path(path).expanduser()
    try:
        return p.read_bytes()
    except OSError as exc:
        raise FundingError(f"cannot read {what} file {p}: {exc.strerror}") from None


def macaroon_hex(value: str = "", file: str | Path | None = None) -> str:
    """An LND macaroon as hex, from a hex or base64 string or a binary file."""
    if file:
        raw = read_secret_file(file, "macaroon")
        text = raw.strip()
        # Some tools store the macaroon as hex text rather than binary.
        try:
            if text and all(c in b"0123456789abcdefABCDEF" for c in text):
                return bytes.fromhex(text.decode()).hex()
        except ValueError:
            pass
        return raw.hex()
    value = value.strip()
    if not value:
        return ""
    try:
        return bytes.fromhex(value).hex()
    except ValueError:
        pass
    try:
        return _b64decode(value).hex()
    except (binascii.Error, ValueError):
        raise FundingError("the macaroon is neither hex nor base64") from None


# ---------------------------------------------------------------- byte fields


def _b64decode(value: str) -> bytes:
    """Standard or URL-safe base64, padded or not."""
    altchars = b"-_" if ("-" in value or "_" in value) else None
    return base64.b64decode(value + "=" * (-len(value) % 4), altchars=altchars, validate=True)


def b64_to_hex(value: Any, field: str = "value") -> str:
    """A protobuf `bytes` field as LND's REST gateway writes it (base64) -> hex."""
    if not isinstance(value, str):
        raise NodeAnswerError(f"node sent no {field}")
    try:
        return _b64decode(value).hex()
    except (binascii.Error, ValueError):
        raise NodeAnswerError(f"node sent an undecodable {field}") from None


def hex_to_b64(value: str | bytes, urlsafe: bool = False) -> str:
    raw = bytes.fromhex(value) if isinstance(value, str) else value
    return (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw).decode()


def hash32_hex(value: Any, field: str) -> str | None:
    """A 32-byte hash or preimage sent as hex *or* base64; None when absent/empty."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise NodeAnswerError(f"node sent a malformed {field}")
    if len(value) == 64:
        try:
            return bytes.fromhex(value).hex()
        except ValueError:
            pass
    decoded = b64_to_hex(value, field)
    if len(decoded) != 64:
        raise NodeAnswerError(f"node sent a malformed {field}")
    if decoded == "00" * 32:
        return None
    return decoded


def as_int(value: Any, default: int | None = None) -> int | None:
    """An integer that a node may send as a number, a string or "123msat"."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        # json.loads accepts NaN and Infinity; a fraction is not an amount either
        return int(value) if value.is_integer() else default
    if isinstance(value, str):
        v = value.strip()
        v = v.removesuffix("msat")
        try:
            return int(v)
        except ValueError:
            return default
    return default


# 4xx answers that say the server (or a proxy in front of it) stopped
# waiting, not that it refused: the payment may still go out.
UNSURE_4XX = frozenset({408, 499})


# ---------------------------------------------------------------- backoff


class Backoff:
    """Exponential backoff with jitter for reconnect loops."""

    def __init__(self, initial: float = 0.5, maximum: float = 60.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.current = initial

    def reset(self) -> None:
        self.current = self.initial

    async def wait(self) -> None:
        delay = self.current * (0.75 + random.random() / 2)
        self.current = min(self.current * 2, self.maximum)
        await asyncio.sleep(min(delay, self.maximum))


# ---------------------------------------------------------------- client


def error_message(body: Any) -> str | None:
    """The human message from the error shapes nodes use.

    {"message": ...}, {"error": {"message": ...}}, {"error": "..."},
    {"detail": "..."} (LNbits), or a bare string.
    """
    if isinstance(body, str):
        return body.strip()[:300] or None
    if not isinstance(body, dict):
        return None
    err = body.get("error")
    if isinstance(err, dict):
        msg = err.get("message")
        if isinstance(msg, str):
            return msg
    if isinstance(err, str):
        return err
    for key in ("message", "detail"):
        msg = body.get(key)
        if isinstance(msg, str):
            return msg
        if isinstance(msg, list) and msg:  # validation errors
            return str(msg[0])[:300]
    return None


def error_code(body: Any) -> int | None:
    if not isinstance(body, dict):
        return None
    err = body.get("error")
    if isinstance(err, dict) and "code" in err:
        return as_int(err.get("code"))
    return as_int(body.get("code"))


class NodeClient:
    """A thin, timeout-bound JSON client for one node."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        timeout: float,
        cert_file: str | Path | None = None,
        headers: dict[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.cert_file = cert_file
        self._headers = headers or {}
        self._auth = auth
        # Built now so that a bad certificate file is reported at start-up.
        self._verify: ssl.SSLContext | bool = pinned_ssl_context(cert_file) if cert_file else True
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"<NodeClient {self.name} {self.base_url}>"

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=self._headers,
                auth=self._auth,
                verify=self._verify,
                timeout=httpx.Timeout(self.timeout),
                follow_redirects=False,
                trust_env=False,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _raise_for(self, response: httpx.Response, body: Any) -> None:
        msg = error_message(body) or response.reason_phrase or "error"
        text = f"{self.name} answered HTTP {response.status_code}: {msg}"
        if response.status_code in (401, 403):
            raise NodeAuthError(text, response.status_code, body)
        raise NodeAnswerError(text, response.status_code, body)

    async def request(
        self,
        method: str,
        path: str,
        *,
        timeout: float | None = None,
        allow_error: bool = False,
        **kwargs: Any,
    ) -> tuple[int, Any]:
        """Send one request and return (status, parsed JSON body).

        Raises NodeUnreachable without an answer, NodeAnswerError on an HTTP
        error (unless `allow_error`) or an unparseable body.
        """
        if timeout is not None:
            kwargs["timeout"] = httpx.Timeout(timeout, connect=min(timeout, self.timeout))
        try:
            response = await self.client.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise NodeUnreachable(f"{self.name} did not answer {path} in time") from None
        except httpx.TransportError as exc:
            raise NodeUnreachable(f"{self.name} unreachable: {_describe(exc)}") from None
        try:
            body = response.json() if response.content else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = response.text[:300] if response.status_code >= 400 else _UNPARSEABLE
        if response.status_code >= 400 and not allow_error:
            self._raise_for(response, body)
        if body is _UNPARSEABLE:
            raise NodeAnswerError(
                f"{self.name} sent an unparseable answer to {path}", response.status_code
            )
        return response.status_code, body

    async def stream_json_lines(
        self,
        method: str,
        path: str,
        *,
        read_timeout: float | None,
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        """Yield each JSON object of a newline-delimited JSON response.

        `read_timeout` bounds the wait for each chunk (None: wait forever, only
        for subscriptions). HTTP errors raise before the first item.
        """
        kwargs["timeout"] = httpx.Timeout(self.timeout, read=read_timeout)
        try:
            async with self.client.stream(method, path, **kwargs) as response:
                if response.status_code >= 400:
                    raw = await response.aread()
                    try:
                        body = json.loads(raw) if raw else None
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        body = raw[:300].decode(errors="replace")
                    self._raise_for(response, body)
                async for line in response.aiter_lines():
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        raise NodeAnswerError(
                            f"{self.name} sent an unparseable stream line on {path}",
                            response.status_code,
                        ) from None
        except httpx.ReadTimeout:
            raise NodeStreamIdle(f"{self.name} sent nothing on {path} in time") from None
        except httpx.TimeoutException:
            raise NodeUnreachable(f"{self.name} did not answer {path} in time") from None
        except httpx.TransportError as exc:
            raise NodeUnreachable(f"{self.name} unreachable: {_describe(exc)}") from None


_UNPARSEABLE = object()


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "TLS certificate does not match the pinned certificate"
    return text[:200]


# ---------------------------------------------------------------- polling


class InvoiceUnknown(FundingError):
    """The node has no invoice with this id."""


class InvoiceWatcher:
    """Turns "is this invoice paid?" polling into a paid-invoices stream.

    For nodes without a usable push API. Invoices are watched from creation
    (or from `watch()`) until paid or expired for longer than `grace`
    seconds, whatever a single "unknown" or "failed" answer says. While the
    node is unreachable the watcher backs off; the first successful poll
    after that reports everything paid in the meantime.
    """

    def __init__(
        self,
        check: Any,  # async (checking_id) -> PaymentState
        interval: float,
        backoff_initial: float,
        backoff_max: float,
        name: str,
        *,
        grace: float = 3600.0,
        concurrency: int = 8,
    ) -> None:
        self._check = check
        self.interval = interval
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.name = name
        self.grace = grace
        self.concurrency = concurrency
        self._watched: dict[str, float | None] = {}
        self._wakeup = asyncio.Event()

    def watch(self, checking_id: str, expires_at: float | None = None) -> None:
        self._watched[checking_id] = expires_at
        self._wakeup.set()

    @property
    def watched(self) -> set[str]:
        return set(self._watched)

    async def _poll(self, checking_id: str) -> tuple[str, Any]:
        try:
            return checking_id, await self._check(checking_id)
        except InvoiceUnknown:
            return checking_id, None
        except NodeAuthError:
            raise
        except NodeAnswerError as exc:
            # An odd answer about one invoice must not stop the others.
            log.warning("%s: cannot check invoice %s: %s", self.name, checking_id, exc)
            return checking_id, PaymentState.PENDING

    async def stream(self) -> AsyncIterator[str]:
        backoff = Backoff(self.backoff_initial, self.backoff_max)
        while True:
            ids = list(self._watched)
            failed = False
            for start in range(0, len(ids), self.concurrency):
                chunk = ids[start : start + self.concurrency]
                try:
                    results = await asyncio.gather(*(self._poll(c) for c in chunk))
                except FundingError as exc:
                    log.warning("%s: cannot poll invoices: %s", self.name, exc)
                    failed = True
                    break
                now = time.time()
                for checking_id, state in results:
                    if state is PaymentState.SUCCESS:
                        self._watched.pop(checking_id, None)
                        yield checking_id
                        continue
                    # "Unknown" or "failed" may be one bad answer (a proxy's
                    # 404, an upstream restart): an invoice with a known expiry
                    # stays watched until it has expired plus the grace period.
                    expires = self._watched.get(checking_id)
                    if expires is None:
                        if state is None or state is PaymentState.FAILED:
                            self._watched.pop(checking_id, None)
                    elif now > expires + self.grace:
                        self._watched.pop(checking_id, None)
            if failed:
                await backoff.wait()
                continue
            backoff.reset()
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), self.interval)
            except TimeoutError:
                pass
