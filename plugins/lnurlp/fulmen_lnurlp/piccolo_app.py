"""The plugin as a Piccolo app: its table and migrations."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from .tables import PayLink

APP_CONFIG = AppConfig(
    app_name="lnurlp",
    migrations_folder_path=str(Path(__file__).parent / "migrations"),
    table_classes=[PayLink],
    migration_dependencies=["fulmen"],
)
