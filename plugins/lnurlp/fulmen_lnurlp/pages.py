"""The web pages: the signed-in user's pay links (list, create, delete) and
each link's printable page. Built on the host's base template."""

from __future__ import annotations

from typing import Any

import segno
from fulmen import (
    FulmenError,
    PluginHost,
    WalletAuth,
    WebSession,
    checked_form,
    current_web_session,
    field_errors,
    page_environment,
    redirect,
    render_page,
    require_web_session,
)
from litestar import Request, Response, get, post

from . import links

ENV = page_environment("fulmen_lnurlp")
FORM_FIELDS = ("wallet", "description", "min", "max", "username", "comment_chars")
SIGNED_IN = {"session": require_web_session()}


def number(value: str | None) -> Any:
    """A form's number as an int when it is one; otherwise the text, so the
    API's own check names the field."""
    value = (value or "").strip()
    return int(value) if value.isdigit() else (value or None)


async def index_page(request: Request, host: PluginHost, session: WebSession | None, *,
                     status_code: int = 200, **context: Any) -> Response[str]:
    rows: list[dict[str, Any]] = []
    wallets = await session.wallets() if session else []
    base = host.base_url(request)
    for wallet in wallets:
        auth = WalletAuth(wallet_id=wallet.id, account_id=wallet.account_id, kind="admin")
        for row in await links.list_links(auth):
            rows.append({**links.to_json(row, base), "wallet_name": wallet.name,
                         "address": links.identifier(row, base)})
    return await render_page(request, ENV, "lnurlp/index.html", status_code=status_code,
                             session=session, wallets=wallets, links=rows,
                             form=context.pop("form", {}), errors=context.pop("errors", {}), **context)


@get("/", include_in_schema=False)
async def index(request: Request, host: PluginHost) -> Response[str]:
    session = await current_web_session(request)
    return await index_page(request, host, session if session and not session.admin else None)


@post("/links", include_in_schema=False, dependencies=SIGNED_IN)
async def create(request: Request, host: PluginHost, session: WebSession) -> Response[str]:
    form = await checked_form(request)
    data: dict[str, Any] = {
        "description": (form.get("description") or "").strip(),
        "min": number(form.get("min")),
        "max": number(form.get("max")) if (form.get("max") or "").strip() else number(form.get("min")),
        "comment_chars": number(form.get("comment_chars")) or 0,
    }
    if (form.get("username") or "").strip():
        data["username"] = form["username"].strip().lower()
    try:
        auth = await session.wallet(form.get("wallet") or "")
        row = await links.create_link(host, auth, data, host.base_url(request))
    except FulmenError as exc:
        return await index_page(request, host, session, status_code=exc.status_code, form=form,
                                errors=field_errors(exc, FORM_FIELDS))
    return redirect(f"/lnurlp/link/{row['id']}")


@post("/links/{link_id:str}/delete", include_in_schema=False, dependencies=SIGNED_IN)
async def delete(request: Request, host: PluginHost, session: WebSession, link_id: str) -> Response[str]:
    await checked_form(request)
    row = await links.get_link(link_id)
    auth = await session.wallet(row["wallet"])
    await links.delete_link(auth, link_id)
    return redirect("/lnurlp/")


@get("/link/{link_id:str}", include_in_schema=False)
async def link_page(request: Request, host: PluginHost, link_id: str) -> Response[str]:
    """A link's page: QR code, LNURL, Lightning Address; printable."""
    row = await links.get_link(link_id)
    base = host.base_url(request)
    code, _, lud17 = links.lnurl_forms(base, row["id"])
    shown = links.to_json(row, base)  # min and max in the link's unit (sats or its currency)
    # upper case bech32: the QR code's compact alphanumeric mode
    svg = segno.make(f"lightning:{code}", error="l").svg_inline(scale=5, border=2, omitsize=True)
    session = await current_web_session(request)
    owner = False
    if session is not None and not session.admin:
        owner = any(w.id == row["wallet"] for w in await session.wallets())
    return await render_page(
        request, ENV, "lnurlp/link.html", session=session,
        link={"id": row["id"], "description": row["description"], "min": shown["min"],
              "max": shown["max"], "unit": row["currency"] or "sat",
              "address": links.identifier(row, base)},
        lnurl=code, lud17=lud17, qr=svg, owner=owner,
    )


ROUTES: list[Any] = [index, create, delete, link_page]
