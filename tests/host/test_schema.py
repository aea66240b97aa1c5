"""The declared schema (Piccolo Table classes) matches the migrated database.

The host's `fulmen.tables`, every first-party plugin's `register_apps`
tables and the rendered plugin template's are compared, table by table,
with the catalog of a freshly migrated SQLite and PostgreSQL database:
table names, column names, a coarse type family (integer/bigint/text/bool/
json/real, with VARCHAR lengths), nullability.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

import pytest
from fulmen import db, piccolo_conf, tables
from fulmen.piccolo_app import APP_CONFIG as CORE_APP
from fulmen.scaffold import render
from fulmen.settings import Settings
from piccolo.columns import (
    JSON,
    BigInt,
    BigSerial,
    Boolean,
    Column,
    DoublePrecision,
    Integer,
    Real,
    Serial,
    Text,
    Varchar,
)
from piccolo.conf.apps import AppConfig
from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

PLUGINS_DIR = Path(__file__).resolve().parents[2] / "plugins"
#: Piccolo's own bookkeeping table, created by `db.ensure_migration_table()`
PICCOLO_TABLES = {"migration"}


@dataclass(frozen=True)
class ColumnShape:
    family: str  # integer | bigint | text | bool | json | real
    length: int | None  # VARCHAR(n); None for unbounded text and non-text
    nullable: bool

    def __str__(self) -> str:
        size = f"({self.length})" if self.length is not None else ""
        return f"{self.family}{size} {'NULL' if self.nullable else 'NOT NULL'}"


Shapes = dict[str, dict[str, ColumnShape]]


def fold(family: str, postgres: bool) -> str:
    """What a dialect can tell apart: SQLite stores JSON as TEXT and has one
    INTEGER type (BIGSERIAL is INTEGER there)."""
    if postgres:
        return family
    return {"bigint": "integer", "json": "text"}.get(family, family)


def declared_family(column: Column) -> tuple[str, int | None]:
    # Subclasses first: BigInt is an Integer, BigSerial a Serial, JSONB a JSON.
    if isinstance(column, (BigInt, BigSerial)):
        return "bigint", None
    if isinstance(column, (Integer, Serial)):
        return "integer", None
    if isinstance(column, Varchar):
        return "text", column.length
    if isinstance(column, Text):
        return "text", None
    if isinstance(column, Boolean):
        return "bool", None
    if isinstance(column, JSON):
        return "json", None
    if isinstance(column, (DoublePrecision, Real)):
        return "real", None
    raise AssertionError(f"no type family for {type(column).__name__} column {column._meta.name}")


def declared_shapes(table_classes: Iterable[type[Table]], postgres: bool) -> Shapes:
    shapes: Shapes = {}
    for table in table_classes:
        columns: dict[str, ColumnShape] = {}
        for column in table._meta.columns:
            family, length = declared_family(column)
            columns[column._meta.db_column_name] = ColumnShape(
                fold(family, postgres), length, bool(column._meta.null)
            )
        shapes[table._meta.tablename] = columns
    return shapes


def catalog_family(sql_type: str) -> tuple[str, int | None]:
    """A column type as SQLite's `pragma_table_info` or PostgreSQL's
    `information_schema.columns.data_type` spells it."""
    t = sql_type.lower().strip()
    length = re.search(r"\((\d+)\)", t)
    base = re.sub(r"\(.*\)", "", t).strip()
    if base in ("bigint", "int8", "bigserial"):
        return "bigint", None
    if "int" in base or "serial" in base:
        return "integer", None
    if base in ("varchar", "character varying"):
        return "text", int(length.group(1)) if length else None
    if base == "text":
        return "text", None
    if base in ("boolean", "bool"):
        return "bool", None
    if base in ("json", "jsonb"):
        return "json", None
    if base in ("double precision", "real", "float", "float8", "float4"):
        return "real", None
    raise AssertionError(f"no type family for SQL type {sql_type!r}")


async def catalog_shapes(engine: Engine) -> Shapes:
    """The migrated database's tables and columns, read from its catalog
    (without Piccolo's own `migration` table)."""
    shapes: Shapes = {}
    if isinstance(engine, PostgresEngine):
        rows = await db.query(
            "SELECT c.table_name, c.column_name, c.data_type, c.character_maximum_length, "
            "c.is_nullable FROM information_schema.columns c "
            "JOIN information_schema.tables t ON t.table_schema = c.table_schema "
            "AND t.table_name = c.table_name "
            "WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'"
        )
        for row in rows:
            if row["table_name"] in PICCOLO_TABLES:
                continue
            family, _ = catalog_family(row["data_type"])
            shapes.setdefault(row["table_name"], {})[row["column_name"]] = ColumnShape(
                family, row["character_maximum_length"], row["is_nullable"] == "YES"
            )
        return shapes
    names = await db.query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )
    for name in (r["name"] for r in names if r["name"] not in PICCOLO_TABLES):
        columns: dict[str, ColumnShape] = {}
        for row in await db.query("SELECT * FROM pragma_table_info({})", name):
            family, length = catalog_family(row["type"])
            # SQLite lets a non-INTEGER PRIMARY KEY hold NULL unless NOT NULL is
            # written; the schema never stores one there, so a key is NOT NULL.
            nullable = not row["notnull"] and not row["pk"]
            columns[row["name"]] = ColumnShape(fold(family, False), length, nullable)
        shapes[name] = columns
    return shapes


def schema_differences(declared: Shapes, migrated: Shapes) -> list[str]:
    """Every way the declared tables and the migrated database disagree."""
    problems: list[str] = []
    for name in sorted(set(migrated) - set(declared)):
        problems.append(f"{name}: created by a migration but declared by no Table class")
    for name in sorted(set(declared) - set(migrated)):
        problems.append(f"{name}: declared by a Table class but created by no migration")
    for name in sorted(set(declared) & set(migrated)):
        want, have = declared[name], migrated[name]
        for column in sorted(set(have) - set(want)):
            problems.append(f"{name}.{column}: in the database, missing from the Table class")
        for column in sorted(set(want) - set(have)):
            problems.append(f"{name}.{column}: in the Table class, missing from the database")
        for column in sorted(set(want) & set(have)):
            if want[column] != have[column]:
                problems.append(
                    f"{name}.{column}: Table class says {want[column]}, database has {have[column]}"
                )
    return problems


def first_party_plugins() -> dict[str, ModuleType]:
    """The plugins in this repository's plugins/ folder, loaded through their
    `fulmen.plugins` entry points (as the host finds them)."""
    ids = sorted(p.name for p in PLUGINS_DIR.iterdir() if (p / "pyproject.toml").exists())
    found = {ep.name: ep for ep in entry_points(group="fulmen.plugins")}
    assert set(ids) <= set(found), f"plugins not installed: {sorted(set(ids) - set(found))}"
    return {plugin_id: found[plugin_id].load() for plugin_id in ids}


TEMPLATE_PLUGIN = "schema_probe"


def template_app(parent: Path) -> AppConfig:
    """The plugin template's app, rendered as `fulmen plugin new` renders it."""
    name = f"fulmen_{TEMPLATE_PLUGIN}"
    if name not in sys.modules:
        folder = render(TEMPLATE_PLUGIN, parent)
        sys.path.insert(0, str(folder))
        try:
            importlib.import_module(name)
        finally:
            sys.path.remove(str(folder))
    app: AppConfig = importlib.import_module(f"{name}.piccolo_app").APP_CONFIG
    return app


def plugin_apps(module: ModuleType) -> list[AppConfig]:
    apps = module.register_apps()
    return [a for a in (apps if isinstance(apps, list) else [apps]) if a]


def table_classes_in(module: ModuleType) -> set[type[Table]]:
    return {
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, Table)
        and value.__module__ == module.__name__
    }


@dataclass
class Migrated:
    engine: Engine
    postgres: bool
    apps: list[AppConfig]

    def declared(self, extra: Iterable[type[Table]] = ()) -> Shapes:
        classes = [t for app in self.apps for t in app.table_classes] + list(extra)
        return declared_shapes(classes, self.postgres)


@pytest.fixture
async def migrated(database: str, tmp_path: Path) -> AsyncIterator[Migrated]:
    """A fresh database with the host's and every first-party plugin's
    migrations applied (the way `Host.migrate` applies them)."""
    settings = Settings(database_url=database, data_dir=tmp_path / "data")
    engine = db.make_engine(settings)
    apps = [CORE_APP] + [a for m in first_party_plugins().values() for a in plugin_apps(m)]
    apps.append(template_app(tmp_path / "template"))
    previous = piccolo_conf.DB
    db.bind(engine, [t for app in apps for t in app.table_classes])
    await db.open_engine(engine, pool_size=2, min_size=1)
    try:
        await db.ensure_migration_table()
        await db.migrate_app(CORE_APP)
        for app in db.order_apps(apps[1:]):
            await db.migrate_app(app)
        yield Migrated(engine, isinstance(engine, PostgresEngine), apps)
    finally:
        await db.close_engine(engine)
        piccolo_conf.DB = previous


async def test_declared_tables_match_the_migrated_database(migrated: Migrated) -> None:
    catalog = await catalog_shapes(migrated.engine)
    assert "fulmen_payment" in catalog  # the catalog was read at all
    assert schema_differences(migrated.declared(), catalog) == []


def test_every_table_class_is_registered() -> None:
    """CORE_TABLES and each plugin app list every Table class their module declares."""
    assert table_classes_in(tables) == set(tables.CORE_TABLES)
    assert len(tables.CORE_TABLES) == len(set(tables.CORE_TABLES))
    for plugin_id, module in first_party_plugins().items():
        registered = {t for app in plugin_apps(module) for t in app.table_classes}
        table_module = importlib.import_module(f"{module.__name__}.tables")
        assert table_classes_in(table_module) == registered, plugin_id


class WrongWallet(Table, tablename="fulmen_wallet"):
    """fulmen_wallet as a careless edit would declare it."""

    id = Varchar(length=32, primary_key=True)
    account_id = Varchar(length=64)  # length differs
    name = Text(null=True)  # nullability differs
    currency = Varchar(length=8, null=True)
    balance_msat = Text()  # type differs
    event_seq = BigInt()
    webhook_endpoints = Integer()
    deleted = Boolean()
    created_at = BigInt()
    archived = Boolean()  # no migration adds it


class NeverMigrated(Table, tablename="fulmen_never_migrated"):
    id = Varchar(length=32, primary_key=True)


async def test_a_table_class_that_disagrees_with_the_migrations_is_reported(
    migrated: Migrated,
) -> None:
    catalog = await catalog_shapes(migrated.engine)
    declared = migrated.declared()
    declared.update(declared_shapes([WrongWallet, NeverMigrated], migrated.postgres))
    del declared["fulmen_plugin_state"]
    assert sorted(schema_differences(declared, catalog)) == sorted([
        "fulmen_never_migrated: declared by a Table class but created by no migration",
        "fulmen_plugin_state: created by a migration but declared by no Table class",
        "fulmen_wallet.account_id: Table class says text(64) NOT NULL, "
        "database has text(32) NOT NULL",
        "fulmen_wallet.archived: in the Table class, missing from the database",
        "fulmen_wallet.balance_msat: Table class says text NOT NULL, database has "
        + ("bigint" if migrated.postgres else "integer") + " NOT NULL",
        "fulmen_wallet.name: Table class says text NULL, database has text NOT NULL",
    ])


def test_a_column_missing_from_a_table_class_is_reported() -> None:
    declared: Shapes = {"t": {"a": ColumnShape("integer", None, False)}}
    migrated: Shapes = {"t": {"a": ColumnShape("integer", None, False),
                              "b": ColumnShape("text", None, True)}}
    assert schema_differences(declared, migrated) == [
        "t.b: in the database, missing from the Table class"
    ]


def test_catalog_types_map_to_families() -> None:
    assert catalog_family("VARCHAR(32)") == ("text", 32)
    assert catalog_family("character varying") == ("text", None)
    assert catalog_family("BIGINT") == ("bigint", None)
    assert catalog_family("INTEGER") == ("integer", None)
    assert catalog_family("jsonb") == ("json", None)
    assert catalog_family("DOUBLE PRECISION") == ("real", None)
    with pytest.raises(AssertionError):
        catalog_family("BLOB")


def test_the_host_binds_no_engine_at_import() -> None:
    """Importing fulmen configures no database: a fresh interpreter sees
    piccolo_conf.DB as None and a query fails with NotBound."""
    import subprocess
    import sys

    code = (
        "import asyncio, fulmen, fulmen.tables, fulmen.piccolo_conf as c, fulmen.db as d\n"
        "assert c.DB is None, c.DB\n"
        "try:\n"
        "    asyncio.run(d.query('SELECT 1'))\n"
        "except d.NotBound as e:\n"
        "    print('not bound:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("not bound: no database is bound"), out.stdout
