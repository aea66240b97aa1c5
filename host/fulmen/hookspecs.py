"""The plugin contract: every hook a Fulmen plugin can implement.

A plugin is a module (or object) with functions marked `@fulmen.hookimpl`,
named after the hooks below and taking any subset of their arguments, by
name. Hooks called while the host serves may be `def` or `async def` (the
host awaits them); the set-up hooks (`register_*`) run before the event loop
starts and must be plain `def`.

Every hook that takes `host` gets a `fulmen.PluginHost` (fulmen/contract.py):
the host's services bound to this plugin. Hooks are called with keyword
arguments only, and only for plugins that are serving (`startup`/`shutdown`
also when a plugin is switched on or off). Unless a hook
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

    from .contract import PaymentFilter, PluginHost
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
def register_routes(host: PluginHost) -> list[Any] | None:
    """Return Litestar route handlers, Controllers or Routers.

    When: once, as the app is built.
    Arguments: `host`, this plugin's `PluginHost`. Handlers can also take
    `host: PluginHost` as a parameter: Litestar injects the same object.
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
def nav_entries(host: PluginHost) -> list[dict[str, str]] | None:
    """Return links for the web UI's navigation: `[{"href", "label"}]`.

    When: on each page render.
    Arguments: `host`.
    Results: every enabled plugin is called; the entries are concatenated,
    each tagged with its plugin id; entries without text `href` and `label`
    are dropped. A plugin's page templates live in its package's `templates/`.
    """


@hookspec
def backup_tables(host: PluginHost) -> dict[str, Any] | None:
    """Say which of the plugin's tables `fulmen backup` leaves out or transforms.

    When: at the start of each backup (`fulmen backup`, `POST /admin/api/v1/backup`),
    for every installed plugin, enabled or not.
    Arguments: `host`.
    Results: every plugin is asked; may be `def` or `async def`. Return
    `{table_name: rule}` for the plugin's own tables only (names starting
    with `<id>_`), where a rule is `"skip"` (the table is left out and is
    empty after a restore) or a function taking a row as a dict and
    returning the row to store (same columns) or None to leave the row out.
    Tables not named are copied whole (the default). A bad answer or an
    exception stops the backup with the plugin's name in the error.
    """


@hookspec
def wallet_export(host: PluginHost, wallet: WalletAuth) -> Any:
    """Contribute the plugin's objects of one wallet to its export.

    When: on `GET /api/v1/wallet/export` (the wallet's admin key).
    Arguments: `host`; `wallet` (the exporting `WalletAuth`).
    Results: every enabled plugin is called; return something JSON-able
    (usually a list of objects, their settings only: no ids, counters,
    balances or secrets), or None for nothing. It appears under
    `plugins.<plugin id>` and comes back, as it is, to `wallet_import` of the
    same plugin on the importing host. An exception is reported in the
    document's `errors` and the other plugins still export.
    """


@hookspec
def wallet_import(host: PluginHost, wallet: WalletAuth, data: Any) -> dict[str, Any] | None:
    """Create the plugin's objects of a wallet export in `wallet`.

    When: on `POST /api/v1/wallet/import` (the receiving wallet's admin key),
    on this or another Fulmen.
    Arguments: `host`; `wallet` (the receiving `WalletAuth`); `data` (what
    this plugin's `wallet_export` returned: check it like any request body).
    Results: every enabled plugin with a section in the document is called;
    return `{"created": [...], "conflicts": [{"object": ..., "problem": ...}]}`.
    Never rename to get round a clash (a name already taken): report a
    conflict and leave that object out. `fulmen.import_objects` does the
    loop. A `FulmenError` or any other exception is reported as a conflict
    of the whole section; the other plugins still import.
    """


@hookspec
def wallet_actions(host: PluginHost, wallet_id: str) -> list[dict[str, str]] | None:
    """Return buttons for a wallet's page in the web UI: `[{"href", "label"}]`.

    When: each time a signed-in user opens one of their wallets.
    Arguments: `host`, `wallet_id` (a wallet of the signed-in account).
    Results: every enabled plugin is called; entries without text `href`
    (a path on this site, starting with `/`) and `label` are dropped.
    """


# --- lifecycle ------------------------------------------------------------------


@hookspec
def startup(host: PluginHost) -> None:
    """The plugin starts: start background tasks here with `host.spawn(...)`.

    When: once after migrations, before the host serves; again when the
    plugin is enabled at runtime (in every host process, within 2 s).
    Arguments: `host`.
    Results: none. An exception quarantines the plugin (state `failed`,
    error in the admin API and the log), or stops the host when
    FULMEN_PLUGINS_STRICT is set.
    """


@hookspec
def shutdown(host: PluginHost) -> None:
    """The plugin stops: release what `startup` took.

    When: once when the host stops, and when the plugin is disabled at
    runtime (in every host process). Tasks from `host.spawn` are cancelled
    at host stop, not at disable: check `host.is_enabled()` in loops.
    Arguments: `host`.
    Results: none; an exception is logged and recorded.
    """


# --- before money moves: may refuse -----------------------------------------------


@hookspec
def before_invoice_created(host: PluginHost, wallet: WalletAuth, request: InvoiceRequest) -> None:
    """An invoice is about to be created.

    When: inside the request, before the funding source is asked; keep it quick.
    Arguments: `host`; `wallet` (the caller's `WalletAuth`); `request`
    (`InvoiceRequest`: may change `request.extra` or `request.memo`).
    Results: every enabled plugin is called. Raise `fulmen.InvoiceRejected`
    to refuse: the caller gets a 400 with its message.
    """


@hookspec
def before_payment_sent(host: PluginHost, wallet: WalletAuth, invoice: InvoiceInfo) -> None:
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
# plugin that only cares about some payments should say so with `payment_filter`.


@hookspec
def payment_filter() -> PaymentFilter | None:
    """Say which payments this plugin's payment hooks (below) are sent.

    When: once, as the host is built; plain `def` only.
    Arguments: none.
    Results: a `fulmen.PaymentFilter`: `tags` (only payments whose `tag` is
    in the set) and/or `watched_wallets_only` (only wallets the plugin
    watches, set with `await host.watch_wallet(wallet_id, True/False)` in the
    transaction that changes the plugin's own record of the wallet). None,
    or no implementation: every payment.
    """


@hookspec
def on_invoice_paid(host: PluginHost, payment: Payment) -> None:
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
def on_payment_sent(host: PluginHost, payment: Payment) -> None:
    """An outgoing payment succeeded.

    When and how: the same delivery rules as `on_invoice_paid`.
    Arguments: `host`; `payment` (outgoing: `payment.out` is true,
    `payment.amount_msat` negative, `payment.fee_msat` the fee paid).
    Results: every enabled plugin is called; the result is ignored.
    """


@hookspec
def on_payment_failed(host: PluginHost, payment: Payment) -> None:
    """An outgoing payment failed and its funds went back to the wallet.

    When and how: the same delivery rules as `on_invoice_paid`.
    Arguments: `host`; `payment` (`payment.status` is "failed",
    `payment.error` says why).
    Results: every enabled plugin is called; the result is ignored.
    """


# --- questions with one answer -----------------------------------------------------


@hookspec(firstresult=True)
def resolve_lightning_address(host: PluginHost, username: str, base_url: str) -> dict[str, Any] | None:
    """Answer `GET /.well-known/lnurlp/{username}` (LUD-16).

    When: on each such request.
    Arguments: `host`; `username` (lower-cased); `base_url` (the host's
    public URL, for the callback).
    Results: First result wins: return the LNURL-pay response (a dict with
    `callback`, `minSendable`, ...) if this plugin owns `username`, else None.
    """


PAYMENT_HOOKS = ("on_invoice_paid", "on_payment_sent", "on_payment_failed")
