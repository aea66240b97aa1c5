"""The plugin as a Piccolo app: its tables (declared in tables.py) and migrations."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from .tables import Delivery, LinkKey, Zap, ZapRequest

APP_CONFIG = AppConfig(
    app_name="nostrzaps",
    migrations_folder_path=str(Path(__file__).parent / "migrations"),
    table_classes=[ZapRequest, Zap, Delivery, LinkKey],
    migration_dependencies=["fulmen"],
)
