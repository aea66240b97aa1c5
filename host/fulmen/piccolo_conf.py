"""Piccolo looks here (PICCOLO_CONF=fulmen.piccolo_conf) for the engine.

The host sets `DB` when it starts (see `fulmen.db.connect`), so Piccolo's own
machinery, such as migration managers, uses the same database as the app.
"""

from piccolo.conf.apps import AppRegistry

DB = None
APP_REGISTRY = AppRegistry(apps=["fulmen.piccolo_app"])
