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
    """The configured source, behind a fallback when FULMEN_FUNDING_FALLBACK is set."""
    primary = _make(settings.funding_source, settings)
    if not settings.funding_fallback:
        return primary
    if settings.funding_fallback == settings.funding_source:
        raise ValueError("FULMEN_FUNDING_FALLBACK must differ from FULMEN_FUNDING_SOURCE")
    from .fallback import FallbackFunding

    return FallbackFunding(primary, _make(settings.funding_fallback, settings))


def _make(name: str, settings: Settings) -> FundingSource:
    try:
        target = BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"Unknown funding source {name!r}; choose one of {', '.join(sorted(BACKENDS))}"
        ) from None
    module_name, factory = target.split(":")
    make = getattr(importlib.import_module(module_name), factory)
    from ..vault import vault_store

    store = vault_store()
    if store is not None and name != "fake":
        # credentials from Vault: read again and rebuilt when the node refuses them
        from .vault_renew import VaultRenewingFunding

        return VaultRenewingFunding(lambda: make(settings), store)
    return make(settings)


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
