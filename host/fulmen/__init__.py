"""Fulmen: a Lightning Network wallet and accounts host with plugins.

This module is the public API for plugins: import from `fulmen` (and
`fulmen.testing` in tests) only; everything else is the host's own.
"""

import os

# Piccolo finds its engine through this module; the host fills it in at start.
os.environ.setdefault("PICCOLO_CONF", "fulmen.piccolo_conf")

from .api.auth import require_wallet_key  # noqa: E402
from .db import ddl_migration, now_ms, query, run_ddl, transaction
from .errors import (
    BadRequest,
    Conflict,
    Forbidden,
    FulmenError,
    InsufficientBalance,
    InvoiceRejected,
    NotFound,
    PaymentFailed,
    PaymentRejected,
    Unauthorized,
)
from .contract import PaymentFilter, PluginHost, PublicSettings
from .fields import json_field, outbound_url_field, text_field
from .hookspecs import hookimpl
from .models import InvoiceInfo, InvoiceRequest, Payment, Wallet, WalletAuth
from .rates import Quote, RateService, RateUnavailable, check_currency, parse_fiat
from .version import __version__
from .wallet_transfer import import_objects

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "FulmenError",
    "InsufficientBalance",
    "InvoiceInfo",
    "InvoiceRejected",
    "InvoiceRequest",
    "NotFound",
    "Payment",
    "PaymentFailed",
    "PaymentFilter",
    "PaymentRejected",
    "PluginHost",
    "PublicSettings",
    "Quote",
    "RateService",
    "RateUnavailable",
    "Unauthorized",
    "Wallet",
    "WalletAuth",
    "__version__",
    "check_currency",
    "ddl_migration",
    "hookimpl",
    "import_objects",
    "json_field",
    "now_ms",
    "outbound_url_field",
    "parse_fiat",
    "query",
    "require_wallet_key",
    "run_ddl",
    "text_field",
    "transaction",
]
