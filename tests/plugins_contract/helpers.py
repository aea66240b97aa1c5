"""Helpers for throwaway plugins in the contract tests."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from piccolo.columns import BigInt, Text
from piccolo.conf.apps import AppConfig
from piccolo.table import Table

MIGRATION = '''
from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from fulmen import run_ddl

ID = "{mid}"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="{app}")

    async def run():
        await run_ddl("""{ddl}""")

    manager.add_raw(run)
    return manager
'''


def make_app(folder: Path, app_name: str, table: str, depends: list[str] | None = None,
             ddl: str | None = None, mid: str = "2026-01-01T00:00:00:000000") -> AppConfig:
    """A Piccolo app with one table and one migration, written to `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    ddl = ddl or f"CREATE TABLE {table} (id VARCHAR(32) PRIMARY KEY, note TEXT NOT NULL)"
    name = f"{app_name}_{mid.replace('-', '_').replace(':', '_').lower()}.py"
    (folder / name).write_text(MIGRATION.format(mid=mid, app=app_name, ddl=ddl))
    cls = type(f"T_{table}", (Table,), {"id": Text(primary_key=True), "note": Text(),
                                         "created": BigInt(null=True)}, tablename=table)
    return AppConfig(app_name=app_name, migrations_folder_path=str(folder), table_classes=[cls],
                     migration_dependencies=depends if depends is not None else ["fulmen"])


class LogRecorder(logging.Handler):
    """Collects the host's log records (independent of other log set-up)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


async def eventually(check, timeout: float = 5.0, interval: float = 0.05):
    """Poll an async or sync check until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
