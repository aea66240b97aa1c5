"""The `fulmen` command."""

from __future__ import annotations

import asyncio
import json
import logging
import sys

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
    from .server import HeaderTimeoutProtocol
    uvicorn.run(
        "fulmen.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level.lower(),
        access_log=False,
        http=HeaderTimeoutProtocol,
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
    """Check every wallet's balance against its ledger; exit 1 on a mismatch."""

    async def run(host):
        await host.migrate()
        return await host.wallets.audit()

    mismatches = _with_host(run)
    for row in mismatches:
        click.echo(f"MISMATCH wallet {row['id']}: balance {row['balance_msat']} msat, "
                   f"ledger {row['ledger_msat']} msat")
    if mismatches:
        sys.exit(1)
    click.echo("audit ok: every balance equals its ledger")


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


def build_cli() -> click.Group:
    """The CLI with plugin commands added (`register_commands`)."""
    from .plugins import call_setup_hook, discover, new_plugin_manager, register

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
    build_cli()(prog_name="fulmen")
