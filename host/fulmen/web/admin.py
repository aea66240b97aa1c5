"""The operator's page at `/admin`: sign in with the admin key, then server
status, plugins, accounts and wallets (search, top-up), pending payments,
plugin-hook deliveries (redeliver) and the ledger audit."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post

from ..api.health import ready
from ..db import query
from ..errors import BadRequest, FulmenError, NotFound
from ..host import Host
from ..keys import same
from ..models import Payment
from .core import (
    WebSession,
    checked_form,
    load_session,
    page_environment,
    redirect,
    render_page,
    require_web_session,
    start_session,
)

ENV = page_environment()
ADMIN = {"session": require_web_session(admin=True)}


def host_of(request: Request) -> Host:
    return request.app.state.host


async def search_wallets(q: str) -> list[dict[str, Any]]:
    like = f"%{q.lower()}%"
    return await query(
        "SELECT w.id, w.name, w.balance_msat, w.account_id, a.name AS account_name, a.username "
        "FROM fulmen_wallet w JOIN fulmen_account a ON a.id = w.account_id "
        "WHERE NOT w.deleted AND (LOWER(w.name) LIKE {} OR LOWER(a.name) LIKE {} "
        "OR LOWER(COALESCE(a.username, '')) LIKE {} OR w.id = {} OR a.id = {}) "
        "ORDER BY w.created_at DESC, w.id LIMIT 50",
        like, like, like, q, q,
    )


async def dashboard(request: Request, session: WebSession, *, status_code: int = 200,
                    **context: Any) -> Response[str]:
    host = host_of(request)
    readiness = await ready.fn(request)
    q = (request.query_params.get("q") or "").strip()[:100]
    wallets = await search_wallets(q) if q else await query(
        "SELECT w.id, w.name, w.balance_msat, w.account_id, a.name AS account_name, a.username "
        "FROM fulmen_wallet w JOIN fulmen_account a ON a.id = w.account_id WHERE NOT w.deleted "
        "ORDER BY w.created_at DESC, w.id LIMIT 20"
    )
    pending = [Payment.from_row(r) for r in await query(
        "SELECT * FROM fulmen_payment WHERE out AND status = 'pending' ORDER BY created_at LIMIT 50"
    )]
    deliveries = await query(
        "SELECT id, plugin_id, hook, status, attempts, last_error, payment_id FROM fulmen_hook_delivery "
        "WHERE status <> 'done' ORDER BY id DESC LIMIT 50"
    )
    webhooks = await query(
        "SELECT id, wallet_id, endpoint_id, event_type, url, status, attempts, last_status_code, "
        "last_error FROM fulmen_webhook_delivery WHERE status = 'failed' "
        "AND endpoint_id IS NOT NULL ORDER BY id DESC LIMIT 50"
    )
    counts = (await query(
        "SELECT (SELECT COUNT(*) FROM fulmen_account) AS accounts, "
        "(SELECT COUNT(*) FROM fulmen_wallet WHERE NOT deleted) AS wallets, "
        "(SELECT COALESCE(SUM(balance_msat), 0) FROM fulmen_wallet) AS held_msat"
    ))[0]
    return await render_page(
        request, ENV, "admin.html", status_code=status_code, session=session,
        readiness=readiness.content, status_code_ready=readiness.status_code,
        funding=type(host.funding).__name__,
        plugins=[info.to_json() for info in sorted(host.plugins.values(), key=lambda i: i.id)],
        wallets=wallets, q=q, pending=pending, deliveries=deliveries, webhooks=webhooks,
        counts=counts,
        audit=await host.wallets.audit(), **context,
    )


@get("/admin", include_in_schema=False)
async def admin_page(request: Request) -> Response[str]:
    session = await load_session(request)
    if session is None or not session.admin:
        return await render_page(request, ENV, "admin_login.html", session=None)
    return await dashboard(request, session)


@post("/admin/login", include_in_schema=False)
async def admin_login(request: Request) -> Response[str]:
    form = await checked_form(request)
    key = (form.get("admin_key") or "").strip()
    host = host_of(request)
    if not key or not same(key, host.admin_key):
        return await render_page(request, ENV, "admin_login.html", status_code=401, session=None,
                                 error="That is not this host's admin key (see data/admin_key).")
    response = redirect("/admin")
    await start_session(request, response, admin=True)
    return response


@post("/admin/plugins/{plugin_id:str}", include_in_schema=False, dependencies=ADMIN)
async def admin_plugin(request: Request, session: WebSession, plugin_id: str) -> Response[str]:
    form = await checked_form(request)
    host = host_of(request)
    info = host.plugins.get(plugin_id)
    try:
        if info is None:
            raise NotFound(f"No plugin {plugin_id!r} is installed.")
        if not info.usable:
            raise BadRequest(f"Plugin {plugin_id!r} is {info.quarantine_kind}: {info.error}")
        await host.set_plugin_enabled(plugin_id, form.get("enabled") == "true")
    except FulmenError as exc:
        return await dashboard(request, session, status_code=exc.status_code, plugin_error=exc.detail)
    return redirect("/admin#plugins")


@post("/admin/wallets/{wallet_id:str}/topup", include_in_schema=False, dependencies=ADMIN)
async def admin_topup(request: Request, session: WebSession, wallet_id: str) -> Response[str]:
    form = await checked_form(request)
    host = host_of(request)
    try:
        raw = (form.get("amount") or "").strip().replace(",", "")
        if not raw.lstrip("-").isdigit() or int(raw) == 0:
            raise BadRequest("amount: a whole number of sat, negative to debit")
        reason = (form.get("reason") or "").strip()
        if not reason or len(reason) > 200:
            raise BadRequest("reason: say why (up to 200 characters); it goes in the ledger")
        await host.wallets.get(wallet_id)
        await host.payments.admin_adjust(wallet_id, int(raw) * 1000, reason)
    except FulmenError as exc:
        return await dashboard(request, session, status_code=exc.status_code, topup_error=exc.detail,
                               topup_wallet=wallet_id)
    return redirect(f"/admin?q={wallet_id}#wallets")


@post("/admin/hook-deliveries/{delivery_id:int}/redeliver", include_in_schema=False,
      dependencies=ADMIN)
async def admin_redeliver(request: Request, session: WebSession, delivery_id: int) -> Response[str]:
    """Put a failed plugin-hook delivery back in the queue; the delivery loop runs it."""
    await checked_form(request)
    row = None
    if 0 < delivery_id < 2**63:  # the outbox's own redeliver (fulmen/outbox.py)
        row = await host_of(request).hooks.deliveries.redeliver(delivery_id, {"status": "failed"})
    if row is None:
        return await dashboard(request, session, status_code=409,
                               delivery_error="Only a failed delivery can be sent again.")
    return redirect("/admin#deliveries")


@post("/admin/webhook-deliveries/{delivery_id:int}/redeliver", include_in_schema=False,
      dependencies=ADMIN)
async def admin_webhook_redeliver(request: Request, session: WebSession,
                                  delivery_id: int) -> Response[str]:
    """Send a failed webhook delivery again (the webhook service's own redeliver)."""
    await checked_form(request)
    rows = await query("SELECT wallet_id, endpoint_id FROM fulmen_webhook_delivery WHERE id = {} "
                       "AND endpoint_id IS NOT NULL", delivery_id)
    try:
        if not rows:
            raise NotFound("Delivery not found.")
        await host_of(request).webhooks.redeliver(rows[0]["wallet_id"], rows[0]["endpoint_id"],
                                                  delivery_id)
    except FulmenError as exc:
        return await dashboard(request, session, status_code=exc.status_code, webhook_error=exc.detail)
    return redirect("/admin#webhooks")


ROUTES: list[Any] = [admin_page, admin_login, admin_plugin, admin_topup, admin_redeliver,
                     admin_webhook_redeliver]
