"""Funding sources, chosen by `FULMEN_FUNDING_SOURCE`."""

from __future__ import annotations

import importlib

from ..settings import Settings
from .base import (
    CreatedInvoice,
    FundingError,
    FundingSource,
    NodeStatus,
    PaymentState,
    PaymentStatus,
)

# name -> "module:factory". Each factory takes Settings and returns a FundingSource.
BACKENDS = {
    "fake": "fulmen.funding.fake:from_settings",
    "lnd": "fulmen.funding.lnd:from_settings",
    "cln": "fulmen.funding.cln:from_settings",
    "eclair": "fulmen.funding.eclair:from_settings",
    "lnbits": "fulmen.funding.lnbits:from_settings",
}


def make_funding_source(settings: Settings) -> FundingSource:
    try:
        target = BACKENDS[settings.funding_source]
    except KeyError:
        raise ValueError(
            f"Unknown FULMEN_FUNDING_SOURCE {settings.funding_source!r}; "
            f"choose one of {', '.join(sorted(BACKENDS))}"
        ) from None
    module_name, factory = target.split(":")
    return getattr(importlib.import_module(module_name), factory)(settings)


__all__ = [
    "BACKENDS",
    "CreatedInvoice",
    "FundingError",
    "FundingSource",
    "NodeStatus",
    "PaymentState",
    "PaymentStatus",
    "make_funding_source",
]
