"""The plugin as a Piccolo app: its table and migrations."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from .tables import LndhubToken

APP_CONFIG = AppConfig(
    app_name="lndhub",
    migrations_folder_path=str(Path(__file__).parent / "migrations"),
    table_classes=[LndhubToken],
    migration_dependencies=["fulmen"],
)
