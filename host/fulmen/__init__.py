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
from .fields import checked_outbound_url, json_field, outbound_url_field, text_field
from .hookspecs import hookimpl
from .host import Host
from .models import InvoiceInfo, InvoiceRequest, Payment, Wallet, WalletAuth
from .version import __version__

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "FulmenError",
    "Host",
    "InsufficientBalance",
    "InvoiceInfo",
    "InvoiceRejected",
    "InvoiceRequest",
    "NotFound",
    "Payment",
    "PaymentFailed",
    "PaymentRejected",
    "Unauthorized",
    "Wallet",
    "WalletAuth",
    "__version__",
    "checked_outbound_url",
    "ddl_migration",
    "hookimpl",
    "json_field",
    "now_ms",
    "outbound_url_field",
    "query",
    "require_wallet_key",
    "run_ddl",
    "text_field",
    "transaction",
]
