"""The host as a Piccolo app: its tables and migrations."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from .tables import CORE_TABLES

APP_CONFIG = AppConfig(
    app_name="fulmen",
    migrations_folder_path=str(Path(__file__).parent / "migrations"),
    table_classes=CORE_TABLES,
    migration_dependencies=[],
)
