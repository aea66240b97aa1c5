"""The admin API: `/admin/api/v1/...` and LNbits's `/users/api/v1/balance`.
Every call needs `Authorization: Bearer <admin key>`."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, delete, get, post, put
from litestar.response import Stream

from .. import db
from ..audit import run_audit
from ..errors import BadRequest, Forbidden, FulmenError, NotFound
from ..funding.fake import FakeWallet
from ..host import Host
from ..plugins import installer as inst
from . import body
from .auth import admin_guard


def host_of(request: Request) -> Host:
    return request.app.state.host


@put("/users/api/v1/balance", guards=[admin_guard])
async def lnbits_topup(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    """LNbits's top-up: `{"id": wallet_id, "amount": sats}`; negative debits."""
    host = host_of(request)
    wallet_id = body.text(data, "id", max_len=64)
    if not wallet_id:
        raise BadRequest("id (the wallet id) is required")
    sats = body.integer(data, "amount")
    if sats is None:
        raise BadRequest("amount (sats) is required")
    if abs(sats) > body.MAX_MSAT // 1000:
        raise BadRequest("amount is out of range")
    reason = body.text(data, "reason", "admin top-up", max_len=200) or "admin top-up"
    await host.wallets.get(wallet_id)
    balance = await host.payments.admin_adjust(wallet_id, sats * 1000, reason)
    return {"success": True, "message": f"Balance updated to {balance} msat.", "balance": balance}


MAX_OFFSET = 2**62


def page(limit: int, offset: int) -> tuple[int, int]:
    if not 1 <= limit <= 1000:
        raise BadRequest("limit must be between 1 and 1000")
    if not 0 <= offset <= MAX_OFFSET:
        raise BadRequest(f"offset must be between 0 and {MAX_OFFSET}")
    return limit, offset


@get("/accounts")
async def list_accounts(request: Request, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    rows = await host_of(request).wallets.list_accounts(*page(limit, offset))
    # PostgreSQL's SUM of a BIGINT is NUMERIC: answer an integer on both databases.
    return [{**r, "balance_msat": int(r["balance_msat"]), "wallets": int(r["wallets"])}
            for r in rows]


@get("/wallets")
async def list_wallets(request: Request, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    return [w.to_lnbits() for w in await host_of(request).wallets.list_wallets(*page(limit, offset))]


@post("/accounts", status_code=201)
async def create_account(request: Request, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create an account even when public sign-up is off."""
    name = body.text(data or {}, "name", "", max_len=100) or ""
    _, token, wallet = await host_of(request).wallets.create_account(name)
    return {**wallet.to_lnbits(), "access_token": token}


@post("/wallets/{wallet_id:str}/balance", status_code=200)
async def adjust_balance(request: Request, wallet_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Credit or debit in msat with a reason, recorded in the ledger."""
    host = host_of(request)
    amount = body.integer(data, "amount_msat")
    if amount is None:
        raise BadRequest("amount_msat is required")
    reason = body.text(data, "reason", max_len=200)
    if not reason:
        raise BadRequest("reason is required")
    await host.wallets.get(wallet_id)
    return {"balance": await host.payments.admin_adjust(wallet_id, amount, reason)}


@post("/fake/settle/{payment_hash:str}", status_code=200)
async def fake_settle(request: Request, payment_hash: str) -> dict[str, Any]:
    """FakeWallet only: settle one of its invoices as if paid from outside."""
    host = host_of(request)
    if not isinstance(host.funding, FakeWallet):
        raise BadRequest("Only available with the FakeWallet funding source.")
    found = [p for p in await host.payments.find_by_hash(payment_hash.lower()) if not p.out]
    if not found:
        raise NotFound("No invoice with that payment hash.")
    payment = await host.payments.settle_incoming(found[0].checking_id, require_unexpired=True)
    if payment is None:
        current = await host.payments.get_by_id(found[0].id)
        raise BadRequest("Invoice is already paid." if current.paid else "Invoice has expired.")
    return payment.to_lnbits()


@get("/audit")
async def audit(request: Request) -> dict[str, Any]:
    """Every balance against its ledger and its payment history (`fulmen audit`)."""
    return await run_audit(host_of(request).settings)


@get("/plugins")
async def list_plugins(request: Request) -> list[dict[str, Any]]:
    host = host_of(request)
    applied = await db.applied_migrations()
    result = []
    for info in host.plugins.values():
        item = info.to_json()
        names = {app.app_name for app in info.apps}
        item["migrations"] = [m["name"] for m in applied if m["app_name"] in names]
        result.append(item)
    return result


@get("/plugins/{plugin_id:str}")
async def get_plugin(request: Request, plugin_id: str) -> dict[str, Any]:
    """One plugin as this process runs it, and the versions other processes run."""
    host = host_of(request)
    info = host.plugins.get(plugin_id)
    if info is None:
        raise NotFound(f"No plugin {plugin_id!r} is installed.")
    names = {app.app_name for app in info.apps}
    item = info.to_json()
    item["migrations"] = [m["name"] for m in await db.applied_migrations() if m["app_name"] in names]
    item["processes"] = [
        {"process": p["id"], "hostname": p["hostname"], "pid": p["pid"], **p["plugins"][plugin_id]}
        for p in await host.processes.rows() if plugin_id in p["plugins"]
    ]
    return item


class InstallRefused(FulmenError):
    status_code = 403


class InstallFailed(FulmenError):
    status_code = 422


async def run_installer(host: Host, spec: str, upgrade: bool) -> dict[str, Any]:
    try:
        result = await inst.install(inst.Installer(host.settings), spec, upgrade)
    except inst.InstallRefused as exc:
        raise InstallRefused(str(exc)) from None
    except inst.InstallFailed as exc:
        raise InstallFailed(str(exc)) from None
    return {**result, "note": "this server serves the change within a few seconds"}


@post("/plugins/install", status_code=200)
async def install_plugin(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    """Install a plugin: `{"spec": "<wheel path, project folder or requirement>"}`."""
    spec = body.text(data, "spec", max_len=1000)
    if not spec:
        raise BadRequest("spec (a wheel, a project folder or a requirement) is required")
    return await run_installer(host_of(request), spec, upgrade=False)


@post("/plugins/{plugin_id:str}/upgrade", status_code=200)
async def upgrade_plugin(request: Request, plugin_id: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Upgrade a plugin to `{"spec": ...}`, or to the newest its sources offer."""
    host = host_of(request)
    distribution = inst.distribution_of(plugin_id)
    if distribution is None:
        raise NotFound(f"No plugin {plugin_id!r} is installed.")
    spec = body.text(data or {}, "spec", max_len=1000) or distribution
    return await run_installer(host, spec, upgrade=True)


@delete("/plugins/{plugin_id:str}", status_code=200)
async def uninstall_plugin(request: Request, plugin_id: str, drop_data: bool = False) -> dict[str, Any]:
    """Uninstall a plugin; its tables stay unless `?drop_data=true`."""
    host = host_of(request)
    installer = inst.Installer(host.settings)
    try:
        distribution = inst.uninstall_target(installer, plugin_id)
    except LookupError as exc:
        raise NotFound(str(exc)) from None
    except inst.InstallRefused as exc:
        raise Forbidden(str(exc)) from None
    before = inst.installed_plugins()
    try:
        await installer.run(installer.uninstall_argv(distribution))
    except inst.InstallFailed as exc:
        raise InstallFailed(str(exc)) from None
    await host.registry.retire(plugin_id, "uninstalled")
    dropped: list[str] = []
    still_serving: list[str] = []
    if drop_data and plugin_id in host.plugins:
        # Tables go once no process serves the plugin any more (each restarts without it).
        still_serving = await host.processes.wait_not_served(plugin_id)
        dropped = await inst.drop_data(host.plugins[plugin_id])
    return {"distribution": distribution, **inst.changes(before, inst.installed_plugins()),
            "dropped_tables": dropped, "data_kept": not drop_data,
            "still_served_by": still_serving}


@get("/processes")
async def list_processes(request: Request) -> list[dict[str, Any]]:
    """The host processes on this database, and the plugins and versions each runs."""
    return await host_of(request).processes.rows()


@put("/plugins/{plugin_id:str}")
async def set_plugin(request: Request, plugin_id: str, data: dict[str, Any]) -> dict[str, Any]:
    host = host_of(request)
    if plugin_id not in host.plugins:
        raise NotFound(f"No plugin {plugin_id!r} is installed.")
    enabled = body.boolean(data, "enabled")
    if enabled is None:
        raise BadRequest("enabled (true or false) is required")
    info = host.plugins[plugin_id]
    if not info.usable:
        raise BadRequest(f"Plugin {plugin_id!r} is {info.quarantine_kind}: {info.error}")
    return (await host.set_plugin_enabled(plugin_id, enabled)).to_json()


@get("/hook-deliveries")
async def hook_deliveries(
    request: Request, status: str | None = None, plugin: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The payment-hook outbox, newest first: one row per payment, plugin and hook."""
    if status is not None and status not in ("pending", "done", "failed"):
        raise BadRequest("status must be pending, done or failed")
    if not 1 <= limit <= 1000:
        raise BadRequest("limit must be between 1 and 1000")
    return await host_of(request).hooks.list_deliveries(status, limit, plugin)


def job_json(row: dict[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in ("id", "plugin_id", "kind", "job_key", "status", "attempts",
                                      "last_error", "next_attempt_at", "created_at", "updated_at")}


@get("/jobs")
async def list_jobs(
    request: Request, status: str | None = None, plugin: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Plugins' durable jobs (fulmen/jobs.py), newest first."""
    if status is not None and status not in ("pending", "done", "failed"):
        raise BadRequest("status must be pending, done or failed")
    if not 1 <= limit <= 1000:
        raise BadRequest("limit must be between 1 and 1000")
    where = {"plugin_id": plugin} if plugin else None
    rows = await host_of(request).jobs.outbox.list(where, status=status, limit=limit)
    return [job_json(r) for r in rows]


@post("/jobs/{job_id:int}/redeliver", status_code=200)
async def redeliver_job(request: Request, job_id: int) -> dict[str, Any]:
    """Run a job again now, whatever its state, with a fresh retry window."""
    outbox = host_of(request).jobs.outbox
    if not 0 < job_id < 2**63:
        raise NotFound("Job not found.")
    from ..jobs import RETRY_HOURS

    row = await outbox.redeliver(job_id, window_ms=int(RETRY_HOURS * 3_600_000))
    if row is None:
        if not await outbox.exists(job_id):
            raise NotFound("Job not found.")
        raise BadRequest("This job is running right now; try again in a minute")
    return job_json(row)


@get("/payments/pending")
async def pending_payments(request: Request) -> list[dict[str, Any]]:
    """Outgoing payments still waiting for the node's final word, and paid
    invoices that could not be credited yet (both with `check_error`)."""
    rows = await db.query(
        "SELECT * FROM fulmen_payment WHERE status = 'pending' "
        "AND (out OR check_error IS NOT NULL) ORDER BY created_at"
    )
    now = db.now_ms()
    from ..models import Payment

    # check_error: why the last attempt to settle it failed (it is retried).
    return [
        {**Payment.from_row(r).to_lnbits(), "overdue": int(r["expires_at"]) + 600_000 < now,
         "check_error": r.get("check_error")}
        for r in rows
    ]


@post("/backup", status_code=200, media_type="application/octet-stream")
async def backup(request: Request, data: dict[str, Any] | None = None) -> Stream:
    """Stream a backup file, the same as `fulmen backup` writes. Body (optional):
    `{"passphrase": "...", "include_secrets": false}`."""
    import time

    from ..backup import backup_chunks

    data = data or {}
    passphrase = data.get("passphrase")
    if passphrase is not None and (not isinstance(passphrase, str) or not passphrase
                                   or len(passphrase) > 1024):
        raise BadRequest("passphrase must be a non-empty string of at most 1024 characters")
    include_secrets = body.boolean(data, "include_secrets")
    name = time.strftime("fulmen-backup-%Y%m%dT%H%M%SZ.fulmen", time.gmtime())
    return Stream(
        backup_chunks(host_of(request), passphrase or None, bool(include_secrets)),
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"',
                 "Cache-Control": "no-store"},
    )


admin_router = Router(
    path="/admin/api/v1",
    guards=[admin_guard],
    route_handlers=[list_accounts, list_wallets, create_account, adjust_balance, fake_settle, audit,
                    list_plugins, get_plugin, install_plugin, upgrade_plugin,
                    uninstall_plugin, list_processes, set_plugin, hook_deliveries, list_jobs, redeliver_job,
                    pending_payments, backup],
)

ROUTES = [lnbits_topup, admin_router]
