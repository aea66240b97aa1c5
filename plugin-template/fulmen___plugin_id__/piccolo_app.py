"""The plugin as a Piccolo app: its table and migrations.

Every table name starts with the plugin id (the host refuses others), and
the app depends on the host's app "fulmen", so it migrates after the host.
"""

from pathlib import Path

from piccolo.columns import BigInt, Text, Varchar
from piccolo.conf.apps import AppConfig
from piccolo.table import Table


class PaidInvoice(Table, tablename="__plugin_id___paid_invoice"):
    payment_id = BigInt(primary_key=True)
    wallet_id = Varchar(length=32, index=True)
    amount_msat = BigInt()
    memo = Text(default="")
    paid_at = BigInt()


APP_CONFIG = AppConfig(
    app_name="__plugin_id__",
    migrations_folder_path=str(Path(__file__).parent / "migrations"),
    table_classes=[PaidInvoice],
    migration_dependencies=["fulmen"],
)
