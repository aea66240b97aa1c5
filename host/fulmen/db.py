"""Database engine, transactions and migrations.

SQLite by default (a file in the data folder), PostgreSQL when DATABASE_URL
is set. Money moves inside `transaction()`: on SQLite that is BEGIN IMMEDIATE,
which takes the write lock up front so concurrent spends queue instead of
failing; on PostgreSQL the conditional UPDATEs in the payment service lock the
rows they touch.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import importlib.util
import io
import logging
import sys
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.apps.migrations.tables import Migration
from piccolo.conf.apps import AppConfig
from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, TransactionType
from piccolo.querystring import QueryString
from piccolo.table import Table

from . import piccolo_conf
from .settings import Settings
from .sqlite_engine import EmbeddedSQLiteEngine

log = logging.getLogger(__name__)

MIGRATION_LOCK_ID = 0x46554C4D  # "FULM": PostgreSQL advisory lock for migrations


def now_ms() -> int:
    return int(time.time() * 1000)


def postgres_config(url: str) -> dict[str, Any]:
    parsed = urlparse(url)
    config: dict[str, Any] = {
        "host": parsed.hostname or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": parsed.username or "postgres",
        "database": (parsed.path or "/postgres").lstrip("/") or "postgres",
    }
    if parsed.password:
        config["password"] = parsed.password
    return config


def make_engine(settings: Settings) -> Engine:
    if settings.uses_postgres:
        return PostgresEngine(config=postgres_config(settings.database_url))
    if settings.database_url.startswith("sqlite:///"):
        path = Path(settings.database_url.removeprefix("sqlite:///"))
    else:
        path = settings.sqlite_path
    from .secret_files import private_dir, private_sqlite

    # The database holds webhook secrets and withdraw links' unique hashes: this user only.
    private_dir(path.parent, tighten=path.parent == settings.data_dir)
    private_sqlite(path)
    return EmbeddedSQLiteEngine(path=str(path))


def bind(engine: Engine, tables: Iterable[type[Table]]) -> None:
    """Point Piccolo (and these tables) at `engine`.

    The only place an engine is configured: nothing is bound at import time,
    so importing `fulmen` (or a plugin) never opens or names a database."""
    piccolo_conf.DB = engine
    Migration._meta.db = engine
    for table in tables:
        table._meta.db = engine


async def _keep_session(connection: Any) -> None:
    """asyncpg resets every connection returned to the pool (one more round
    trip per query). The host keeps no session state on pooled connections
    (the migration lock uses its own connection), so there is nothing to reset."""


async def open_engine(engine: Engine, pool_size: int, min_size: int = 2) -> None:
    if isinstance(engine, PostgresEngine):
        await engine.start_connection_pool(
            min_size=min(min_size, pool_size), max_size=pool_size, reset=_keep_session
        )
        _TURNS[id(engine)] = asyncio.Semaphore(pool_size)
    elif isinstance(engine, EmbeddedSQLiteEngine):
        engine.open()


_TURNS: dict[int, asyncio.Semaphore] = {}  # per open PostgreSQL engine (see `_turn`)


def _turn(engine: PostgresEngine) -> Any:
    """Wait for a pool connection in arrival order. asyncpg's pool gives a
    released connection to whichever task asks next, so under load a task
    that has waited can be overtaken again and again (the slowest requests
    then wait many turns). The host's queries and transactions queue here
    first, on a semaphore as large as the pool (asyncio's is first come,
    first served)."""
    return _TURNS.get(id(engine)) or contextlib.nullcontext()


class NotBound(RuntimeError):
    """A query ran before `bind()` gave the host's engine."""


def bound_engine() -> Engine:
    """The engine `bind()` set; a clear error if the host has not bound one yet."""
    engine = piccolo_conf.DB
    if engine is None:
        raise NotBound("no database is bound: fulmen.db.bind() runs when the host is built")
    return engine


def is_postgres() -> bool:
    return isinstance(piccolo_conf.DB, PostgresEngine)


@functools.lru_cache(maxsize=512)
def _numbered(sql: str) -> str:
    """`{}` placeholders to PostgreSQL's `$1, $2, ...`."""
    parts = sql.split("{}")
    return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))


@functools.lru_cache(maxsize=512)
def _question_marks(sql: str) -> str:
    """`{}` placeholders to SQLite's `?`."""
    return sql.replace("{}", "?")


async def query(sql: str, *args: Any) -> list[dict[str, Any]]:
    """Run SQL with `{}` placeholders on the bound engine (inside the
    current transaction, if any); returns rows as dicts.

    This goes straight to asyncpg (prepared statements are cached per
    connection) or to the embedded SQLite engine: Piccolo's query layer
    costs more than the small statements on the payment path."""
    engine = bound_engine()
    # `type() is`, not isinstance: Piccolo's engines are ABCs, slow to check.
    if type(engine) is EmbeddedSQLiteEngine:
        return await engine.fetch(_question_marks(sql), args)
    if type(engine) is PostgresEngine and engine.pool is not None:
        transaction = engine.current_transaction.get()
        if transaction is not None:
            rows = await transaction.connection.fetch(_numbered(sql), *args)
        else:
            async with _turn(engine), engine.pool.acquire() as connection:
                rows = await connection.fetch(_numbered(sql), *args)
        return [dict(row) for row in rows]
    return await engine.run_querystring(QueryString(sql, *args))


async def close_engine(engine: Engine) -> None:
    if isinstance(engine, PostgresEngine):
        _TURNS.pop(id(engine), None)
        await engine.close_connection_pool()
    elif isinstance(engine, EmbeddedSQLiteEngine):
        await engine.close()


def transaction(engine: Engine | None = None):
    """A write transaction (on the bound engine unless one is given).
    Use for every balance change."""
    engine = engine or bound_engine()
    if isinstance(engine, SQLiteEngine):
        return engine.transaction(transaction_type=TransactionType.immediate)
    if isinstance(engine, PostgresEngine) and engine.current_transaction.get() is None:
        return _postgres_transaction(engine)
    return engine.transaction()  # nested: Piccolo joins the outer transaction


@asynccontextmanager
async def _postgres_transaction(engine: PostgresEngine) -> AsyncIterator[Any]:
    async with _turn(engine), engine.transaction() as tx:
        yield tx


async def run_ddl(script: str) -> None:
    """Run a `;`-separated DDL script, adapting the few dialect differences.

    `{serial}` becomes an auto-increment integer key and `{json}` a JSON
    column. Used by migrations, so the SQL reads the same on both databases.
    """
    engine = bound_engine()
    postgres = isinstance(engine, PostgresEngine)
    script = script.format(
        serial="BIGSERIAL" if postgres else "INTEGER",
        json="JSONB" if postgres else "TEXT",
    )
    for statement in script.split(";"):
        lines = [ln for ln in statement.splitlines() if not ln.strip().startswith("--")]
        sql = "\n".join(lines).strip()
        if sql:
            await engine.run_ddl(sql)


# --- migrations ---------------------------------------------------------------


def _load_migration_modules(app: AppConfig) -> list[Any]:
    folder = Path(app.resolved_migrations_folder_path)
    modules = []
    for path in sorted(folder.glob("*.py")):
        if path.name == "__init__.py":
            continue
        # Keyed by the folder too: two apps of one name in different places
        # (throwaway test plugins) must not share cached migration modules.
        folder_key = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:12]
        name = f"_fulmen_migrations.{app.app_name}_{folder_key}.{path.stem}"
        module = sys.modules.get(name)
        if module is None:
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        if getattr(module, "ID", None):
            modules.append(module)
    return sorted(modules, key=lambda m: m.ID)


def known_migrations(app: AppConfig) -> set[str]:
    """The migration IDs this copy of the app has (applied or not)."""
    return {module.ID for module in _load_migration_modules(app)}


def order_apps(apps: list[AppConfig]) -> list[AppConfig]:
    """Topological order by `migration_dependencies` (given as app names)."""
    by_name = {app.app_name: app for app in apps}
    ordered: list[AppConfig] = []
    visiting: set[str] = set()

    def visit(app: AppConfig) -> None:
        if app in ordered:
            return
        if app.app_name in visiting:
            raise ValueError(f"migration dependency cycle at {app.app_name!r}")
        visiting.add(app.app_name)
        for dep in app.migration_dependencies:
            dep_name = dep.split(".")[0] if dep not in by_name else dep
            if dep_name in by_name:
                visit(by_name[dep_name])
        visiting.discard(app.app_name)
        ordered.append(app)

    for app in apps:
        visit(app)
    return ordered


def ddl_migration(app_name: str, migration_id: str, description: str, ddl: str):
    """The `forwards` of a migration that runs a DDL script (`run_ddl`):
    `forwards = ddl_migration("myplugin", ID, DESCRIPTION, DDL)`."""

    async def forwards() -> MigrationManager:
        manager = MigrationManager(migration_id=migration_id, app_name=app_name, description=description)

        async def run() -> None:
            await run_ddl(ddl)

        manager.add_raw(run)
        return manager

    return forwards


async def applied_migrations(app_name: str | None = None) -> list[dict[str, Any]]:
    query = Migration.select(Migration.app_name, Migration.name, Migration.ran_on)
    if app_name:
        query = query.where(Migration.app_name == app_name)
    return await query.order_by(Migration.id).run()  # type: ignore[attr-defined]


async def migrate_app(app: AppConfig) -> list[str]:
    """Run the app's migrations that have not run yet; returns their IDs."""
    done = {row["name"] for row in await applied_migrations(app.app_name)}
    ran = []
    for module in _load_migration_modules(app):
        if module.ID in done:
            continue
        manager = await module.forwards()
        with contextlib.redirect_stdout(io.StringIO()):  # Piccolo prints progress
            await manager.run()
        await Migration.insert(Migration(name=module.ID, app_name=app.app_name)).run()
        ran.append(module.ID)
        log.info("migration %s %s applied", app.app_name, module.ID)
    return ran


@asynccontextmanager
async def migration_lock(engine: Engine) -> AsyncIterator[None]:
    """Serialise migrations across host processes starting together."""
    if not isinstance(engine, PostgresEngine):
        yield
        return
    import asyncpg

    conn = await asyncpg.connect(**engine.config)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
        yield
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
        await conn.close()


async def ensure_migration_table() -> None:
    await Migration.create_table(if_not_exists=True).run()
