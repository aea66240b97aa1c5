"""Piccolo looks here (PICCOLO_CONF=fulmen.piccolo_conf) for the engine.

`DB` stays None until the host binds its engine (`fulmen.db.bind`, called
when the host is built), so importing this module configures no database;
Piccolo's own machinery, such as migration managers, then uses the same
engine as the app. A query before that fails with `fulmen.db.NotBound`.
"""

from __future__ import annotations

from piccolo.conf.apps import AppRegistry
from piccolo.engine.base import Engine

DB: Engine | None = None
APP_REGISTRY = AppRegistry(apps=["fulmen.piccolo_app"])
