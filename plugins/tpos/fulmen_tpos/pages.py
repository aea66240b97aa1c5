"""The web pages: the signed-in user's terminals (list, create with items
and tips, delete). The terminal itself is `controllers.TerminalPage`."""

from __future__ import annotations

import json
from typing import Any

from fulmen import (
    BadRequest,
    FulmenError,
    PluginHost,
    WebSession,
    checked_form,
    current_web_session,
    field_errors,
    page_environment,
    query,
    redirect,
    render_page,
    require_web_session,
)
from litestar import Request, Response, get, post

from . import terminals

ENV = page_environment("fulmen_tpos")
FORM_FIELDS = ("wallet", "name", "tip_options", "tip_wallet", "items")
SIGNED_IN = {"session": require_web_session()}


def tip_options(text: str) -> list[Any]:
    """"5, 10, 15" → [5, 10, 15]; anything else is passed on for the API's check."""
    out: list[Any] = []
    for part in text.replace("%", "").split(","):
        part = part.strip()
        if part:
            try:
                out.append(float(part) if "." in part else int(part))
            except ValueError:
                raise BadRequest(f"tip_options: {part!r} is not a number of percent") from None
    return out


def items(text: str) -> list[dict[str, Any]]:
    """One item a line, "Coffee = 3500" (title = price in sat)."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        title, sep, price = line.rpartition("=")
        if not sep or not title.strip() or not price.strip().isdigit():
            raise BadRequest(f"items: line {number} should look like “Coffee = 3500”")
        out.append({"title": title.strip(), "price": int(price.strip())})
    return out


async def index_page(request: Request, session: WebSession | None, *, status_code: int = 200,
                     form: dict[str, str] | None = None, errors: dict[str, str] | None = None
                     ) -> Response[str]:
    wallets = await session.wallets() if session else []
    rows: list[dict[str, Any]] = []
    if wallets:
        marks = ", ".join("{}" for _ in wallets)
        names = {w.id: w.name for w in wallets}
        for row in await query(f"SELECT * FROM tpos_pos WHERE wallet IN ({marks}) "
                               "ORDER BY created_at, id", *names):
            rows.append({**terminals.tpos_json(row), "wallet_name": names[row["wallet"]],
                         "item_count": len(json.loads(row["items"]))})
    return await render_page(request, ENV, "tpos/index.html", status_code=status_code,
                             session=session, wallets=wallets, terminals=rows, form=form or {},
                             errors=errors or {})


@get("/", include_in_schema=False)
async def index(request: Request) -> Response[str]:
    session = await current_web_session(request)
    return await index_page(request, session if session and not session.admin else None)


@post("/terminals", include_in_schema=False, dependencies=SIGNED_IN)
async def create(request: Request, host: PluginHost, session: WebSession) -> Response[str]:
    form = await checked_form(request)
    try:
        auth = await session.wallet(form.get("wallet") or "")
        data: dict[str, Any] = {
            "name": (form.get("name") or "").strip(), "currency": "sats",
            "tip_options": tip_options(form.get("tip_options") or ""),
            "items": items(form.get("items") or ""),
        }
        if data["tip_options"]:
            tip_wallet = form.get("tip_wallet") or auth.wallet_id
            await session.wallet(tip_wallet)
            data["tip_wallet"] = tip_wallet
        row = await terminals.create_tpos(host, auth, data)
    except FulmenError as exc:
        return await index_page(request, session, status_code=exc.status_code, form=form,
                                errors=field_errors(exc, FORM_FIELDS))
    return redirect(f"/tpos/#terminal-{row['id']}")


@post("/terminals/{tpos_id:str}/delete", include_in_schema=False, dependencies=SIGNED_IN)
async def delete(request: Request, session: WebSession, tpos_id: str) -> Response[str]:
    await checked_form(request)
    row = await terminals.get_tpos(tpos_id)
    await terminals.delete_tpos(await session.wallet(row["wallet"]), tpos_id)
    return redirect("/tpos/")


ROUTES: list[Any] = [index, create, delete]
