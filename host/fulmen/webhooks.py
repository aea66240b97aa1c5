"""Webhooks: signed, retried, durable HTTP notifications of a wallet's events.

Two kinds of delivery, both rows in `fulmen_webhook_delivery` that the
settlement step (fulmen/settlement.py) writes inside the payment's
transaction (so a committed payment always has its deliveries, and a
rolled-back one never does):

- a wallet's webhook endpoints (`/api/v1/webhooks`), each with event-type
  filters and its own signing secret;
- an invoice's own `webhook` URL (LNbits's field), called when it is paid,
  signed with the wallet's invoice-webhook secret.

Every host process runs the webhook outbox (fulmen/outbox.py: claim, lease,
backoff, dead letter); this module is its sender: it POSTs a row through
the host's outbound client (timeouts, no internal addresses unless allowed)
and says how it went. A non-2xx answer or a timeout is retried with
exponential backoff until `FULMEN_WEBHOOK_RETRY_HOURS` have passed since the
event. A process that dies mid-attempt leaves a lease that expires, and
another process (or the restarted one) tries again.

Signature: header `Fulmen-Signature: t=<unix seconds>,v1=<hex>` where hex is
HMAC-SHA256(secret, "<t>.<raw body>"). `verify_signature` checks one.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic_settings import BaseSettings, SettingsConfigDict

from .db import now_ms, query, transaction
from .errors import BadRequest, NotFound
from .events import EVENT_TYPES
from .keys import new_id
from .models import iso
from .net import SafeHttp, UnsafeURL
from .outbox import Outbox, Outcome, Policy, doubling

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Fulmen-Signature"
MAX_ENDPOINTS_PER_WALLET = 20
MAX_URL_LENGTH = 2048
MAX_ROW_ID = 2**63 - 1  # BIGINT


class WebhookSettings(BaseSettings):
    """Webhook settings, from FULMEN_* environment variables."""

    model_config = SettingsConfigDict(env_prefix="FULMEN_", env_file=".env", extra="ignore")

    # Wait before retry n (n = 1, 2, ...): base * 2^(n-1) seconds, at most max.
    webhook_backoff_base_seconds: float = 10.0
    webhook_backoff_max_seconds: float = 3600.0
    # Keep retrying this long after the event (at least a day).
    webhook_retry_hours: float = 25.0
    webhook_timeout_seconds: float = 10.0
    # How often every process looks for due deliveries.
    webhook_poll_seconds: float = 1.0
    webhook_batch: int = 50
    # Finished deliveries stay in the delivery log this long.
    webhook_log_days: float = 30.0


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={sign(secret, t, body)}"


def verify_signature(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """True if `header` (a Fulmen-Signature value) signs `body` with `secret`
    and its timestamp is within `tolerance` seconds of now."""
    parts = dict(p.strip().split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - t) > tolerance:
        return False
    # Compared as bytes: compare_digest refuses str with non-ASCII characters.
    given = parts.get("v1", "").encode("utf-8", "surrogateescape")
    return hmac.compare_digest(sign(secret, t, body).encode(), given)


def safe_url(url: str) -> str:
    """`url` for logs: scheme, host and path, without credentials, query or fragment."""
    try:
        parsed = urlsplit(url)
        host = parsed.hostname or ""
        if parsed.port is not None:
            host = f"{host}:{parsed.port}"
        return urlunsplit((parsed.scheme, host, parsed.path, "", ""))
    except ValueError:
        return "<unparseable url>"


def new_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


def endpoint_json(row: dict[str, Any], secret: bool = False) -> dict[str, Any]:
    data = {
        "id": row["id"],
        "wallet_id": row["wallet_id"],
        "url": row["url"],
        "events": [e for e in row["events"].split(",") if e],
        "description": row["description"],
        "created_at": iso(int(row["created_at"])),
    }
    if secret:
        data["secret"] = row["secret"]
    return data


def delivery_json(row: dict[str, Any]) -> dict[str, Any]:
    pending = row["status"] == "pending"
    return {
        "id": int(row["id"]),
        "endpoint_id": row["endpoint_id"],
        "event_id": f"evt_{row['event_id']}",
        "event_type": row["event_type"],
        "url": row["url"],
        "status": row["status"],
        "attempts": int(row["attempts"]),
        "last_status_code": row["last_status_code"],
        "last_error": row["last_error"],
        "created_at": iso(int(row["created_at"])),
        "updated_at": iso(int(row["updated_at"])),
        "next_attempt_at": iso(int(row["next_attempt_at"])) if pending else None,
        "delivered_at": iso(int(row["delivered_at"])) if row["delivered_at"] else None,
    }


class WebhookService:
    def __init__(self, http: SafeHttp, config: WebhookSettings) -> None:
        self.http = http
        self.config = config
        c = self.config
        self.outbox = Outbox(
            Policy(
                table="fulmen_webhook_delivery", done_status="success",
                lease_ms=int((c.webhook_timeout_seconds + 60) * 1000), renew_seconds=30.0,
                batch=c.webhook_batch, window=True, touch=True, parallel=True,
                backoff_ms=doubling(int(c.webhook_backoff_base_seconds * 1000),
                                    int(c.webhook_backoff_max_seconds * 1000)),
            ),
            self._send,
            describe=lambda row: f"{row['id']} to {safe_url(row['url'])}",
        )

    # --- endpoints --------------------------------------------------------------

    async def validate_url(self, url: Any) -> str:
        if not isinstance(url, str) or not url.strip():
            raise BadRequest("url is required: the https URL to POST events to")
        url = url.strip()
        if len(url) > MAX_URL_LENGTH:
            raise BadRequest(f"url is longer than {MAX_URL_LENGTH} characters")
        try:
            await self.http.check_url(url)
        except UnsafeURL as exc:
            raise BadRequest(f"url is not allowed: {exc.detail}") from None
        except BadRequest as exc:
            raise BadRequest(f"url cannot be used: {exc.detail}") from None
        return url

    @staticmethod
    def validate_events(events: Any) -> list[str]:
        if events is None:
            return list(EVENT_TYPES)
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            raise BadRequest(f"events must be a non-empty list of event types: {', '.join(EVENT_TYPES)}")
        unknown = sorted(set(events) - set(EVENT_TYPES))
        if unknown:
            raise BadRequest(f"unknown event type(s) {unknown}; use {', '.join(EVENT_TYPES)}")
        return [e for e in EVENT_TYPES if e in events]

    async def create_endpoint(self, wallet_id: str, url: Any, events: Any,
                              description: str = "") -> dict[str, Any]:
        types = self.validate_events(events)
        url = await self.validate_url(url)
        async with transaction():
            # The wallet's endpoint count is the limit: a conditional UPDATE, so
            # concurrent requests cannot together pass it.
            counted = await query(
                "UPDATE fulmen_wallet SET webhook_endpoints = webhook_endpoints + 1 "
                "WHERE id = {} AND webhook_endpoints < {} RETURNING webhook_endpoints",
                wallet_id, MAX_ENDPOINTS_PER_WALLET,
            )
            if not counted:
                raise BadRequest(f"a wallet can have at most {MAX_ENDPOINTS_PER_WALLET} webhook endpoints")
            rows = await query(
                "INSERT INTO fulmen_webhook_endpoint (id, wallet_id, url, events, description, secret, "
                "deleted, created_at) VALUES ({}, {}, {}, {}, {}, {}, {}, {}) RETURNING *",
                new_id(), wallet_id, url, ",".join(types), description, new_secret(), False, now_ms(),
            )
        return endpoint_json(rows[0], secret=True)

    async def list_endpoints(self, wallet_id: str) -> list[dict[str, Any]]:
        rows = await query(
            "SELECT * FROM fulmen_webhook_endpoint WHERE wallet_id = {} AND NOT deleted "
            "ORDER BY created_at, id",
            wallet_id,
        )
        return [endpoint_json(r) for r in rows]

    async def get_endpoint(self, wallet_id: str, endpoint_id: str) -> dict[str, Any]:
        rows = await query(
            "SELECT * FROM fulmen_webhook_endpoint WHERE id = {} AND wallet_id = {} AND NOT deleted",
            endpoint_id, wallet_id,
        )
        if not rows:
            raise NotFound("Webhook endpoint not found.")
        return rows[0]

    async def delete_endpoint(self, wallet_id: str, endpoint_id: str) -> None:
        async with transaction():
            rows = await query(
                "UPDATE fulmen_webhook_endpoint SET deleted = {} WHERE id = {} AND wallet_id = {} "
                "AND NOT deleted RETURNING id",
                True, endpoint_id, wallet_id,
            )
            if not rows:
                raise NotFound("Webhook endpoint not found.")
            await query("UPDATE fulmen_wallet SET webhook_endpoints = webhook_endpoints - 1 WHERE id = {}",
                        wallet_id)
        now = now_ms()
        await query(
            "UPDATE fulmen_webhook_delivery SET status = 'failed', last_error = 'endpoint deleted', "
            "updated_at = {} WHERE endpoint_id = {} AND status = 'pending'",
            now, endpoint_id,
        )

    async def deliveries(self, wallet_id: str, endpoint_id: str, status: str | None = None,
                         limit: int = 100) -> list[dict[str, Any]]:
        await self.get_endpoint(wallet_id, endpoint_id)
        rows = await self.outbox.list({"endpoint_id": endpoint_id}, status=status, limit=limit)
        return [delivery_json(r) for r in rows]

    async def redeliver(self, wallet_id: str, endpoint_id: str, delivery_id: int) -> dict[str, Any]:
        """Send a delivery again now (whatever its state), with a fresh retry window."""
        await self.get_endpoint(wallet_id, endpoint_id)
        if not 0 < delivery_id <= MAX_ROW_ID:
            raise NotFound("Delivery not found.")
        where = {"endpoint_id": endpoint_id}
        row = await self.outbox.redeliver(delivery_id, where, window_ms=self.retry_window_ms())
        if row is None:
            if not await self.outbox.exists(delivery_id, where):
                raise NotFound("Delivery not found.")
            raise BadRequest("This delivery is being sent right now; try again in a minute")
        return delivery_json(row)

    async def invoice_secret(self, wallet_id: str) -> str:
        """The wallet's secret for signing its invoices' own webhook calls."""
        await query(
            "INSERT INTO fulmen_webhook_wallet_secret (wallet_id, secret, created_at) "
            "VALUES ({}, {}, {}) ON CONFLICT (wallet_id) DO NOTHING",
            wallet_id, new_secret(), now_ms(),
        )
        rows = await query("SELECT secret FROM fulmen_webhook_wallet_secret WHERE wallet_id = {}",
                           wallet_id)
        return rows[0]["secret"]

    def retry_window_ms(self) -> int:
        """How long a delivery is retried (from when its event was written)."""
        return int(self.config.webhook_retry_hours * 3_600_000)

    # --- sending (the outbox's sender) ----------------------------------------------

    def backoff_ms(self, attempts: int) -> int:
        return self.outbox.policy.backoff_ms(attempts)

    async def run(self) -> None:
        """The delivery worker: every process runs one."""
        await asyncio.gather(self.outbox.run(self.config.webhook_poll_seconds), self._prune_loop())

    async def deliver_due(self) -> int:
        """Claim due deliveries and send them (also what `run` does)."""
        return await self.outbox.deliver_due()

    async def _secret_for(self, row: dict[str, Any]) -> str | None:
        if row["endpoint_id"] is None:
            return await self.invoice_secret(row["wallet_id"])
        rows = await query(
            "SELECT secret FROM fulmen_webhook_endpoint WHERE id = {} AND NOT deleted", row["endpoint_id"]
        )
        return rows[0]["secret"] if rows else None

    async def _send(self, row: dict[str, Any]) -> Outcome:
        code: int | None = None
        try:
            secret = await self._secret_for(row)
            if secret is None:
                return Outcome(error="endpoint deleted", permanent=True)
            body = row["body"].encode()
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "Fulmen-Webhooks/1",
                SIGNATURE_HEADER: signature_header(secret, body),
                "Fulmen-Event": row["event_type"],
                "Fulmen-Event-Id": f"evt_{row['event_id']}",
                "Fulmen-Delivery": str(row["id"]),
            }
            response = await self.http.request(
                "POST", row["url"], content=body, headers=headers,
                timeout=self.config.webhook_timeout_seconds,
            )
            code = response.status_code
            if not 200 <= code < 300:
                return Outcome(error=f"HTTP {code}: {response.text[:200]}",
                               columns={"last_status_code": code})
        except asyncio.CancelledError:
            raise
        except UnsafeURL as exc:
            log.warning("webhook delivery %s to %s refused: %s", row["id"], safe_url(row["url"]),
                        exc.detail)
            return Outcome(error=exc.detail, permanent=True)
        except BadRequest as exc:  # FetchFailed: timeout, refused, too large
            return Outcome(error=exc.detail)
        except Exception as exc:
            return Outcome(error=f"{type(exc).__name__}: {exc}")
        return Outcome(columns={"last_status_code": code, "delivered_at": now_ms()})

    async def _prune_loop(self) -> None:
        """Finished deliveries stay in the log `webhook_log_days`."""
        while True:
            try:
                await self.outbox.prune(int(self.config.webhook_log_days * 86_400_000))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhooks: pruning the delivery log failed")
            await asyncio.sleep(3600)
