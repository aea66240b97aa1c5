"""The host as an LNURL client: read what a code points at, pay an LNURL-pay
link or Lightning Address, claim an LNURL-withdraw link into a wallet.

Every fetch goes through `host.http` (timeouts, size cap, https-only, no
private addresses unless allowed). Responses are parsed with the `lnurl`
package's models, so a malformed service answer is refused before any money
moves. Before paying, the invoice a pay service returns is checked against
what was asked: its amount, its description hash (sha256 of the metadata the
service served) and its expiry.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

import bolt11 as bolt11_lib
import lnurl

from .errors import BadRequest
from .models import InvoiceRequest, Payment, WalletAuth
from .net import FetchFailed

LUD17 = {"lnurlp": "payRequest", "lnurlw": "withdrawRequest", "lnurlc": "channelRequest",
         "keyauth": "login"}
ADDRESS = re.compile(r"^([a-z0-9\-_.+]+)@([a-z0-9\-.]+(?::\d{1,5})?)$")
SCHEME_SLASHES = re.compile(r"^(lnurl[pwc]|keyauth|https?):/+", re.IGNORECASE)
MAX_MEMO = 639


class LnurlServiceError(BadRequest):
    """The LNURL service answered with an error, or with something unusable."""


@dataclass
class Target:
    """What a code decoded to."""

    url: str
    #: the Lightning Address, when the code was one
    address: str | None = None

    @property
    def domain(self) -> str:
        return urlparse(self.url).netloc


class LnurlClient:
    def __init__(self, host: Any) -> None:
        self.host = host

    # --- decoding ---------------------------------------------------------------------

    def _plain_http_ok(self, hostname: str) -> bool:
        """Hosts a LUD-17 or address URL is fetched from over plain http: .onion,
        FULMEN_ALLOW_INSECURE_HTTP_HOSTS and, with private addresses allowed, loopback."""
        http = self.host.http
        return (hostname.endswith(".onion") or hostname in http.insecure_hosts
                or http._loopback_allowed(hostname))

    def decode(self, code: str) -> Target:
        """An LNURL (bech32, LUD-01), a `lightning:` URI, a LUD-17 URL
        (`lnurlp://`, `lnurlw://`...), a plain URL, or a Lightning Address."""
        if not isinstance(code, str) or not code.strip():
            raise BadRequest("lnurl is required")
        code = code.strip()
        if code.lower().startswith("lightning:"):
            code = code[len("lightning:"):].lstrip("/")
        code = SCHEME_SLASHES.sub(lambda m: m.group(1).lower() + "://", code)
        lower = code.lower()
        if lower.startswith("lnurl1"):
            try:
                url = lnurl.url_decode(code)
            except Exception:
                raise BadRequest("Invalid LNURL: not a valid bech32 LNURL") from None
            return Target(self._checked_url(url))
        scheme = lower.split("://", 1)[0] if "://" in lower else ""
        if scheme in LUD17:
            rest = code.split("://", 1)[1]
            hostname = (urlparse("//" + rest).hostname or "").lower()
            plain = "http" if self._plain_http_ok(hostname) else "https"
            return Target(self._checked_url(f"{plain}://{rest}"))
        if scheme in ("http", "https"):
            # LUD-01 fallback: https://service/?lightning=LNURL1...
            inner = parse_qs(urlparse(code).query).get("lightning")
            if inner and inner[0].lower().startswith("lnurl1"):
                return self.decode(inner[0])
            return Target(self._checked_url(code))
        match = ADDRESS.match(lower)
        if match:
            name, domain = match.groups()
            hostname = (urlparse("//" + domain).hostname or "").lower()
            plain = "http" if self._plain_http_ok(hostname) else "https"
            return Target(f"{plain}://{domain}/.well-known/lnurlp/{name}", address=lower)
        raise BadRequest("Not an LNURL, LUD-17 URL or Lightning Address")

    @staticmethod
    def _checked_url(url: str) -> str:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise BadRequest(f"LNURL does not hold an http(s) URL: {url!r}")
        return url

    # --- fetching -----------------------------------------------------------------------

    async def fetch(self, url: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET a JSON object from an LNURL service; an `ERROR` answer raises."""
        response = await self.host.http.request("GET", url, params=params)
        try:
            data = json.loads(response.content)
        except ValueError:
            raise FetchFailed(
                f"{urlparse(url).netloc} did not answer with JSON (HTTP {response.status_code})"
            ) from None
        if not isinstance(data, dict):
            raise LnurlServiceError(f"{urlparse(url).netloc} answered with something other than an object")
        if str(data.get("status", "")).upper() == "ERROR":
            raise LnurlServiceError(f"{urlparse(url).netloc}: {data.get('reason') or 'unknown error'}")
        if response.status_code >= 400:
            raise LnurlServiceError(f"{urlparse(url).netloc} answered HTTP {response.status_code}")
        return data

    @staticmethod
    def parse(data: dict[str, Any], domain: str) -> lnurl.LnurlResponseModel:
        try:
            return lnurl.LnurlResponse.from_dict(dict(data))
        except lnurl.LnurlResponseException as exc:
            raise LnurlServiceError(f"{domain} sent an invalid LNURL response: {exc}") from None

    async def scan(self, code: str) -> tuple[Target, lnurl.LnurlResponseModel]:
        target = self.decode(code)
        query = parse_qs(urlparse(target.url).query)
        if query.get("tag") == ["login"] and query.get("k1"):  # LUD-04: nothing to fetch
            return target, lnurl.LnurlAuthResponse(callback=target.url, k1=query["k1"][0])  # type: ignore[arg-type]
        return target, self.parse(await self.fetch(target.url), target.domain)

    async def describe(self, code: str) -> dict[str, Any]:
        """LNbits's lnurlscan answer: the service's response and a few helpers."""
        target, res = await self.scan(code)
        out: dict[str, Any] = res.dict()
        out["domain"] = target.domain
        if isinstance(res, lnurl.LnurlPayResponse):
            out.setdefault("commentAllowed", 0)
            out.update(kind="pay", fixed=res.minSendable == res.maxSendable,
                       description=res.metadata.text, targetUser=target.address,
                       lnaddress=target.address)
            for mime, value in res.metadata.list():
                if mime.startswith("image/"):
                    out["image"] = f"data:{mime},{value}"
                    break
        elif isinstance(res, lnurl.LnurlWithdrawResponse):
            out.update(kind="withdraw", fixed=res.minWithdrawable == res.maxWithdrawable)
        elif isinstance(res, lnurl.LnurlAuthResponse):
            out.update(kind="auth")
        else:
            raise LnurlServiceError(f"{target.domain}: unsupported LNURL response")
        return out

    # --- paying (LUD-06) -------------------------------------------------------------------

    async def pay(
        self, wallet: WalletAuth, code: str | None, res: dict[str, Any] | None, amount_msat: int,
        comment: str | None = None, internal_memo: str | None = None,
    ) -> Payment:
        if code:
            target, params = await self.scan(code)
            domain = target.domain
        elif isinstance(res, dict):
            try:
                params = lnurl.LnurlPayResponse(**res)
            except Exception as exc:
                raise BadRequest(f"res is not a valid payRequest: {exc}") from None
            domain = urlparse(str(params.callback)).netloc
        else:
            raise BadRequest("lnurl is required")
        if not isinstance(params, lnurl.LnurlPayResponse):
            raise BadRequest(f"{domain}: this LNURL is not a pay request")
        if not params.is_valid_amount(amount_msat):
            raise BadRequest(f"amount {amount_msat} msat is outside {domain}'s range "
                             f"{params.minSendable} to {params.maxSendable} msat")
        query: dict[str, Any] = {"amount": amount_msat}
        if comment:
            allowed = params.commentAllowed or 0
            if len(comment) > allowed:
                raise BadRequest(f"comment is {len(comment)} characters; {domain} accepts at most {allowed}")
            query["comment"] = comment
        answer = self.parse(await self.fetch(str(params.callback), query), domain)
        if not isinstance(answer, lnurl.LnurlPayActionResponse):
            raise LnurlServiceError(f"{domain} did not answer with an invoice")
        pr = str(answer.pr)
        self.check_invoice(pr, amount_msat, params.metadata, domain)
        extra: dict[str, Any] = {"lnurl_domain": domain, "comment": comment}
        if answer.successAction is not None:
            extra["success_action"] = answer.successAction.dict()
        if internal_memo:
            extra["internal_memo"] = internal_memo[:MAX_MEMO]
        return await self.host.payments.pay(wallet, pr, extra=extra)

    @staticmethod
    def check_invoice(pr: str, amount_msat: int, metadata: str, domain: str) -> None:
        try:
            invoice = bolt11_lib.decode(pr)
        except Exception:
            raise LnurlServiceError(f"{domain} returned an invoice that cannot be decoded") from None
        if int(invoice.amount_msat or 0) != amount_msat:
            raise LnurlServiceError(f"{domain} returned an invoice for {invoice.amount_msat or 0} msat, "
                                    f"not the {amount_msat} msat asked for")
        expected = hashlib.sha256(str(metadata).encode()).hexdigest()
        if (invoice.description_hash or "").lower() != expected:
            raise LnurlServiceError(f"{domain} returned an invoice whose description hash does not "
                                    "match the metadata it served")
        if invoice.date + invoice.expiry <= time.time():
            raise LnurlServiceError(f"{domain} returned an expired invoice")

    # --- claiming a withdraw link (LUD-03) ----------------------------------------------

    async def withdraw(self, wallet: WalletAuth, code: str, amount_msat: int,
                       memo: str | None = None) -> Payment:
        target, params = await self.scan(code)
        if not isinstance(params, lnurl.LnurlWithdrawResponse):
            raise BadRequest(f"{target.domain}: this LNURL is not a withdraw request")
        if not params.is_valid_amount(amount_msat):
            raise BadRequest(f"amount {amount_msat} msat is outside {target.domain}'s range "
                             f"{params.minWithdrawable} to {params.maxWithdrawable} msat")
        invoice = await self.host.payments.create_invoice(wallet, InvoiceRequest(
            amount_msat=amount_msat,
            memo=(memo or params.defaultDescription or "")[:MAX_MEMO],
            extra={"lnurl_withdraw": target.domain},
        ))
        await self.fetch(str(params.callback), {"k1": params.k1, "pr": invoice.bolt11})
        return await self.host.payments.get_by_id(invoice.id)
