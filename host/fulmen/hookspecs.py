"""The plugin contract: every hook a Fulmen plugin can implement.

A plugin is a module (or object) with functions marked `@fulmen.hookimpl`,
named after the hooks below and taking any subset of their arguments, by
name. Hooks called while the host serves may be `def` or `async def` (the
host awaits them); the set-up hooks (`register_*`) run before the event loop
starts and must be plain `def`.

Hooks are called with keyword arguments only, and only for enabled plugins
(`startup`/`shutdown` also when a plugin is switched on or off). Unless a hook
says "First result wins", every enabled plugin's implementation is called and
the results are collected; the order between plugins is unspecified, so no
hook may depend on it. An exception in one plugin is logged and recorded as
that plugin's last error, and never stops the other plugins, a payment or a
response; only the refusals named in the `before_*` hooks reach the caller.
docs/plugins.md has an example of each hook.
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


# --- set-up: called once when the host starts (plain def only) ---------------------


@hookspec
def register_apps() -> AppConfig | list[AppConfig] | None:
    """Return the plugin's Piccolo app(s): tables and migrations.

    When: once, as the host is built, before migrations run.
    Arguments: none.
    Results: every plugin is asked; plain `def` only.

    The host runs its own migrations, then those of each enabled plugin
    (a plugin enabled later is migrated then), ordered by the apps'
    `migration_dependencies` (list "fulmen" there, and any plugin app you
    reference). The app name is the plugin id (or starts with `<id>_`) and
    every table name starts with `<id>_`; a plugin breaking that rule, or
    whose migration fails, is quarantined.
    """


@hookspec
def register_routes(host: Host) -> list[Any] | None:
    """Return Litestar route handlers, Controllers or Routers.

    When: once, as the app is built.
    Arguments: `host`, the running host's services.
    Results: every plugin is asked; plain `def` only.

    They are mounted under `/{plugin_id}`, so a handler at `/api/v1/links`
    answers at `/lnurlp/api/v1/links`. While the plugin is disabled they
    answer 404.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to the `fulmen` command line.

    When: each time the CLI is built (every `fulmen ...` invocation).
    Arguments: `cli`, the root click group; use `@cli.command()`.
    Results: every plugin is called; plain `def` only.
    """


@hookspec
def register_hookspecs() -> Any:
    """Declare hooks of this plugin's own, for other plugins to implement.

    When: once, as the plugin is registered, before any of its hooks is called.
    Arguments: none.
    Results: a module (or a list of modules) of functions marked
    `@fulmen.hookspec`; the host adds them to the hook contract. Plain `def` only.

    The declaring plugin calls them with `await host.hooks.call_plugins(name,
    ...)`: only enabled plugins, `async def` awaited, one plugin's exception
    contained, and a `fulmen.FulmenError` passed through only with
    `may_refuse=True`. A plugin implementing another plugin's hook marks it
    `@hookimpl(optionalhook=True)`, so it still loads when that plugin is not
    installed. Name such hooks `<plugin id>_<what>` so they never collide.
    """


@hookspec
def nav_entries(host: Host) -> list[dict[str, str]] | None:
    """Return links for the web UI's navigation: `[{"href", "label"}]`.

    When: on each page render (`host.hooks.nav_entries()`).
    Arguments: `host`.
    Results: every enabled plugin is called; the entries are concatenated,
    each tagged with its plugin id; entries without text `href` and `label`
    are dropped. A plugin's page templates live in its package's `templates/`.
    """


# --- lifecycle ------------------------------------------------------------------


@hookspec
def startup(host: Host) -> None:
    """The plugin starts: start background tasks here with `host.spawn(...)`.

    When: once after migrations, before the host serves; again when the
    plugin is enabled at runtime (in every host process, within 2 s).
    Arguments: `host`.
    Results: none. An exception quarantines the plugin (state `failed`,
    error in the admin API and the log), or stops the host when
    FULMEN_PLUGINS_STRICT is set.
    """


@hookspec
def shutdown(host: Host) -> None:
    """The plugin stops: release what `startup` took.

    When: once when the host stops, and when the plugin is disabled at
    runtime (in every host process). Tasks from `host.spawn` are cancelled
    at host stop, not at disable: check `host.is_plugin_enabled(id)` in loops.
    Arguments: `host`.
    Results: none; an exception is logged and recorded.
    """


# --- before money moves: may refuse -----------------------------------------------


@hookspec
def before_invoice_created(host: Host, wallet: WalletAuth, request: InvoiceRequest) -> None:
    """An invoice is about to be created.

    When: inside the request, before the funding source is asked; keep it quick.
    Arguments: `host`; `wallet` (the caller's `WalletAuth`); `request`
    (`InvoiceRequest`: may change `request.extra` or `request.memo`).
    Results: every enabled plugin is called. Raise `fulmen.InvoiceRejected`
    to refuse: the caller gets a 400 with its message.
    """


@hookspec
def before_payment_sent(host: Host, wallet: WalletAuth, invoice: InvoiceInfo) -> None:
    """An outgoing payment is about to reserve funds.

    When: inside the request, after the invoice is decoded and before
    anything is debited.
    Arguments: `host`; `wallet` (the payer's `WalletAuth`); `invoice`
    (`InvoiceInfo`: amount, payee, whether it is internal).
    Results: every enabled plugin is called. Raise `fulmen.PaymentRejected`
    to refuse (spending limits, allow-lists): the caller gets a 403 with its
    message.
    """


# --- after money moved: durable, exactly once per payment per plugin -----------------
#
# Each call is recorded in the payment's transaction, one row per plugin, so a
# plugin that only cares about some payments should say so, at module level:
# - `payment_tags = {"mytag"}`: only payments whose `tag` is in the set;
# - `watch_wallets = True`: only payments of wallets the plugin watches, set
#   with `await host.hooks.watch_wallet(plugin_id, wallet_id, True/False)`
#   (in the transaction that changes the plugin's own record of the wallet).
# Both may be given (a payment must pass both). Without them, every payment
# is delivered.


@hookspec
def on_invoice_paid(host: Host, payment: Payment) -> None:
    """An incoming payment was credited (internal or from the network).

    When: after the payment commits, once per payment for each plugin that
    was enabled at that moment, also with several host processes and across
    restarts: a delivery row is written in the payment's own transaction,
    claimed by one process (a lease it renews while the hook runs) and
    retried with backoff (2 s doubling, up to 1 h, 20 tries) while the hook
    raises. Progress is visible at `GET /admin/api/v1/hook-deliveries`. If a
    process dies while the hook runs, another repeats the call after the
    lease (10 s): make effects idempotent by keying them on `payment.id`.
    Arguments: `host`; `payment` (`fulmen.Payment`; filter on `payment.tag`
    or `payment.extra`).
    Results: every enabled plugin is called; the result is ignored.
    """


@hookspec
def on_payment_sent(host: Host, payment: Payment) -> None:
    """An outgoing payment succeeded.

    When and how: the same delivery rules as `on_invoice_paid`.
    Arguments: `host`; `payment` (outgoing: `payment.out` is true,
    `payment.amount_msat` negative, `payment.fee_msat` the fee paid).
    Results: every enabled plugin is called; the result is ignored.
    """


@hookspec
def on_payment_failed(host: Host, payment: Payment) -> None:
    """An outgoing payment failed and its funds went back to the wallet.

    When and how: the same delivery rules as `on_invoice_paid`.
    Arguments: `host`; `payment` (`payment.status` is "failed",
    `payment.error` says why).
    Results: every enabled plugin is called; the result is ignored.
    """


# --- questions with one answer -----------------------------------------------------


@hookspec(firstresult=True)
def resolve_lightning_address(host: Host, username: str, base_url: str) -> dict[str, Any] | None:
    """Answer `GET /.well-known/lnurlp/{username}` (LUD-16).

    When: on each such request.
    Arguments: `host`; `username` (lower-cased); `base_url` (the host's
    public URL, for the callback).
    Results: First result wins: return the LNURL-pay response (a dict with
    `callback`, `minSendable`, ...) if this plugin owns `username`, else None.
    """


PAYMENT_HOOKS = ("on_invoice_paid", "on_payment_sent", "on_payment_failed")
