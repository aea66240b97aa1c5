"""Prometheus metrics, counted from settled payments (served at `/metrics`
by fulmen/api/health.py).

Counters live in this process (each process exposes its own; scrape them
all). The settlement step counts a payment after its commit.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, ProcessCollector

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


def count_payment(payment: Payment) -> None:
    direction = "out" if payment.out else "in"
    PAYMENTS.labels(direction, payment.status).inc()
    if payment.status == "success":
        VOLUME.labels(direction).inc(abs(payment.amount_msat))
