"""Prometheus metrics at `/metrics`, counted from settled payments.

Counters live in this process (each process exposes its own; scrape them
all). Nothing here sits on the request path: the payment listener runs
after the commit.
"""

from __future__ import annotations

from litestar import get
from litestar.response import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client import ProcessCollector

from .models import Payment

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PAYMENTS = Counter(
    "fulmen_payments_total", "Payments that reached a final state",
    ["direction", "status"], registry=REGISTRY,
)
VOLUME = Counter(
    "fulmen_payment_volume_msat_total", "Millisatoshis moved by successful payments",
    ["direction"], registry=REGISTRY,
)


async def count_payment(payment: Payment) -> None:
    direction = "out" if payment.out else "in"
    PAYMENTS.labels(direction, payment.status).inc()
    if payment.status == "success":
        VOLUME.labels(direction).inc(abs(payment.amount_msat))


@get("/metrics", include_in_schema=False)
async def metrics() -> Response[bytes]:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


ROUTES = [metrics]
