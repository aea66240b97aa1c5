"""The small web UI (placeholder page until the UI lands)."""

from __future__ import annotations

from litestar import Request, get
from litestar.response import Template

ROUTES: list = []
