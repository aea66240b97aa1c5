"""The web pages: the signed-in user's withdraw links (list, create,
delete), each link's page and its printable vouchers."""

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

ENV = page_environment("fulmen_withdraw")
FORM_FIELDS = ("wallet", "title", "min_withdrawable", "max_withdrawable", "uses", "wait_time")
SIGNED_IN = {"session": require_web_session()}
MAX_PRINTED = 100


def number(value: str | None) -> Any:
    value = (value or "").strip()
    return int(value) if value.isdigit() else (value or None)


async def index_page(request: Request, host: PluginHost, session: WebSession | None, *,
                     status_code: int = 200,
                     form: dict[str, str] | None = None, errors: dict[str, str] | None = None
                     ) -> Response[str]:
    wallets = await session.wallets() if session else []
    rows: list[dict[str, Any]] = []
    for wallet in wallets:
        auth = WalletAuth(wallet_id=wallet.id, account_id=wallet.account_id, kind="admin")
        for row in (await links.list_links(auth, 0, 500))[0]:
            rows.append({"id": row["id"], "title": row["title"], "unique_hash": links.secret_of(host, row),
                         "amount": int(row["max_withdrawable"]), "wallet_name": wallet.name,
                         "left": int(row["uses"]) - int(row["used"]), "uses": int(row["uses"])})
    return await render_page(request, ENV, "withdraw/index.html", status_code=status_code,
                             session=session, wallets=wallets, links=rows, form=form or {},
                             errors=errors or {})


@get("/", include_in_schema=False)
async def index(request: Request, host: PluginHost) -> Response[str]:
    session = await current_web_session(request)
    return await index_page(request, host, session if session and not session.admin else None)


@post("/links", include_in_schema=False, dependencies=SIGNED_IN)
async def create(request: Request, host: PluginHost, session: WebSession) -> Response[str]:
    form = await checked_form(request)
    amount = number(form.get("amount"))
    data = {"title": (form.get("title") or "").strip(), "min_withdrawable": amount,
            "max_withdrawable": amount, "uses": number(form.get("uses")) or 1,
            "wait_time": number(form.get("wait_time")) or 0, "is_unique": False}
    try:
        auth = await session.wallet(form.get("wallet") or "")
        row = await links.create_link(host, auth, data)
    except FulmenError as exc:
        errors = field_errors(exc, FORM_FIELDS)
        for name in ("min_withdrawable", "max_withdrawable"):  # one "amount" field on the page
            if name in errors:
                errors["amount"] = errors.pop(name)
        return await index_page(request, host, session, status_code=exc.status_code, form=form, errors=errors)
    return redirect(f"/withdraw/{links.link_secret(host, row['id'])}")


@post("/links/{link_id:str}/delete", include_in_schema=False, dependencies=SIGNED_IN)
async def delete(request: Request, host: PluginHost, session: WebSession, link_id: str) -> Response[str]:
    await checked_form(request)
    row = await links.get_link(link_id)
    await links.delete_link(host, await session.wallet(row["wallet"]), link_id)
    return redirect("/withdraw/")


async def voucher(request: Request, host: PluginHost, unique_hash: str) -> dict[str, Any]:
    row = await links.link_by_page_key(unique_hash)
    code, _ = links.lnurl_forms(host.base_url(request), unique_hash)
    svg = segno.make(f"lightning:{code}", error="l").svg_inline(scale=5, border=2, omitsize=True)
    return {"row": row, "lnurl": code, "qr": svg,
            "link": {"title": row["title"], "min": int(row["min_withdrawable"]),
                     "max": int(row["max_withdrawable"]), "unique_hash": unique_hash,
                     "left": int(row["uses"]) - int(row["used"])}}


async def is_owner(request: Request, wallet_id: str) -> bool:
    session = await current_web_session(request)
    return bool(session and not session.admin
                and any(w.id == wallet_id for w in await session.wallets()))


@get("/{unique_hash:str}", include_in_schema=False)
async def link_page(request: Request, host: PluginHost, unique_hash: str) -> Response[str]:
    """The link's QR code, to show (whoever has it can withdraw). Found by
    the link's secret `unique_hash`, not its id: the id is shown to keys
    that cannot spend."""
    v = await voucher(request, host, unique_hash)
    return await render_page(request, ENV, "withdraw/link.html", link=v["link"], lnurl=v["lnurl"],
                             qr=v["qr"], owner=await is_owner(request, v["row"]["wallet"]))


@get("/{unique_hash:str}/print", include_in_schema=False)
async def print_page(request: Request, host: PluginHost, unique_hash: str) -> Response[str]:
    """One voucher per use left, to print and cut out."""
    v = await voucher(request, host, unique_hash)
    copies = max(0, min(v["link"]["left"], MAX_PRINTED))
    return await render_page(request, ENV, "withdraw/print.html", link=v["link"], lnurl=v["lnurl"],
                             qr=v["qr"], copies=copies, owner=await is_owner(request, v["row"]["wallet"]))


ROUTES: list[Any] = [index, create, delete, link_page, print_page]
