"""The plugin as a Piccolo app: its migrations (the tables are used through SQL)."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

APP_CONFIG = AppConfig(
    app_name="nostrzaps",
    migrations_folder_path=str(Path(__file__).parent / "migrations"),
    table_classes=[],
    migration_dependencies=["fulmen"],
)
