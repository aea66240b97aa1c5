"""The plugin contract: every hook a Fulmen plugin can implement.

A plugin is a module (or object) with functions marked `@fulmen.hookimpl`,
named after the hooks below and taking any subset of their arguments, by
name. Any implementation may be `def` or `async def`; the host awaits it.

Hooks are called with keyword arguments only. Unless a hook says
"first result wins", the host calls every enabled plugin's implementation
and collects the results; the order between plugins is unspecified, so no
hook may depend on it. docs/plugins.md has an example of each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # only for annotations: hook arguments are passed by name
    import click
    from piccolo.conf.apps import AppConfig

    from .host import Host
    from .models import InvoiceInfo, InvoiceRequest, Payment, WalletAuth

hookspec = pluggy.HookspecMarker("fulmen")
hookimpl = pluggy.HookimplMarker("fulmen")


# --- set-up: called once when the host starts -----------------------------------


@hookspec
def register_apps() -> "AppConfig | list[AppConfig] | None":
    """Return the plugin's Piccolo app(s): tables and migrations.

    Called once at start, before migrations run. The host runs its own
    migrations, then each enabled plugin's, ordered by the apps'
    `migration_dependencies` (list "fulmen" there). Prefix every table name
    with the plugin id.
    """


@hookspec
def register_routes(host: "Host") -> "list[Any] | None":
    """Return Litestar route handlers, Controllers or Routers.

    Called once at start. They are mounted under `/{plugin_id}`, so a
    handler at `/api/v1/links` answers at `/lnurlp/api/v1/links`. While the
    plugin is disabled they answer 404.
    """


@hookspec
def register_commands(cli: "click.Group") -> None:
    """Add subcommands to the `fulmen` command line.

    Called when the CLI is built. Use `@cli.command()` or `cli.add_command()`.
    """


@hookspec
def nav_entries(host: "Host") -> "list[dict[str, str]] | None":
    """Return links for the web UI's navigation: `[{"href", "label"}]`.

    Called on each page render, for enabled plugins only. A plugin's page
    templates live in its package's `templates/` folder.
    """


# --- lifecycle ------------------------------------------------------------------


@hookspec
def startup(host: "Host") -> None:
    """Called once after migrations, when the host starts serving (and when
    the plugin is enabled at runtime). Start background tasks here with
    `host.spawn(...)`. An exception quarantines the plugin."""


@hookspec
def shutdown(host: "Host") -> None:
    """Called once when the host stops (and when the plugin is disabled)."""


# --- before money moves: may refuse -----------------------------------------------


@hookspec
def before_invoice_created(host: "Host", wallet: "WalletAuth", request: "InvoiceRequest") -> None:
    """Called before the funding source is asked for an invoice.

    May change `request.extra` or `request.memo`, or raise
    `fulmen.InvoiceRejected` to refuse (the caller gets a 400 with its
    message). Runs inside the request: keep it quick.
    """


@hookspec
def before_payment_sent(host: "Host", wallet: "WalletAuth", invoice: "InvoiceInfo") -> None:
    """Called before an outgoing payment reserves funds.

    Raise `fulmen.PaymentRejected` to refuse (the caller gets a 403 with its
    message): spending limits, allow-lists. Nothing has been debited yet.
    """


# --- after money moved: durable, exactly once per payment per plugin -----------------


@hookspec
def on_invoice_paid(host: "Host", payment: "Payment") -> None:
    """An incoming payment was credited (internal or from the network).

    Called after the payment commits, exactly once per payment for each
    plugin, also across restarts and several host processes: the call is
    recorded in the payment's transaction and retried with backoff while it
    raises. Filter on `payment.tag` / `payment.extra`.
    """


@hookspec
def on_payment_sent(host: "Host", payment: "Payment") -> None:
    """An outgoing payment succeeded. Same delivery rules as `on_invoice_paid`."""


@hookspec
def on_payment_failed(host: "Host", payment: "Payment") -> None:
    """An outgoing payment failed and its funds went back to the wallet.
    Same delivery rules as `on_invoice_paid`."""


# --- questions with one answer -----------------------------------------------------


@hookspec(firstresult=True)
def resolve_lightning_address(host: "Host", username: str, base_url: str) -> "dict[str, Any] | None":
    """Answer `GET /.well-known/lnurlp/{username}` (LUD-16).

    Return the LNURL-pay response (a dict with `callback`, `minSendable`,
    ...) if this plugin owns `username`, else None. First result wins.
    """


PAYMENT_HOOKS = ("on_invoice_paid", "on_payment_sent", "on_payment_failed")
