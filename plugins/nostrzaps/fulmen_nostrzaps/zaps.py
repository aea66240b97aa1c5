"""Zaps: checking requests at the lnurlp callback, making the receipt when
the invoice is paid, and delivering it to the request's relays.

Durability: the host records the `on_invoice_paid` call in the payment's
own transaction and retries it with backoff while it raises. The hook
writes the receipt (one per payment: the insert is keyed on the payment)
and one delivery row per relay, then publishes to every relay still
pending, and raises while any is. Each relay's answer is stored on its row.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import bolt11
from fulmen import BadRequest, NotFound, Payment, PluginHost, now_ms, query, transaction

from . import nostr
from .config import state
from .link_keys import pubkey_of, receipt_key, signing_key
from .relay import publish

log = logging.getLogger(__name__)

FINAL = ("ok", "refused", "skipped")


# --- at the lnurlp callback ---------------------------------------------------------------


async def check_callback(host: PluginHost, link: dict[str, Any], params: dict[str, str],
                         amount_msat: int, lnurls: list[str]) -> dict[str, Any] | None:
    """The `nostr` parameter of a zap-enabled link's callback: checked
    (Appendix D), recorded, and chosen as the invoice's description."""
    raw = params.get("nostr")
    if raw is None or not link.get("zaps"):
        return None
    event = nostr.check_zap_request(raw, amount_msat, lnurls)
    request_hash = hashlib.sha256(raw.encode()).hexdigest()
    await query(
        "INSERT INTO nostrzaps_request (request_hash, link_id, wallet_id, amount_msat, sender, "
        "created_at) VALUES ({}, {}, {}, {}, {}, {}) "
        "ON CONFLICT (request_hash, wallet_id, amount_msat) DO NOTHING",
        request_hash, link["id"], link["wallet"], amount_msat, event["pubkey"], now_ms(),
    )
    signer = pubkey_of(await signing_key(host, link["id"]))
    return {"description": raw, "extra": {"request": raw, "signer": signer}}


# --- after payment --------------------------------------------------------------------------


async def zap_request_of(payment: Payment) -> dict[str, Any] | None:
    """What the callback recorded in the paid invoice (`request`: the zap
    request; `signer`: the public key the payer was shown), or None. Trusted only
    when our callback recorded it for this wallet and amount, and the
    invoice's description hash is its sha256 (`extra` is the invoice
    creator's to write)."""
    if payment.out or payment.tag != "lnurlp":
        return None
    ours = payment.extra.get("nostrzaps")
    raw = ours.get("request") if isinstance(ours, dict) else None
    if not isinstance(raw, str):
        return None
    request_hash = hashlib.sha256(raw.encode()).hexdigest()
    recorded = await query(
        "SELECT 1 AS ok FROM nostrzaps_request WHERE request_hash = {} AND wallet_id = {} "
        "AND amount_msat = {}",
        request_hash, payment.wallet_id, payment.amount_msat,
    )
    if not recorded:
        log.warning("payment %s carries a zap request this plugin did not record: no receipt",
                    payment.payment_hash)
        return None
    invoice_hash = bolt11.decode(payment.bolt11).description_hash
    if (invoice_hash or "").lower() != request_hash:
        log.warning("payment %s: invoice description hash is not the zap request's: no receipt",
                    payment.payment_hash)
        return None
    return ours


async def record_receipt(host: PluginHost, payment: Payment, ours: dict[str, Any]) -> dict[str, Any]:
    """The payment's receipt row and its delivery rows, written once."""
    existing = await query("SELECT * FROM nostrzaps_zap WHERE payment_id = {}", payment.id)
    if existing:
        return existing[0]
    st = state(host)
    raw = ours["request"]
    request = json.loads(raw)
    key = await receipt_key(host, payment.extra.get("link"), ours.get("signer"))
    receipt = nostr.zap_receipt(key, raw, payment.bolt11, payment.preimage,
                                payment.updated_at // 1000)
    relays = nostr.relays_of(request)
    kept, dropped = relays[: st.config.max_relays], relays[st.config.max_relays:]
    e = nostr.tag_values(request, "e")
    now = now_ms()
    async with transaction():
        rows = await query(
            "INSERT INTO nostrzaps_zap (payment_id, payment_hash, wallet_id, link_id, sender, "
            "recipient, zapped_event, amount_msat, content, request, receipt, receipt_id, "
            "receipt_pubkey, paid_at, created_at) "
            "VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}) "
            "ON CONFLICT (payment_id) DO NOTHING RETURNING *",
            payment.id, payment.payment_hash, payment.wallet_id, payment.extra.get("link"),
            request["pubkey"], nostr.tag_values(request, "p")[0][0],
            e[0][0] if e else None, payment.amount_msat, request["content"], raw,
            json.dumps(receipt), receipt["id"], receipt["pubkey"], payment.updated_at, now,
        )
        if not rows:  # written by another process meanwhile
            return (await query("SELECT * FROM nostrzaps_zap WHERE payment_id = {}",
                                payment.id))[0]
        zap = rows[0]
        for url in kept:
            await query(
                "INSERT INTO nostrzaps_delivery (zap_id, relay, status, message, attempts, "
                "updated_at) VALUES ({}, {}, 'pending', NULL, 0, {}) "
                "ON CONFLICT (zap_id, relay) DO NOTHING",
                zap["id"], url, now,
            )
        for url in dropped:
            await query(
                "INSERT INTO nostrzaps_delivery (zap_id, relay, status, message, attempts, "
                "updated_at) VALUES ({}, {}, 'skipped', {}, 0, {}) "
                "ON CONFLICT (zap_id, relay) DO NOTHING",
                zap["id"], url, f"more than {st.config.max_relays} relays in the request", now,
            )
    return zap


async def deliver(host: PluginHost, zap: dict[str, Any]) -> list[dict[str, Any]]:
    """Publish the receipt to every relay still pending; store each answer
    (`attempts` counts the times it was sent). Returns the zap's delivery rows."""
    st = state(host)
    receipt = json.loads(zap["receipt"])
    pending = await query(
        "SELECT * FROM nostrzaps_delivery WHERE zap_id = {} AND status = 'pending' ORDER BY id",
        zap["id"],
    )
    for row in pending:
        outcome = await publish(host, row["relay"], receipt, st.config)
        await query(
            "UPDATE nostrzaps_delivery SET status = {}, message = {}, attempts = attempts + {}, "
            "updated_at = {} WHERE id = {} AND status = 'pending'",
            outcome.status, outcome.message, 0 if outcome.status == "skipped" else 1, now_ms(),
            row["id"],
        )
    return await query("SELECT * FROM nostrzaps_delivery WHERE zap_id = {} ORDER BY id",
                       zap["id"])


async def on_paid(host: PluginHost, payment: Payment) -> None:
    ours = await zap_request_of(payment)
    if ours is None:
        return
    zap = await record_receipt(host, payment, ours)
    rows = await deliver(host, zap)
    waiting = [r for r in rows if r["status"] not in FINAL]
    if waiting:
        # The host retries this hook with backoff; relays already answered are not asked again.
        raise RuntimeError(
            f"zap receipt {zap['receipt_id']}: {len(waiting)} relay(s) not reached yet: "
            + "; ".join(f"{r['relay']}: {r['message']}" for r in waiting)
        )


# --- reading ----------------------------------------------------------------------------------


def delivery_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"relay": row["relay"], "status": row["status"], "message": row["message"],
            "attempts": int(row["attempts"]), "updated_at": int(row["updated_at"])}


async def with_deliveries(zaps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not zaps:
        return []
    ids = [z["id"] for z in zaps]
    rows = await query(
        "SELECT * FROM nostrzaps_delivery WHERE zap_id IN ("
        + ", ".join("{}" for _ in ids) + ") ORDER BY id", *ids,
    )
    by_zap: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_zap.setdefault(int(row["zap_id"]), []).append(delivery_json(row))
    return [zap_json(z, by_zap.get(int(z["id"]), [])) for z in zaps]


def zap_json(zap: dict[str, Any], deliveries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": int(zap["id"]),
        "payment_hash": zap["payment_hash"],
        "wallet": zap["wallet_id"],
        "link": zap["link_id"],
        "sender": zap["sender"],
        "recipient": zap["recipient"],
        "zapped_event": zap["zapped_event"],
        "amount": int(zap["amount_msat"]),
        "content": zap["content"],
        "receipt_id": zap["receipt_id"],
        "receipt": json.loads(zap["receipt"]),
        "paid_at": int(zap["paid_at"]),
        "relays": deliveries,
    }


async def wallet_zaps(wallet_id: str, limit: int) -> list[dict[str, Any]]:
    zaps = await query(
        "SELECT * FROM nostrzaps_zap WHERE wallet_id = {} ORDER BY id DESC LIMIT {}",
        wallet_id, limit,
    )
    return await with_deliveries(zaps)


async def admin_deliveries(status: str | None, limit: int) -> list[dict[str, Any]]:
    if status is not None and status not in ("pending", *FINAL):
        raise BadRequest("status must be one of pending, ok, refused, skipped")
    if status:
        zaps = await query(
            "SELECT * FROM nostrzaps_zap WHERE id IN (SELECT zap_id FROM nostrzaps_delivery "
            "WHERE status = {}) ORDER BY id DESC LIMIT {}", status, limit,
        )
    else:
        zaps = await query("SELECT * FROM nostrzaps_zap ORDER BY id DESC LIMIT {}", limit)
    return await with_deliveries(zaps)


async def redeliver(host: PluginHost, zap_id: int) -> dict[str, Any]:
    """Publish a receipt again to every relay that did not accept it
    (refused, skipped or still pending), now."""
    zaps = await query("SELECT * FROM nostrzaps_zap WHERE id = {}", zap_id)
    if not zaps:
        raise NotFound(f"zap {zap_id} does not exist")
    await query(
        "UPDATE nostrzaps_delivery SET status = 'pending', updated_at = {} "
        "WHERE zap_id = {} AND status <> 'ok'",
        now_ms(), zap_id,
    )
    await deliver(host, zaps[0])
    return (await with_deliveries(zaps))[0]
