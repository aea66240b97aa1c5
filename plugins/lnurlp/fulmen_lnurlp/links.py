"""Pay links: storage, the LNURL-pay protocol (LUD-06/09/12/16/17) and the
paid-webhook.

The metadata string is built from the link and the host's base URL the same
way every time, so the callback hashes exactly the string the pay request
served (`description_hash = sha256(metadata)`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any
from urllib.parse import urlparse

import lnurl
from fulmen import (
    Conflict,
    Forbidden,
    FulmenError,
    InvoiceRequest,
    NotFound,
    Payment,
    PluginHost,
    Quote,
    RateUnavailable,
    WalletAuth,
    checked_outbound_url,
    import_objects,
    now_ms,
    query,
)

from .schemas import check_link, link_json

log = logging.getLogger(__name__)

MAX_MEMO = 639
#: A fiat-priced link's callback accepts amounts this far outside the bounds
#: converted at callback time: the rate may move between scan and callback.
FIAT_TOLERANCE = Decimal("0.01")
WEBHOOK_TIMEOUT = 6.0
COLUMNS = (
    "description", "min", "max", "comment_chars", "username", "domain", "success_text",
    "success_url", "webhook_url", "webhook_headers", "webhook_body", "disposable",
    "currency", "fiat_base_multiplier", "zaps",
)


class LnurlFailure(Exception):
    """An LNURL protocol error: answered as `{"status": "ERROR", "reason"}`."""

    def __init__(self, reason: str, status_code: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


def is_unique_violation(exc: BaseException) -> bool:
    name = type(exc).__name__
    return name == "UniqueViolationError" or (name == "IntegrityError" and "UNIQUE" in str(exc))


# --- the link's URLs ------------------------------------------------------------------


def pay_url(base_url: str, link_id: str) -> str:
    return f"{base_url}/lnurlp/{link_id}"


def callback_url(base_url: str, link_id: str) -> str:
    return f"{base_url}/lnurlp/api/v1/lnurl/cb/{link_id}"


def lnurl_forms(base_url: str, link_id: str) -> tuple[str, str, str]:
    """(bech32 LNURL, plain URL, LUD-17 `lnurlp://` URL)."""
    url = pay_url(base_url, link_id)
    return lnurl.url_encode(url), url, "lnurlp://" + url.split("://", 1)[1]


def to_json(row: dict[str, Any], base_url: str) -> dict[str, Any]:
    return link_json(row, *lnurl_forms(base_url, row["id"]))


def identifier(row: dict[str, Any], base_url: str) -> str | None:
    """The Lightning Address of a link with a username."""
    if not row["username"]:
        return None
    return f"{row['username']}@{row['domain'] or urlparse(base_url).netloc}"


def metadata(row: dict[str, Any], base_url: str) -> str:
    entries = [["text/plain", row["description"]]]
    if address := identifier(row, base_url):
        entries.append(["text/identifier", address])
    return json.dumps(entries)



# --- storage ------------------------------------------------------------------------------


async def get_link(link_id: str) -> dict[str, Any]:
    rows = await query("SELECT * FROM lnurlp_pay_link WHERE id = {}", link_id)
    if not rows:
        raise NotFound("Pay link does not exist.")
    return rows[0]


async def owned_link(link_id: str, auth: WalletAuth) -> dict[str, Any]:
    row = await get_link(link_id)
    if row["wallet"] != auth.wallet_id:
        raise Forbidden("Not your pay link.")
    return row


async def list_links(auth: WalletAuth) -> list[dict[str, Any]]:
    return await query(
        "SELECT * FROM lnurlp_pay_link WHERE wallet = {} ORDER BY created_at, id", auth.wallet_id
    )


def max_sats(host: PluginHost) -> int:
    return host.settings.max_invoice_msat // 1000


async def check_wallet(auth: WalletAuth, data: Any) -> None:
    if isinstance(data, dict) and data.get("wallet") not in (None, "", auth.wallet_id):
        raise Forbidden("wallet: a link can only be made for the wallet of the key sent")


async def username_taken(username: str | None, link_id: str | None) -> None:
    if username is None:
        return
    rows = await query("SELECT id FROM lnurlp_pay_link WHERE username = {}", username)
    if rows and rows[0]["id"] != link_id:
        raise Conflict(f"Username {username!r} is already taken.")


async def create_link(host: PluginHost, auth: WalletAuth, data: Any, base_url: str) -> dict[str, Any]:
    await check_wallet(auth, data)
    values = check_link(data, None, max_sats(host), urlparse(base_url).hostname,
                        host.hooks.implemented("lnurlp_callback"))
    await checked_outbound_url(host.http, values["webhook_url"], "webhook_url")
    await username_taken(values["username"], None)
    now = now_ms()
    link_id = secrets.token_urlsafe(16)
    try:
        rows = await query(
            "INSERT INTO lnurlp_pay_link (id, wallet, " + ", ".join(COLUMNS)
            + ", served_meta, served_pr, created_at, updated_at) VALUES ({}, {}, "
            + ", ".join("{}" for _ in COLUMNS) + ", 0, 0, {}, {}) RETURNING *",
            link_id, auth.wallet_id, *(values[c] for c in COLUMNS), now, now,
        )
    except Exception as exc:
        if is_unique_violation(exc):  # a concurrent create took the name
            raise Conflict(f"Username {values['username']!r} is already taken.") from None
        raise
    return rows[0]


async def update_link(
    host: PluginHost, auth: WalletAuth, link_id: str, data: Any, base_url: str
) -> dict[str, Any]:
    await check_wallet(auth, data)
    current = await owned_link(link_id, auth)
    values = check_link(data, current, max_sats(host), urlparse(base_url).hostname,
                        host.hooks.implemented("lnurlp_callback"))
    if isinstance(data, dict) and "webhook_url" in data:
        await checked_outbound_url(host.http, values["webhook_url"], "webhook_url")
    await username_taken(values["username"], link_id)
    try:
        rows = await query(
            "UPDATE lnurlp_pay_link SET " + ", ".join(f"{c} = {{}}" for c in COLUMNS)
            + ", updated_at = {} WHERE id = {} AND wallet = {} RETURNING *",
            *(values[c] for c in COLUMNS), now_ms(), link_id, auth.wallet_id,
        )
    except Exception as exc:
        if is_unique_violation(exc):
            raise Conflict(f"Username {values['username']!r} is already taken.") from None
        raise
    if not rows:
        raise NotFound("Pay link does not exist.")
    return rows[0]


async def delete_link(auth: WalletAuth, link_id: str) -> None:
    await owned_link(link_id, auth)
    await query("DELETE FROM lnurlp_pay_link WHERE id = {} AND wallet = {}", link_id, auth.wallet_id)


# --- LNURL-pay ----------------------------------------------------------------------------


async def link_quote(host: PluginHost, row: dict[str, Any]) -> Quote | None:
    """The current rate of a fiat-priced link (None for sats); an LNURL error
    (503) when there is none: never a guessed price."""
    if not row.get("currency"):
        return None
    try:
        return await host.rates.quote(row["currency"])
    except RateUnavailable as exc:
        raise LnurlFailure(exc.detail, 503) from None


def fiat_bound(row: dict[str, Any], name: str) -> Decimal:
    return Decimal(int(row[name])) / int(row["fiat_base_multiplier"] or 100)


def sendable(host: PluginHost, row: dict[str, Any], quote: Quote | None) -> tuple[int, int]:
    """(minSendable, maxSendable) in msat. A fiat link's bounds are converted
    now and rounded inwards to whole sats (min up, max down), so every wallet
    can pay them; at least 1 sat, at most the host's invoice limit."""
    if quote is None:
        return int(row["min"]) * 1000, int(row["max"]) * 1000
    low = quote.to_msat(fiat_bound(row, "min"), ROUND_CEILING)
    high = quote.to_msat(fiat_bound(row, "max"), ROUND_FLOOR)
    low = max(1000, -(-low // 1000) * 1000)
    high = min(host.settings.max_invoice_msat // 1000 * 1000, high // 1000 * 1000)
    if high < low:
        if low > host.settings.max_invoice_msat:
            raise LnurlFailure("This link's minimum is above this host's invoice limit at "
                               "today's rate.")
        high = low
    return low, high


async def pay_request(host: PluginHost, row: dict[str, Any], base_url: str) -> dict[str, Any]:
    """LUD-06 payRequest (first step), with the fields other plugins add
    (`lnurlp_pay_request`). A fiat link's bounds use today's rate."""
    low, high = sendable(host, row, await link_quote(host, row))
    await query("UPDATE lnurlp_pay_link SET served_meta = served_meta + 1 WHERE id = {}", row["id"])
    answer: dict[str, Any] = {
        "tag": "payRequest",
        "callback": callback_url(base_url, row["id"]),
        "minSendable": low,
        "maxSendable": high,
        "metadata": metadata(row, base_url),
        "commentAllowed": int(row["comment_chars"]),
    }
    if not host.hooks.implemented("lnurlp_pay_request"):
        return answer
    own = set(answer)
    for plugin_id, fields in await host.hooks.call_plugins(
        "lnurlp_pay_request", link=to_json(row, base_url), response=dict(answer)
    ):
        if not isinstance(fields, dict):
            log.warning("plugin %s: lnurlp_pay_request returned %r, not a dict", plugin_id, fields)
            continue
        for key, value in fields.items():
            if key not in own:
                answer[key] = value
    return answer


async def pay_request_for(host: PluginHost, link_id: str, base_url: str) -> dict[str, Any]:
    rows = await query("SELECT * FROM lnurlp_pay_link WHERE id = {}", link_id)
    if not rows:
        raise LnurlFailure("Pay link does not exist.", 404)
    return await pay_request(host, rows[0], base_url)


def address_url(row: dict[str, Any], base_url: str) -> str | None:
    """LUD-16: the URL a wallet fetches for the link's Lightning Address."""
    if not row["username"]:
        return None
    domain = row["domain"]
    root = f"https://{domain}" if domain else base_url
    return f"{root}/.well-known/lnurlp/{row['username']}"


async def address_request(host: PluginHost, username: str, base_url: str) -> dict[str, Any] | None:
    # LUD-16 tags: `name+tag@domain` is `name@domain` (the tag is dropped).
    username = username.split("+", 1)[0]
    rows = await query("SELECT * FROM lnurlp_pay_link WHERE username = {}", username)
    if not rows:
        return None
    try:
        return await pay_request(host, rows[0], base_url)
    except LnurlFailure as failure:
        return {"status": "ERROR", "reason": failure.reason}


def parse_amount(value: str | None) -> int:
    if value is None or value == "":
        raise LnurlFailure("amount is required (msat).")
    try:
        amount = int(value)
    except ValueError:
        raise LnurlFailure("amount must be a whole number of msat.") from None
    return amount


async def extension_description(
    host: PluginHost, row: dict[str, Any], base_url: str, params: dict[str, str], msat: int,
    extra: dict[str, Any],
) -> str | None:
    """Ask other plugins about the callback's extra parameters
    (`lnurlp_callback`): a refusal is the payer's error; an answer may choose
    the string whose sha256 is the invoice's description hash, and records
    its `extra` under the plugin's id."""
    if not host.hooks.implemented("lnurlp_callback"):
        return None
    lnurls = [lnurl_forms(base_url, row["id"])[0].lower()]
    if address := address_url(row, base_url):
        lnurls.append(lnurl.url_encode(address).lower())
    try:
        results = await host.hooks.call_plugins(
            "lnurlp_callback", may_refuse=True, link=to_json(row, base_url), params=dict(params),
            amount_msat=msat, lnurls=lnurls,
        )
    except FulmenError as exc:
        raise LnurlFailure(exc.detail) from None
    description = None
    for plugin_id, answer in results:
        if not isinstance(answer, dict):
            log.warning("plugin %s: lnurlp_callback returned %r, not a dict", plugin_id, answer)
            continue
        if isinstance(answer.get("extra"), dict) and plugin_id not in extra:
            extra[plugin_id] = answer["extra"]
        if isinstance(answer.get("description"), str):
            if description is not None:
                raise LnurlFailure("This payment's parameters were claimed by two plugins.")
            description = answer["description"]
    return description


def success_action(row: dict[str, Any], base_url: str) -> dict[str, Any] | None:
    """LUD-09. A `url` action only on the callback's domain (wallets refuse to
    pay otherwise); a URL stored before the host's address changed is left out."""
    url = row["success_url"]
    if url and urlparse(url).hostname == (urlparse(base_url).hostname or "").lower():
        return {"tag": "url", "description": row["success_text"] or "", "url": url}
    if row["success_text"]:
        return {"tag": "message", "message": row["success_text"]}
    return None


async def callback(
    host: PluginHost, link_id: str, base_url: str, amount: str | None, comment: str | None,
    webhook_data: str | None, params: dict[str, str] | None = None,
) -> dict[str, Any]:
    """LUD-06 second step: an invoice for `amount` msat, with the metadata's hash."""
    rows = await query("SELECT * FROM lnurlp_pay_link WHERE id = {}", link_id)
    if not rows:
        raise LnurlFailure("Pay link does not exist.", 404)
    row = rows[0]
    msat = parse_amount(amount)
    quote = await link_quote(host, row)
    low, high = sendable(host, row, quote)
    if quote is not None:  # the price is fixed now; the rate may have moved since the scan
        low = int(low * (1 - FIAT_TOLERANCE))
        widened = (high * (1 + FIAT_TOLERANCE)).to_integral_value(ROUND_CEILING)
        high = min(host.settings.max_invoice_msat, int(widened))
    if not low <= msat <= high:
        raise LnurlFailure(f"Amount {msat} msat is outside this link's range {low} to {high} msat.")
    comment = comment or None
    if comment is not None and len(comment) > int(row["comment_chars"]):
        allowed = int(row["comment_chars"])
        raise LnurlFailure(
            f"Comment is {len(comment)} characters; this link accepts at most {allowed}."
            if allowed else "This link does not accept comments."
        )
    if webhook_data is not None and len(webhook_data) > 2000:
        raise LnurlFailure("webhook_data is longer than 2000 characters.")
    served = metadata(row, base_url)
    extra: dict[str, Any] = {"tag": "lnurlp", "link": row["id"], "comment": comment}
    if webhook_data is not None:
        extra["webhook_data"] = webhook_data
    description = await extension_description(host, row, base_url, params or {}, msat, extra)
    if address := identifier(row, base_url):
        extra["lnaddress"] = address
    if quote is not None:  # as LNbits's fiat invoices record it
        extra.update(fiat_amount=float(quote.to_fiat(msat)), fiat_currency=quote.currency,
                     fiat_rate=quote.sats_per_unit)
    try:
        wallet = await host.wallets.get(row["wallet"])
        payment = await host.payments.create_invoice(
            WalletAuth(wallet.id, wallet.account_id, "invoice"),
            InvoiceRequest(
                amount_msat=msat,
                memo=row["description"][:MAX_MEMO],
                description_hash=hashlib.sha256((description or served).encode()).digest(),
                extra=extra,
            ),
        )
    except FulmenError as exc:
        raise LnurlFailure(exc.detail, 404 if isinstance(exc, NotFound) else 400) from None
    await query("UPDATE lnurlp_pay_link SET served_pr = served_pr + 1 WHERE id = {}", row["id"])
    answer: dict[str, Any] = {"pr": payment.bolt11, "routes": []}
    if action := success_action(row, base_url):
        answer["successAction"] = action
    answer["disposable"] = bool(row["disposable"])
    return answer


# --- after payment ---------------------------------------------------------------------------


async def send_webhook(host: PluginHost, payment: Payment) -> None:
    """POST the link's webhook once, best-effort: the result is logged and a
    failure is not retried (the host's webhook service does signed retries)."""
    if payment.tag != "lnurlp" or not isinstance(payment.extra.get("link"), str):
        return
    rows = await query("SELECT * FROM lnurlp_pay_link WHERE id = {}", payment.extra["link"])
    # The invoice's `extra` is the creator's to write: only trust it for the link's own wallet.
    if not rows or rows[0]["wallet"] != payment.wallet_id or not rows[0]["webhook_url"]:
        return
    row = rows[0]
    headers = json.loads(row["webhook_headers"]) if row["webhook_headers"] else {}
    body = {
        "payment_hash": payment.payment_hash,
        "payment_request": payment.bolt11,
        "amount": payment.amount_msat,
        "comment": payment.extra.get("comment"),
        "webhook_data": payment.extra.get("webhook_data"),
        "lnurlp": row["id"],
        "body": json.loads(row["webhook_body"]) if row["webhook_body"] else "",
    }
    try:
        response = await host.http.request("POST", row["webhook_url"], json=body, headers=headers,
                                           timeout=WEBHOOK_TIMEOUT)
    except Exception as exc:
        log.warning("lnurlp webhook for link %s, payment %s failed: %s",
                    row["id"], payment.payment_hash, exc)
        return
    level = logging.INFO if response.status_code < 400 else logging.WARNING
    log.log(level, "lnurlp webhook for link %s, payment %s: HTTP %s",
            row["id"], payment.payment_hash, response.status_code)


# --- wallet export / import ------------------------------------------------------------


async def export_links(host: PluginHost, auth: WalletAuth) -> list[dict[str, Any]]:
    """The wallet's pay links, their settings only (no ids or counters)."""
    base = host.base_url()
    return [{c: v for c, v in to_json(r, base).items() if c in COLUMNS}
            for r in await list_links(auth)]


async def import_links(host: PluginHost, auth: WalletAuth, data: Any) -> dict[str, Any]:
    """Create exported pay links; a taken username is a conflict, never renamed."""
    base = host.base_url()

    async def create(item: Any) -> dict[str, Any]:
        row = await create_link(host, auth, {**item, "wallet": None} if isinstance(item, dict)
                                else item, base)
        return {"id": row["id"], "description": row["description"], "username": row["username"]}

    def describe(item: dict[str, Any]) -> dict[str, Any]:
        return {"description": item.get("description"), "username": item.get("username")}

    return await import_objects(data, create, describe)
