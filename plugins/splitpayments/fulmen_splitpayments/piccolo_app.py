"""The plugin as a Piccolo app: its tables and migrations."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from .tables import Split, SplitPayment, Target

APP_CONFIG = AppConfig(
    app_name="splitpayments",
    migrations_folder_path=str(Path(__file__).parent / "migrations"),
    table_classes=[Target, Split, SplitPayment],
    migration_dependencies=["fulmen"],
)
