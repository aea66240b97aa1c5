"""Liveness and readiness."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from litestar import Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import db, metrics
from ..host import Host

log = logging.getLogger(__name__)


def failed(what: str, exc: BaseException) -> str:
    """Details go to the log, not to anonymous callers (they name hosts and users)."""
    log.warning("readiness: %s check failed: %r", what, exc)
    return "error"


def vault_check() -> Any:
    """With Vault configured: a coroutine reading it again, true when it failed."""
    from ..vault import vault_store

    store = vault_store()
    if store is None:
        return None

    async def check() -> bool:
        try:
            await asyncio.wait_for(asyncio.to_thread(store.read, True), 5)
        except Exception as exc:  # noqa: BLE001 - any failure to read Vault
            failed("vault", exc)
            return True
        return store.error is not None

    return check()


@get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers. Touches nothing else."""
    return {"status": "ok"}


@get("/ready")
async def ready(request: Request) -> Response[dict[str, Any]]:
    """Readiness: database, Redis (when configured) and funding source."""
    host: Host = request.app.state.host
    checks: dict[str, Any] = {}
    degraded = None
    try:
        await asyncio.wait_for(db.query("SELECT 1 AS one"), 3)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = failed("database", exc)
    if host.settings.redis_url:
        try:
            import redis.asyncio as redis

            client = redis.from_url(host.settings.redis_url, socket_timeout=2)
            try:
                await asyncio.wait_for(client.ping(), 3)
            finally:
                await client.aclose()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = failed("redis", exc)
    try:
        status = await asyncio.wait_for(host.funding.status(), 5)
        if status.error is not None:
            checks["funding_source"] = f"error: {status.error}"
        elif status.degraded:
            checks["funding_source"] = "ok"
            degraded = status.degraded
        else:
            checks["funding_source"] = "ok"
    except Exception as exc:
        checks["funding_source"] = failed("funding source", exc)
    vault = vault_check()
    if vault is not None:
        checks["vault"] = "ok"  # the host runs on the credentials it read earlier
        if await vault:
            note = "vault: unreachable, using the credentials read earlier"
            degraded = "; ".join(filter(None, [degraded, note]))
    ok = host.started and all(v == "ok" for v in checks.values())
    body: dict[str, Any] = {"status": ("degraded" if degraded else "ready") if ok else "not ready",
                            "checks": checks}
    if degraded:
        body["degraded"] = degraded
    return Response(body, status_code=200 if ok else 503)


@get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response[bytes]:
    """This process's counters (fulmen/metrics.py) in Prometheus's text format."""
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)


ROUTES = [health, ready, prometheus_metrics]
