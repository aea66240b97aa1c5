"""Fulmen: a Lightning Network wallet and accounts host with plugins.

This module is the public API for plugins: import from `fulmen` (and
`fulmen.testing` in tests) only; everything else is the host's own.
"""

import os

# Piccolo finds its engine through this module; the host fills it in at start.
os.environ.setdefault("PICCOLO_CONF", "fulmen.piccolo_conf")

from .api.auth import require_wallet_key
from .contract import PaymentFilter, PluginHost, PublicSettings
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
from .hookspecs import hookimpl, hookspec
from .models import InvoiceInfo, InvoiceRequest, Payment, Wallet, WalletAuth
from .rates import Quote, RateService, RateUnavailable, check_currency, parse_fiat
from .secret_files import read_or_create_secret
from .version import __version__
from .wallet_transfer import import_objects
from .web import (
    WebSession,
    checked_form,
    current_web_session,
    field_errors,
    page_environment,
    redirect,
    render_page,
    require_web_session,
)

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
    "WebSession",
    "__version__",
    "check_currency",
    "checked_outbound_url",
    "checked_form",
    "current_web_session",
    "ddl_migration",
    "field_errors",
    "hookimpl",
    "import_objects",
    "hookspec",
    "json_field",
    "now_ms",
    "outbound_url_field",
    "parse_fiat",
    "page_environment",
    "query",
    "redirect",
    "render_page",
    "read_or_create_secret",
    "require_wallet_key",
    "require_web_session",
    "run_ddl",
    "text_field",
    "transaction",
]
