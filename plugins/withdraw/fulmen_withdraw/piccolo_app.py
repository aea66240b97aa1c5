"""The plugin as a Piccolo app: its tables and migrations."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from .tables import WithdrawK1, WithdrawLink

APP_CONFIG = AppConfig(
    app_name="withdraw",
    migrations_folder_path=str(Path(__file__).parent / "migrations"),
    table_classes=[WithdrawLink, WithdrawK1],
    migration_dependencies=["fulmen"],
)
