"""The web page: each of the signed-in user's wallets with its split
targets, edited as one form per wallet."""

from __future__ import annotations

from typing import Any

from fulmen import (
    BadRequest,
    FulmenError,
    PluginHost,
    WebSession,
    checked_form,
    current_web_session,
    page_environment,
    redirect,
    render_page,
    require_web_session,
)
from litestar import Request, Response, get, post

from .targets import MAX_TARGETS, check_targets, list_targets, replace_targets

ENV = page_environment("fulmen_splitpayments")
SIGNED_IN = {"session": require_web_session()}
BLANK_ROWS = 2


async def index_page(request: Request, session: WebSession | None, *, status_code: int = 200,
                     failed: str | None = None, error: str | None = None,
                     rows: list[dict[str, str]] | None = None) -> Response[str]:
    sources = []
    for wallet in await session.wallets() if session else []:
        if wallet.id == failed and rows is not None:
            targets = rows
        else:
            targets = [{"wallet": t["wallet"], "alias": t["alias"], "percent": f"{float(t['percent']):g}"}
                       for t in await list_targets(wallet.id)]
        targets = targets + [{"wallet": "", "alias": "", "percent": ""}] * BLANK_ROWS
        sources.append({"wallet": wallet, "targets": targets[:MAX_TARGETS],
                        "error": error if wallet.id == failed else None})
    return await render_page(request, ENV, "splitpayments/index.html", status_code=status_code,
                             session=session, sources=sources)


@get("/", include_in_schema=False)
async def index(request: Request) -> Response[str]:
    session = await current_web_session(request)
    return await index_page(request, session if session and not session.admin else None)


def percent(value: str, row: int) -> Any:
    try:
        return float(value)
    except ValueError:
        raise BadRequest(f"row {row}: percent must be a number, like 10 or 2.5") from None


@post("/targets/{wallet_id:str}", include_in_schema=False, dependencies=SIGNED_IN)
async def save(request: Request, host: PluginHost, session: WebSession, wallet_id: str) -> Response[str]:
    form = await checked_form(request)
    auth = await session.wallet(wallet_id)
    rows = []
    for i in range(MAX_TARGETS):
        row = {k: (form.get(f"{k}_{i}") or "").strip() for k in ("wallet", "alias", "percent")}
        if any(row.values()):
            rows.append(row)
    try:
        data = {"targets": [{"wallet": r["wallet"], "alias": r["alias"], "percent": percent(r["percent"], n)}
                            for n, r in enumerate(rows, 1)]}
        targets = await check_targets(host, auth.wallet_id, data)
        await replace_targets(host, auth.wallet_id, targets)
    except FulmenError as exc:
        return await index_page(request, session, status_code=exc.status_code, failed=wallet_id,
                                error=exc.detail, rows=rows)
    return redirect(f"/splitpayments/#split-{wallet_id}")


ROUTES: list[Any] = [index, save]
