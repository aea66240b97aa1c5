"""The `fulmen` command."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path

import click

from .settings import Settings
from .version import __version__


@click.group()
def cli() -> None:
    """Fulmen: a Lightning wallet and accounts host."""


@cli.command()
@click.option("--host", default=None, help="Interface to bind (FULMEN_HOST, default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (FULMEN_PORT, default 5001).")
@click.option("--workers", default=1, type=int, help="Processes sharing the port (PostgreSQL only).")
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Start the server."""
    import uvicorn

    settings = Settings()
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = settings.model_copy(update=overrides)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if workers > 1 and not settings.uses_postgres:
        raise click.UsageError("--workers above 1 needs PostgreSQL (DATABASE_URL)")
    import os

    os.environ["FULMEN_HOST"], os.environ["FULMEN_PORT"] = settings.host, str(settings.port)
    os.environ["FULMEN_HEADER_TIMEOUT"] = str(settings.header_timeout)
    from . import server, supervisor

    if workers == 1:  # follows plugin installs, upgrades and uninstalls (fulmen/supervisor.py)
        sys.exit(supervisor.serve(settings))
    uvicorn.run(
        "fulmen.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level.lower(),
        access_log=False,
        http=server.HeaderTimeoutProtocol,
        timeout_keep_alive=settings.keep_alive_timeout,
        timeout_graceful_shutdown=8,
        lifespan="on",
    )


def _with_host(fn):
    """Run `fn(host)` against the configured database, without serving."""
    from . import db
    from .host import Host

    async def run():
        host = Host(Settings())
        await db.open_engine(host.engine, 2)
        try:
            return await fn(host)
        finally:
            await db.close_engine(host.engine)

    return asyncio.run(run())


@cli.command()
def migrate() -> None:
    """Run pending migrations of the host and its plugins."""

    async def run(host):
        return await host.migrate()

    for app, ran in _with_host(run).items():
        click.echo(f"{app}: {len(ran)} applied")


@cli.command()
def audit() -> None:
    """Check every wallet's balance against its ledger and its payment
    history; exit 1 on a mismatch."""
    from .audit import run_audit

    async def run(host):
        await host.migrate()
        return await run_audit(host.settings)

    report = _with_host(run)
    click.echo(f"database: {report['database']}")
    click.echo(f"checked {report['wallets']} wallets, {report['ledger_entries']} ledger entries, "
               f"{report['payments']} payments")
    for row in report["mismatches"]:
        click.echo(f"MISMATCH wallet {row['id']}: balance {row['balance_msat']} msat, "
                   f"ledger {row['ledger_msat']} msat, history {row['history_msat']} msat")
    if report["mismatches"]:
        sys.exit(1)
    click.echo("audit ok: every balance equals its ledger and its payment history")


def _passphrase(passphrase_file: str | None, ask: bool, confirm: bool) -> str | None:
    import os

    if passphrase_file:
        text = Path(passphrase_file).read_text().rstrip("\n")
        if not text:
            raise click.UsageError(f"{passphrase_file} is empty")
        return text
    if os.environ.get("FULMEN_BACKUP_PASSPHRASE"):
        return os.environ["FULMEN_BACKUP_PASSPHRASE"]
    if ask:
        return click.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm)
    return None


@cli.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--encrypt", is_flag=True,
              help="Encrypt with a passphrase (asked for, or FULMEN_BACKUP_PASSPHRASE).")
@click.option("--passphrase-file", type=click.Path(exists=True, dir_okay=False),
              help="Encrypt with the passphrase in this file.")
@click.option("--include-secrets", is_flag=True,
              help="Also store the node key and admin key files of the data folder.")
def backup(file: str | None, encrypt: bool, passphrase_file: str | None,
           include_secrets: bool) -> None:
    """Write a consistent backup of the database while the server runs."""
    from .backup import BackupError, write_backup

    path = Path(file or time.strftime("fulmen-backup-%Y%m%dT%H%M%SZ.fulmen", time.gmtime()))
    passphrase = _passphrase(passphrase_file, encrypt, confirm=True)
    if include_secrets and not passphrase:
        click.echo("warning: the secret files are stored unencrypted; keep the file safe",
                   err=True)

    async def run(host):
        return await write_backup(host, path, passphrase, include_secrets)

    started = time.monotonic()
    try:
        summary = _with_host(run)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    rows = sum(t["rows"] for t in summary.tables.values())
    click.echo(f"wrote {path}: {len(summary.tables)} tables, {rows} rows, {summary.bytes} bytes"
               f"{', encrypted' if passphrase else ''} in {time.monotonic() - started:.1f}s")


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--passphrase-file", type=click.Path(exists=True, dir_okay=False),
              help="The passphrase of an encrypted backup, from this file.")
@click.option("--skip-plugin", "skip_plugins", multiple=True,
              help="Leave out this plugin's data (for a plugin not installed here); repeatable.")
@click.option("--skip-missing-plugins", is_flag=True,
              help="Leave out the data of every plugin not installed here.")
@click.option("--restore-secrets", is_flag=True,
              help="Write the backup's node key and admin key files into the data folder.")
def restore(file: str, passphrase_file: str | None, skip_plugins: tuple[str, ...],
            skip_missing_plugins: bool, restore_secrets: bool) -> None:
    """Restore a backup into an empty database (SQLite or PostgreSQL)."""
    from . import backup as backups

    path = Path(file)
    passphrase = _passphrase(passphrase_file, False, confirm=False)
    with open(path, "rb") as f:
        encrypted = f.read(len(backups.ENC_MAGIC)) == backups.ENC_MAGIC
    if encrypted and not passphrase:
        passphrase = click.prompt("Passphrase", hide_input=True)

    async def run(host):
        return await backups.restore(host, path, passphrase, set(skip_plugins),
                                     skip_missing_plugins, restore_secrets)

    started = time.monotonic()
    try:
        report = _with_host(run)
    except backups.BackupError as exc:
        raise click.ClickException(f"restore refused, no data was written: {exc}") from None
    for line in report.lines():
        click.echo(line)
    click.echo(f"restored in {time.monotonic() - started:.1f}s")
    if report.audit_mismatches:
        sys.exit(1)


@cli.command()
def version() -> None:
    """Print the version."""
    click.echo(__version__)


@cli.command("create-account")
@click.option("--name", default="", help="Account name.")
def create_account(name: str) -> None:
    """Create an account and its first wallet; prints the keys as JSON."""

    async def run(host):
        await host.migrate()
        _, token, wallet = await host.wallets.create_account(name)
        return {**wallet.to_lnbits(), "access_token": token}

    click.echo(json.dumps(_with_host(run), indent=2))


from .scaffold import plugin  # noqa: E402

cli.add_command(plugin)


def _report(result: dict) -> None:
    for plugin_id, version in sorted(result["installed"].items()):
        click.echo(f"installed plugin {plugin_id} {version}")
    for plugin_id, change in sorted(result["upgraded"].items()):
        click.echo(f"upgraded plugin {plugin_id} {change['from']} -> {change['to']}")
    for plugin_id in result["removed"]:
        click.echo(f"removed plugin {plugin_id}")
    if not any(result[k] for k in ("installed", "upgraded", "removed")):
        click.echo(f"{result['distribution']}: no plugin changed")
    else:
        click.echo("a running server follows within a few seconds (no restart needed)")


def _install(spec: str, upgrade: bool) -> None:
    from .plugins import installer as inst

    try:
        result = asyncio.run(inst.install(inst.Installer(Settings()), spec, upgrade))
    except (inst.InstallRefused, inst.InstallFailed) as exc:
        raise click.ClickException(str(exc)) from None
    _report(result)


@plugin.command("install")
@click.argument("spec")
def plugin_install(spec: str) -> None:
    """Install a plugin into this host's environment: SPEC is a wheel or
    project folder (inside FULMEN_PLUGIN_INSTALL_PATHS) or a requirement."""
    _install(spec, upgrade=False)


@plugin.command("upgrade")
@click.argument("spec")
def plugin_upgrade(spec: str) -> None:
    """Upgrade an installed plugin to SPEC (a newer wheel or a requirement)."""
    _install(spec, upgrade=True)


@plugin.command("uninstall")
@click.argument("plugin_id")
@click.option("--drop-data", is_flag=True, help="Also drop the plugin's tables (kept by default).")
def plugin_uninstall(plugin_id: str, drop_data: bool) -> None:
    """Uninstall the plugin PLUGIN_ID; its data stays unless --drop-data."""
    from .plugins import installer as inst

    installer = inst.Installer(Settings())
    try:
        distribution = inst.uninstall_target(installer, plugin_id)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    except inst.InstallRefused as exc:
        raise click.ClickException(str(exc)) from None

    async def run(host):
        if plugin_id not in host.plugins:
            raise click.ClickException(f"plugin {plugin_id!r} is not loaded here (FULMEN_PLUGINS?)")
        before = inst.installed_plugins()
        await installer.run(installer.uninstall_argv(distribution))
        # Tables go once no server process serves the plugin (each restarts without it).
        still = await host.processes.wait_not_served(plugin_id, timeout=60)
        if still:
            click.echo(f"warning: still served by {', '.join(still)}; dropping anyway", err=True)
        return inst.changes(before, inst.installed_plugins()), await inst.drop_data(host.plugins[plugin_id])

    try:
        if drop_data:  # the tables are named by the plugin's code: read them before it goes
            result, dropped = _with_host(run)
        else:
            before = inst.installed_plugins()
            installer.run_sync(installer.uninstall_argv(distribution))
            result, dropped = inst.changes(before, inst.installed_plugins()), []
    except inst.InstallFailed as exc:
        raise click.ClickException(str(exc)) from None
    _report({"distribution": distribution, **result})
    click.echo(f"dropped tables: {', '.join(dropped)}" if drop_data
               else "its data is kept (--drop-data removes it)")


def build_cli() -> click.Group:
    """The CLI with plugin commands added (`register_commands`)."""
    from .plugins import call_setup_hook, discover
    from .plugins.discovery import new_plugin_manager, register

    pm = new_plugin_manager()
    for info in discover(Settings().plugin_allow_list()):
        if info.usable:
            register(pm, info)
        if not info.usable:
            continue
        try:  # one broken plugin must not take every command down with it
            call_setup_hook(pm, info, "register_commands", cli=cli)
        except Exception as exc:
            logging.getLogger(__name__).error("plugin %s: register_commands failed: %r", info.id, exc)
    return cli


def main() -> None:
    from .vault import VaultUnavailable

    try:
        build_cli()(prog_name="fulmen")
    except VaultUnavailable as exc:
        click.echo(f"fulmen: cannot start: {exc}", err=True)
        sys.exit(2)
