"""The plugin as a Piccolo app: its tables and migrations."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from .tables import Tpos, TposPayment

APP_CONFIG = AppConfig(
    app_name="tpos",
    migrations_folder_path=str(Path(__file__).parent / "migrations"),
    table_classes=[Tpos, TposPayment],
    migration_dependencies=["fulmen"],
)
