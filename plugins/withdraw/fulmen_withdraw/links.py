"""Withdraw links: storage and the LNURL-withdraw protocol (LUD-03).

How a claim pays at most once:
1. `withdraw_request` issues a fresh random k1 for every scan.
2. `claim` decodes the invoice and checks its amount first (nothing is
   written for a bad invoice). Then, in one transaction, it marks the k1
   spent (`... WHERE spent_at IS NULL`) and takes one of the link's uses
   (`used = used + 1 WHERE used < uses AND last_used_at + wait <= now`,
   the wait only when the link has one).
   Either both happen or neither; the database decides between concurrent
   claims, in one process or several.
3. Only then is the invoice paid, through the host's normal payment path
   (balance check, ledger, fee reserve, plugin limits). If that payment
   fails, the use is given back; the k1 stays spent.
So the link pays at most `uses` invoices of at most `max_withdrawable` each.

The link's secret (`unique_hash`, the part of the LNURL that lets anyone
withdraw) is not stored: it is HMAC-SHA256(the plugin's key, link id), the
key in the data folder (`withdraw_link_key`, 0600), and the table keeps only
its sha256 to find the link by. A copy of the database alone withdraws
nothing. Links made before secrets were derived keep working through the
stored sha256, but their LNURL can no longer be shown (`secret_of` is None).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
import secrets
from pathlib import Path
from typing import Any

import bolt11 as bolt11_lib
import lnurl
from fulmen import (
    Forbidden,
    FulmenError,
    NotFound,
    Payment,
    PluginHost,
    WalletAuth,
    checked_outbound_url,
    import_objects,
    now_ms,
    query,
    read_or_create_secret,
    transaction,
)

from .schemas import check_link, link_json

log = logging.getLogger(__name__)

K1_TTL_MS = 24 * 3600 * 1000  # an issued k1 can be claimed for a day
#: Unspent k1s kept per link: the scan is public and writes a row, so the
#: oldest open k1s beyond this are dropped (their holders scan again).
MAX_OPEN_K1 = 100
WEBHOOK_TIMEOUT = 6.0
COLUMNS = ("title", "min_withdrawable", "max_withdrawable", "uses", "wait_time", "is_unique",
           "webhook_url", "webhook_headers", "webhook_body", "custom_url", "enabled")


class LnurlFailure(Exception):
    """An LNURL protocol error: answered as `{"status": "ERROR", "reason"}`."""

    def __init__(self, reason: str, status_code: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


# --- link secrets -------------------------------------------------------------------------

KEY_FILE_NAME = "withdraw_link_key"


@functools.cache
def _key(data_dir: Path) -> bytes:
    value, _ = read_or_create_secret(data_dir / KEY_FILE_NAME, lambda: secrets.token_hex(32))
    return bytes.fromhex(value)


def link_secret(host: PluginHost, link_id: str) -> str:
    """The link's `unique_hash`: 32 URL-safe characters (192 bits), derived."""
    mac = hmac.new(_key(Path(host.settings.data_dir)), b"withdraw link " + link_id.encode(),
                   hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode()


def secret_digest(unique_hash: str) -> str:
    """What the table stores for a link's secret (and looks it up by)."""
    return hashlib.sha256(unique_hash.encode()).hexdigest()


def secret_of(host: PluginHost, row: dict[str, Any]) -> str | None:
    """The link's secret, or None for a link made before secrets were derived."""
    derived = link_secret(host, row["id"])
    return derived if hmac.compare_digest(secret_digest(derived), row["unique_hash"]) else None


# --- URLs ---------------------------------------------------------------------------------


def request_url(base_url: str, unique_hash: str) -> str:
    return f"{base_url}/withdraw/api/v1/lnurl/{unique_hash}"


def callback_url(base_url: str, unique_hash: str) -> str:
    return f"{base_url}/withdraw/api/v1/lnurl/cb/{unique_hash}"


def lnurl_forms(base_url: str, unique_hash: str) -> tuple[str, str]:
    """(bech32 LNURL, plain URL)."""
    url = request_url(base_url, unique_hash)
    return lnurl.url_encode(url), url


def to_json(host: PluginHost, row: dict[str, Any], base_url: str, reveal: bool = True) -> dict[str, Any]:
    """The link's JSON. Whoever holds the LNURL can withdraw, so without
    `reveal` (a key that cannot spend) `unique_hash`, `lnurl` and `lnurl_url`
    are null: an invoice key must not be a way to take the wallet's money.
    They are null too for a link whose secret is no longer known here."""
    secret = secret_of(host, row) if reveal else None
    if secret is None:
        return link_json(row, None, None, None)
    return link_json(row, secret, *lnurl_forms(base_url, secret))


async def link_by_page_key(unique_hash: str) -> dict[str, Any]:
    """The link whose page is `/withdraw/{unique_hash}` (the page shows the LNURL)."""
    rows = await query("SELECT * FROM withdraw_link WHERE unique_hash = {}", secret_digest(unique_hash))
    if not rows:
        raise NotFound("Withdraw link does not exist.")
    return rows[0]



# --- storage ------------------------------------------------------------------------------


def max_sats(host: PluginHost) -> int:
    return host.settings.max_invoice_msat // 1000


async def get_link(link_id: str) -> dict[str, Any]:
    rows = await query("SELECT * FROM withdraw_link WHERE id = {}", link_id)
    if not rows:
        raise NotFound("Withdraw link does not exist.")
    return rows[0]


async def owned_link(link_id: str, auth: WalletAuth) -> dict[str, Any]:
    row = await get_link(link_id)
    if row["wallet"] != auth.wallet_id:
        raise Forbidden("Not your withdraw link.")
    return row


async def list_links(auth: WalletAuth, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    rows = await query(
        "SELECT * FROM withdraw_link WHERE wallet = {} ORDER BY created_at, id LIMIT {} OFFSET {}",
        auth.wallet_id, limit, offset,
    )
    total = await query("SELECT COUNT(*) AS n FROM withdraw_link WHERE wallet = {}", auth.wallet_id)
    return rows, int(total[0]["n"])


async def create_link(host: PluginHost, auth: WalletAuth, data: Any) -> dict[str, Any]:
    values = check_link(data, None, max_sats(host))
    await checked_outbound_url(host.http, values["webhook_url"], "webhook_url")
    now = now_ms()
    link_id = secrets.token_urlsafe(16)
    rows = await query(
        "INSERT INTO withdraw_link (id, wallet, unique_hash, used, last_used_at, "
        + ", ".join(COLUMNS) + ", created_at, updated_at) VALUES ({}, {}, {}, 0, 0, "
        + ", ".join("{}" for _ in COLUMNS) + ", {}, {}) RETURNING *",
        link_id, auth.wallet_id, secret_digest(link_secret(host, link_id)),
        *(values[c] for c in COLUMNS), now, now,
    )
    return rows[0]


async def update_link(host: PluginHost, auth: WalletAuth, link_id: str, data: Any) -> dict[str, Any]:
    current = await owned_link(link_id, auth)
    values = check_link(data, current, max_sats(host))
    if isinstance(data, dict) and "webhook_url" in data:
        await checked_outbound_url(host.http, values["webhook_url"], "webhook_url")
    # `uses >= used` again in SQL: a claim may have taken a use since the read.
    rows = await query(
        "UPDATE withdraw_link SET " + ", ".join(f"{c} = {{}}" for c in COLUMNS)
        + ", updated_at = {} WHERE id = {} AND wallet = {} AND used <= {} RETURNING *",
        *(values[c] for c in COLUMNS), now_ms(), link_id, auth.wallet_id, values["uses"],
    )
    if not rows:
        raise FulmenError("uses cannot go below the uses already taken")
    return rows[0]


async def delete_link(host: PluginHost, auth: WalletAuth, link_id: str) -> None:
    await owned_link(link_id, auth)
    async with transaction():
        await query("DELETE FROM withdraw_k1 WHERE link_id = {}", link_id)
        await query("DELETE FROM withdraw_link WHERE id = {} AND wallet = {}", link_id, auth.wallet_id)


# --- LNURL-withdraw ------------------------------------------------------------------------


async def link_by_hash(unique_hash: str) -> dict[str, Any]:
    rows = await query("SELECT * FROM withdraw_link WHERE unique_hash = {}", secret_digest(unique_hash))
    if not rows:
        raise LnurlFailure("Withdraw link does not exist.", 404)
    return rows[0]


async def withdraw_request(unique_hash: str, base_url: str) -> dict[str, Any]:
    """LUD-03 first step: the link's limits and a fresh one-time k1."""
    row = await link_by_hash(unique_hash)
    if not row["enabled"]:
        raise LnurlFailure("Withdraw link is disabled.")
    if int(row["used"]) >= int(row["uses"]):
        raise LnurlFailure("Withdraw link is spent.")
    now = now_ms()
    await query("DELETE FROM withdraw_k1 WHERE link_id = {} AND spent_at IS NULL AND issued_at < {}",
                row["id"], now - K1_TTL_MS)
    k1 = secrets.token_hex(32)
    await query("INSERT INTO withdraw_k1 (k1, link_id, issued_at, status) VALUES ({}, {}, {}, 'issued')",
                k1, row["id"], now)
    # the new k1 always stays; of the others, the newest MAX_OPEN_K1 - 1
    await query(
        "DELETE FROM withdraw_k1 WHERE link_id = {} AND spent_at IS NULL AND k1 <> {} AND k1 NOT IN "
        "(SELECT k1 FROM withdraw_k1 WHERE link_id = {} AND spent_at IS NULL AND k1 <> {} "
        "ORDER BY issued_at DESC, k1 LIMIT {})",
        row["id"], k1, row["id"], k1, MAX_OPEN_K1 - 1,
    )
    return {
        "tag": "withdrawRequest",
        "callback": callback_url(base_url, unique_hash),
        "k1": k1,
        "minWithdrawable": int(row["min_withdrawable"]) * 1000,
        "maxWithdrawable": int(row["max_withdrawable"]) * 1000,
        "defaultDescription": row["title"],
    }


def invoice_amount(row: dict[str, Any], pr: str | None) -> int:
    if not pr:
        raise LnurlFailure("pr (the invoice to pay) is required.")
    try:
        invoice = bolt11_lib.decode(pr.strip().removeprefix("lightning:"))
    except Exception:
        raise LnurlFailure("pr is not a valid bolt11 invoice.") from None
    if not invoice.amount_msat:
        raise LnurlFailure("The invoice has no amount; send one for an amount within the limits.")
    low, high = int(row["min_withdrawable"]) * 1000, int(row["max_withdrawable"]) * 1000
    if not low <= int(invoice.amount_msat) <= high:
        raise LnurlFailure(f"Invoice amount {int(invoice.amount_msat)} msat is outside this link's "
                           f"range {low} to {high} msat.")
    return int(invoice.amount_msat)


class _Refused(Exception):
    """Rolls the claim transaction back."""


async def _take_use(host: PluginHost, row: dict[str, Any], k1: str, now: int) -> None:
    """Spend the k1 and take one use, both or neither (one transaction)."""
    try:
        async with transaction():
            spent = await query(
                "UPDATE withdraw_k1 SET spent_at = {}, status = 'claimed' WHERE k1 = {} "
                "AND link_id = {} AND spent_at IS NULL AND issued_at > {} RETURNING k1",
                now, k1, row["id"], now - K1_TTL_MS,
            )
            if not spent:
                raise _Refused("k1 is unknown, expired or already used.")
            taken = await query(
                "UPDATE withdraw_link SET used = used + 1, last_used_at = {} WHERE id = {} AND enabled "
                "AND used < uses AND (wait_time = 0 OR last_used_at + wait_time * 1000 <= {}) RETURNING id",
                now, row["id"], now,
            )
            if not taken:
                raise _Refused(await _why_not(row["id"], now))
    except _Refused as exc:
        raise LnurlFailure(str(exc)) from None


async def _why_not(link_id: str, now: int) -> str:
    rows = await query("SELECT * FROM withdraw_link WHERE id = {}", link_id)
    if not rows:
        return "Withdraw link does not exist."
    row = rows[0]
    if not row["enabled"]:
        return "Withdraw link is disabled."
    if int(row["used"]) >= int(row["uses"]):
        return "Withdraw link is spent."
    wait = (int(row["last_used_at"]) + int(row["wait_time"]) * 1000 - now + 999) // 1000
    if int(row["wait_time"]) and wait > 0:
        return f"Too early: this link can be used again in {wait} seconds."
    return "Withdraw link is busy; try again."


async def _give_back(host: PluginHost, link_id: str, k1: str, now: int, error: str) -> None:
    async with transaction():
        # last_used_at back to 0 only if no other use was taken since: the
        # earlier use's wait had passed (the claim checked), so 0 is the same.
        await query(
            "UPDATE withdraw_link SET used = used - 1, last_used_at = CASE WHEN last_used_at = {} "
            "THEN 0 ELSE last_used_at END WHERE id = {} AND used > 0",
            now, link_id,
        )
        await query("UPDATE withdraw_k1 SET status = 'failed', error = {} WHERE k1 = {}", error[:500], k1)


async def claim(host: PluginHost, unique_hash: str, k1: str | None, pr: str | None) -> dict[str, Any]:
    """LUD-03 second step: pay the wallet's invoice, once per k1 and per use."""
    row = await link_by_hash(unique_hash)
    if not k1:
        raise LnurlFailure("k1 is required.")
    amount = invoice_amount(row, pr)
    now = now_ms()
    await _take_use(host, row, k1, now)
    try:
        wallet = await host.wallets.get(row["wallet"])
        payment = await host.payments.pay(
            WalletAuth(wallet.id, wallet.account_id, "admin"), (pr or "").strip(),
            extra={"tag": "withdraw", "withdraw_link": row["id"], "k1": k1},
            idempotency_key=f"withdraw:{k1}",
        )
    except FulmenError as exc:
        # Refused or failed with the funds back in the wallet: nothing was paid.
        await _give_back(host, row["id"], k1, now, exc.detail)
        raise LnurlFailure(f"Payment failed: {exc.detail}") from None
    await query("UPDATE withdraw_k1 SET status = 'paid', payment_hash = {} WHERE k1 = {}",
                payment.payment_hash, k1)
    log.info("withdraw link %s paid %s msat (payment %s)", row["id"], amount, payment.payment_hash)
    if row["webhook_url"]:
        host.spawn(send_webhook(host, row, payment), name=f"withdraw-webhook-{row['id']}")
    return {"status": "OK"}


async def send_webhook(host: PluginHost, row: dict[str, Any], payment: Payment) -> None:
    """POST the link's webhook once, best-effort: the result is logged."""
    headers = json.loads(row["webhook_headers"]) if row["webhook_headers"] else {}
    body = {
        "payment_hash": payment.payment_hash,
        "payment_request": payment.bolt11,
        "lnurlw": row["id"],
        "body": json.loads(row["webhook_body"]) if row["webhook_body"] else {},
    }
    try:
        response = await host.http.request("POST", row["webhook_url"], json=body, headers=headers,
                                           timeout=WEBHOOK_TIMEOUT)
    except Exception as exc:
        log.warning("withdraw webhook for link %s failed: %s", row["id"], exc)
        return
    log.info("withdraw webhook for link %s: HTTP %s", row["id"], response.status_code)


# --- wallet export / import ------------------------------------------------------------


async def export_links(host: PluginHost, auth: WalletAuth) -> list[dict[str, Any]]:
    """The wallet's withdraw links with uses left, their settings only; `uses`
    is what is left, so an import does not hand out claimed uses again."""
    base = host.base_url()
    out = []
    for row in await query("SELECT * FROM withdraw_link WHERE wallet = {} ORDER BY created_at, id",
                           auth.wallet_id):
        data = {c: v for c, v in to_json(host, row, base).items() if c in COLUMNS}
        data["uses"] = int(row["uses"]) - int(row["used"])
        if data["uses"] > 0:
            out.append(data)
    return out


async def import_links(host: PluginHost, auth: WalletAuth, data: Any) -> dict[str, Any]:
    async def create(item: Any) -> dict[str, Any]:
        row = await create_link(host, auth, item)
        return {"id": row["id"], "title": row["title"], "uses": int(row["uses"])}

    return await import_objects(data, create, lambda item: {"title": item.get("title")})
