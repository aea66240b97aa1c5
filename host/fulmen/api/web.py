"""The small web UI: one page that talks to the wallet API with a key kept in
the browser. Plugins add navigation links through the `nav_entries` hook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Request, get
from litestar.response import Response

from ..host import Host
from ..version import __version__

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent.parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


@get("/", media_type="text/html", include_in_schema=False)
async def index(request: Request) -> Response[str]:
    host: Host = request.app.state.host
    page = TEMPLATES.get_template("index.html").render(
        version=__version__, nav=await host.hooks.nav_entries(), allow_signup=host.settings.allow_signup,
    )
    return Response(page, media_type="text/html")


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


ROUTES: list[Any] = [index, qrcode]
