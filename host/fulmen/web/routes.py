"""The web UI's routes: the pages in `fulmen/web/`, the static files (one
stylesheet, htmx, the icon) and QR codes. Plugins add navigation links
through the `nav_entries` hook and pages through their own routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import get
from litestar.response import Response
from litestar.static_files import create_static_files_router

from . import admin as admin_pages
from . import pages


@get("/api/v1/qrcode/{text:str}", include_in_schema=False)
async def qrcode(text: str) -> Response[bytes]:
    """An SVG QR code (for invoices and LNURLs on the page)."""
    import io

    import segno

    if len(text) > 4000:
        from ..errors import BadRequest

        raise BadRequest("data is too long for a QR code")
    out = io.BytesIO()
    try:
        code = segno.make(text, error="m")
    except segno.DataOverflowError:
        from ..errors import BadRequest

        raise BadRequest("data is too long for a QR code") from None
    code.save(out, kind="svg", scale=4, border=2)
    return Response(out.getvalue(), media_type="image/svg+xml")


STATIC = create_static_files_router(
    path="/static", directories=[Path(__file__).parent.parent / "static"], include_in_schema=False,
    cache_control=None,
)


@get("/favicon.ico", include_in_schema=False)
async def favicon() -> Response[bytes]:
    icon = (Path(__file__).parent.parent / "static" / "icon.svg").read_bytes()
    return Response(icon, media_type="image/svg+xml")


ROUTES: list[Any] = [*pages.ROUTES, *admin_pages.ROUTES, STATIC, favicon, qrcode]
