"""The host's web pages: sign-up and sign-in, wallets (receive, send,
history, keys) and the account. Server-rendered; htmx swaps fragments in
where it helps, and every form also works as a plain form post."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import bolt11 as bolt11_lib
import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from litestar import Request, Response, get, post
from litestar.response import ServerSentEvent, Stream
from litestar.response.sse import ServerSentEventMessage

from ..db import query
from ..errors import BadRequest, FulmenError, Unauthorized
from ..history import HistoryQuery, csv_pages
from ..host import Host
from ..lnurl_client import LnurlClient
from ..models import InvoiceRequest, Payment
from .core import (
    WebSession,
    checked_form,
    end_session,
    load_session,
    page_environment,
    redirect,
    render_page,
    require_web_session,
    start_session,
)

ENV = page_environment()
PAGE_SIZE = 20
PASSWORDS = PasswordHasher()
ACCOUNT = {"session": require_web_session()}
USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_.-")


def host_of(request: Request) -> Host:
    return request.app.state.host


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def qr_svg(text: str) -> str:
    return segno.make(text, error="m").svg_inline(scale=4, border=2, omitsize=True)


def sats_field(form: dict[str, str], name: str, required: bool = True) -> int | None:
    """A whole number of sats from a form field, as msat."""
    raw = (form.get(name) or "").strip().replace(",", "").replace("_", "")
    if not raw:
        if required:
            raise BadRequest(f"{name}: enter an amount in sat")
        return None
    if not raw.isdigit():
        raise BadRequest(f"{name}: enter a whole number of sat (like 1000)")
    value = int(raw)
    if not 1 <= value <= 21_000_000 * 100_000_000:
        raise BadRequest(f"{name}: must be at least 1 sat")
    return value * 1000


def name_field(form: dict[str, str], default: str = "") -> str:
    name = (form.get("name") or "").strip() or default
    if len(name) > 100:
        raise BadRequest("name: at most 100 characters")
    return name


# --- signing in and up --------------------------------------------------------------------


@get("/", include_in_schema=False)
async def home(request: Request, next: str = "/wallets") -> Response[str]:
    session = await load_session(request)
    if session is not None:
        return redirect("/admin" if session.admin else "/wallets")
    return await render_page(request, ENV, "home.html", session=None, next=next,
                             allow_signup=host_of(request).settings.allow_signup)


@post("/login", include_in_schema=False)
async def login(request: Request) -> Response[str]:
    form = await checked_form(request)
    host = host_of(request)
    account_id: str | None = None
    username = (form.get("username") or "").strip().lower()
    error = "Enter your username and password, or your account token."
    if form.get("token", "").strip():
        try:
            account_id = await host.wallets.authenticate_account(form["token"].strip())
        except Unauthorized:
            error = "That account token is not known here."
    elif username and form.get("password"):
        rows = await query("SELECT id, password_hash FROM fulmen_account WHERE username = {}", username)
        stored = rows[0]["password_hash"] if rows else None
        try:
            # Verified even for an unknown name, so timing does not tell which names exist.
            ok: bool = await asyncio.to_thread(PASSWORDS.verify, stored or UNKNOWN_HASH,
                                               form["password"])
        except (VerifyMismatchError, InvalidHashError):
            ok = False
        if ok and stored:
            account_id = rows[0]["id"]
        else:
            error = "Wrong username or password."
    if account_id is None:
        return await render_page(request, ENV, "home.html", status_code=401, session=None,
                                 signin_error=error, username=username, next=form.get("next"),
                                 allow_signup=host.settings.allow_signup)
    response = redirect(form.get("next") or "/wallets")
    await start_session(request, response, account_id=account_id)
    return response


UNKNOWN_HASH = PASSWORDS.hash("not a password anyone has")


@post("/logout", include_in_schema=False)
async def logout(request: Request) -> Response[str]:
    await checked_form(request)
    response = redirect("/")
    await end_session(request, response)
    return response


@post("/account/new", include_in_schema=False)
async def signup(request: Request) -> Response[str]:
    form = await checked_form(request)
    host = host_of(request)
    if not host.settings.allow_signup:
        return await render_page(request, ENV, "home.html", status_code=403, session=None,
                                 signup_error="Sign-up is switched off on this host.", allow_signup=False)
    current = await load_session(request)
    if current is not None and not current.admin:
        # A reload of the keys page posts the form again: never a second account.
        return await render_page(
            request, ENV, "wallets.html", status_code=409, session=current,
            wallets=await current.wallets(),
            notice="You are signed in, so no new account was made. To create another account, "
                   "sign out first.",
        )
    try:
        name = name_field(form)
    except BadRequest as exc:
        return await render_page(request, ENV, "home.html", status_code=400, session=None,
                                 signup_error=exc.detail, name=form.get("name"), allow_signup=True)
    account_id, token, wallet = await host.wallets.create_account(name, name or "My Wallet")
    session = WebSession(account_id=account_id, admin=False, name=name)
    # The keys are in this response only: never in a URL, a redirect or a log line.
    response = await render_page(
        request, ENV, "account_keys.html", session=session, heading="Your new account",
        token=token, keys=wallet.keys, wallet_id=wallet.id, qr=qr_svg(wallet.keys["admin"]),
        done_action="/account/saved",
    )
    await start_session(request, response, account_id=account_id)
    return response


@post("/account/saved", include_in_schema=False, dependencies=ACCOUNT)
async def keys_saved(request: Request, session: WebSession) -> Response[str]:
    form = await checked_form(request)
    if form.get("saved") != "yes":
        return redirect("/account")
    wallets = await session.wallets()
    return redirect(f"/wallets/{wallets[0].id}" if wallets else "/wallets")


@get("/account", include_in_schema=False, dependencies=ACCOUNT)
async def account_page(request: Request, session: WebSession) -> Response[str]:
    return await render_page(request, ENV, "account.html", session=session)


@post("/account/password", include_in_schema=False, dependencies=ACCOUNT)
async def set_password(request: Request, session: WebSession) -> Response[str]:
    form = await checked_form(request)
    username = (form.get("username") or "").strip().lower()
    password = form.get("password") or ""
    errors: dict[str, str] = {}
    if not 3 <= len(username) <= 64 or not set(username) <= USERNAME_CHARS:
        errors["username"] = "3 to 64 characters: letters, digits, '.', '-' or '_'."
    if not 10 <= len(password) <= 1000:
        errors["password"] = "At least 10 characters."
    elif password != form.get("password2"):
        errors["password2"] = "The two passwords differ."
    if not errors:
        taken = await query("SELECT id FROM fulmen_account WHERE username = {} AND id <> {}",
                            username, session.account_id)
        if taken:
            errors["username"] = "That username is taken."
    if errors:
        return await render_page(request, ENV, "account.html", status_code=400, session=session,
                                 errors=errors, username=username)
    hashed = await asyncio.to_thread(PASSWORDS.hash, password)
    await query("UPDATE fulmen_account SET username = {}, password_hash = {} WHERE id = {}",
                username, hashed, session.account_id)
    session.username = username
    return await render_page(request, ENV, "account.html", session=session,
                             message="Saved: you can sign in with this username and password.")


@post("/account/token", include_in_schema=False, dependencies=ACCOUNT)
async def rotate_token(request: Request, session: WebSession) -> Response[str]:
    await checked_form(request)
    assert session.account_id is not None
    token = await host_of(request).wallets.rotate_account_token(session.account_id)
    return await render_page(request, ENV, "account_keys.html", session=session,
                             heading="Your new account token", token=token, keys={},
                             done_action="/account/saved")


# --- wallets ----------------------------------------------------------------------------------


@get("/wallets", include_in_schema=False, dependencies=ACCOUNT)
async def wallets_page(request: Request, session: WebSession) -> Response[str]:
    return await render_page(request, ENV, "wallets.html", session=session,
                             wallets=await session.wallets())


@post("/wallets", include_in_schema=False, dependencies=ACCOUNT)
async def create_wallet(request: Request, session: WebSession) -> Response[str]:
    form = await checked_form(request)
    try:
        name = name_field(form)
        if not name:
            raise BadRequest("name: give the wallet a name")
    except BadRequest as exc:
        return await render_page(request, ENV, "wallets.html", status_code=400, session=session,
                                 wallets=await session.wallets(), error=exc.detail, name=form.get("name"))
    assert session.account_id is not None
    wallet = await host_of(request).wallets.create_wallet(session.account_id, name)
    return redirect(f"/wallets/{wallet.id}")


def history_filters(params: Any) -> dict[str, str]:
    return {k: (params.get(k) or "").strip() for k in ("status", "out", "search")}


def history_params(filters: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in filters.items() if v}


async def history_context(wallet_id: str, params: Any) -> dict[str, Any]:
    filters = history_filters(params)
    try:
        page = max(1, int(params.get("page") or 1))
    except ValueError:
        page = 1
    context: dict[str, Any] = {"filters": filters, "query": urlencode(history_params(filters)),
                               "page": page, "payments": [], "total": 0, "pages": 1}
    try:
        q = HistoryQuery.from_params(wallet_id, history_params(filters))
    except BadRequest as exc:
        context["history_error"] = exc.detail
        return context
    total = await q.total()
    q.limit, q.offset = PAGE_SIZE, (page - 1) * PAGE_SIZE
    rows = [Payment.from_row(r) for r in await q.rows()]
    context.update(total=total, pages=max(1, math.ceil(total / PAGE_SIZE)), payments=[
        {"time": datetime.fromtimestamp(p.created_at / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M"),
         "memo": p.memo, "sats": f"{p.amount_msat // 1000 if p.amount_msat >= 0 else -(-p.amount_msat // 1000):,}",
         "status": p.status} for p in rows
    ])
    return context


async def wallet_actions(host: Host, wallet_id: str) -> list[dict[str, str]]:
    """Links plugins add to a wallet's page (the `wallet_actions` hook);
    malformed entries and links off this site are dropped."""
    actions = []
    for _, result in await host.hooks.wallet_actions(wallet_id):
        for item in result if isinstance(result, list) else [result]:
            if isinstance(item, dict) and isinstance(item.get("href"), str) \
                    and isinstance(item.get("label"), str) and item["href"].startswith("/") \
                    and not item["href"].startswith("//"):
                actions.append({"href": item["href"], "label": item["label"]})
    return sorted(actions, key=lambda action: action["label"].lower())


async def wallet_page_response(request: Request, session: WebSession, wallet_id: str, *,
                               status_code: int = 200, **context: Any) -> Response[str]:
    auth = await session.wallet(wallet_id)
    wallet = await host_of(request).wallets.get(auth.wallet_id)
    return await render_page(
        request, ENV, "wallet.html", status_code=status_code, session=session, wallet=wallet,
        actions=await wallet_actions(host_of(request), wallet.id),
        **(await history_context(wallet.id, request.query_params)), **context,
    )


@get("/wallets/{wallet_id:str}", include_in_schema=False, dependencies=ACCOUNT)
async def wallet_page(request: Request, session: WebSession, wallet_id: str) -> Response[str]:
    return await wallet_page_response(request, session, wallet_id)


@get("/wallets/{wallet_id:str}/history", include_in_schema=False, dependencies=ACCOUNT)
async def wallet_history(request: Request, session: WebSession, wallet_id: str) -> Response[str]:
    if not is_htmx(request):
        return redirect(f"/wallets/{wallet_id}?{urlencode(history_params(history_filters(request.query_params)))}")
    auth = await session.wallet(wallet_id)
    wallet = await host_of(request).wallets.get(auth.wallet_id)
    return await render_page(request, ENV, "_history.html", session=session, wallet=wallet,
                             **(await history_context(wallet.id, request.query_params)))


@get("/wallets/{wallet_id:str}/history.csv", include_in_schema=False, dependencies=ACCOUNT)
async def wallet_csv(request: Request, session: WebSession, wallet_id: str) -> Stream:
    auth = await session.wallet(wallet_id)
    q = HistoryQuery.from_params(auth.wallet_id, history_params(history_filters(request.query_params)))
    return Stream(csv_pages(q), media_type="text/csv",
                  headers={"content-disposition": 'attachment; filename="payments.csv"'})


@post("/wallets/{wallet_id:str}/rename", include_in_schema=False, dependencies=ACCOUNT)
async def rename_wallet(request: Request, session: WebSession, wallet_id: str) -> Response[str]:
    form = await checked_form(request)
    auth = await session.wallet(wallet_id)
    try:
        name = name_field(form)
        if not name:
            raise BadRequest("name: give the wallet a name")
    except BadRequest as exc:
        return await wallet_page_response(request, session, wallet_id, status_code=400,
                                          manage_error=exc.detail)
    await host_of(request).wallets.update(auth.wallet_id, name=name)
    return redirect(f"/wallets/{wallet_id}")


@post("/wallets/{wallet_id:str}/delete", include_in_schema=False, dependencies=ACCOUNT)
async def delete_wallet(request: Request, session: WebSession, wallet_id: str) -> Response[str]:
    form = await checked_form(request)
    auth = await session.wallet(wallet_id)
    try:
        if form.get("confirm") != "yes":
            raise BadRequest("Tick the box to confirm.")
        await host_of(request).wallets.delete(auth.wallet_id, auth.account_id)
    except FulmenError as exc:
        return await wallet_page_response(request, session, wallet_id, status_code=exc.status_code,
                                          manage_error=exc.detail)
    return redirect("/wallets")


@post("/wallets/{wallet_id:str}/keys", include_in_schema=False, dependencies=ACCOUNT)
async def rotate_keys(request: Request, session: WebSession, wallet_id: str) -> Response[str]:
    await checked_form(request)
    auth = await session.wallet(wallet_id)
    wallet = await host_of(request).wallets.rotate_keys(auth.wallet_id)
    return await render_page(
        request, ENV, "account_keys.html", session=session, heading=f"New keys for {wallet.name}",
        token=None, keys=wallet.keys, wallet_id=wallet.id, qr=qr_svg(wallet.keys["admin"]),
        done_action=f"/wallets/{wallet.id}/keys/saved",
    )


@post("/wallets/{wallet_id:str}/keys/saved", include_in_schema=False, dependencies=ACCOUNT)
async def wallet_keys_saved(request: Request, session: WebSession, wallet_id: str) -> Response[str]:
    await checked_form(request)
    await session.wallet(wallet_id)
    return redirect(f"/wallets/{wallet_id}")


async def part(request: Request, session: WebSession, wallet_id: str, fragment: str, status_code: int,
               **context: Any) -> Response[str]:
    """An htmx fragment, or the whole wallet page for a plain form post."""
    if is_htmx(request):
        auth = await session.wallet(wallet_id)
        wallet = await host_of(request).wallets.get(auth.wallet_id)
        return await render_page(request, ENV, fragment, status_code=status_code, session=session,
                                 wallet=wallet, **context)
    return await wallet_page_response(request, session, wallet_id, status_code=status_code, **context)


@post("/wallets/{wallet_id:str}/invoice", include_in_schema=False, dependencies=ACCOUNT)
async def create_invoice(request: Request, session: WebSession, wallet_id: str) -> Response[str]:
    form = await checked_form(request)
    auth = await session.wallet(wallet_id)
    host = host_of(request)
    try:
        memo = (form.get("memo") or "").strip()
        if len(memo.encode()) > 639:
            raise BadRequest("memo: at most 639 bytes")
        amount = sats_field(form, "amount")
        assert amount is not None
        payment = await host.payments.create_invoice(auth, InvoiceRequest(
            amount_msat=amount, memo=memo, expiry=host.settings.default_invoice_expiry,
        ))
    except FulmenError as exc:
        return await part(request, session, wallet_id, "_invoice.html", exc.status_code,
                          receive_error=exc.detail)
    return await part(request, session, wallet_id, "_invoice.html", 200, invoice=payment,
                      qr=qr_svg(f"lightning:{payment.bolt11}".upper()))


BOLT11_PREFIXES = ("lnbc", "lntb", "lntbs", "lnbcrt", "lnsb")


async def check_target(host: Host, target: str, amount_msat: int | None) -> dict[str, Any]:
    """What the user is about to pay: amount, fee reserve, description, payee."""
    target = target.strip()
    if target.lower().startswith("lightning:"):
        target = target[len("lightning:"):]
    if not target:
        raise BadRequest("target: paste an invoice, LNURL or Lightning Address")
    if target.lower().startswith(BOLT11_PREFIXES):
        try:
            decoded = bolt11_lib.decode(target)
        except Exception:  # noqa: BLE001 - the decoder raises many kinds
            raise BadRequest("target: this is not a valid Lightning invoice") from None
        if not decoded.amount_msat:
            raise BadRequest("target: this invoice has no amount; ask for one with an amount")
        amount = int(decoded.amount_msat)
        return {"template": "_send_confirm.html", "target": target, "amount_msat": amount,
                "fee_reserve_msat": host.settings.fee_reserve(amount),
                "description": decoded.description, "payee": decoded.payee}
    described = await LnurlClient(host).describe(target)
    if described.get("kind") != "pay":
        raise BadRequest("target: this LNURL is not a pay link")
    low, high = int(described["minSendable"]), int(described["maxSendable"])
    if amount_msat is None:
        if low != high:
            raise BadRequest(f"amount: enter an amount between {math.ceil(low / 1000):,} and "
                             f"{high // 1000:,} sat")
        amount_msat = low
    if not low <= amount_msat <= high:
        raise BadRequest(f"amount: must be between {math.ceil(low / 1000):,} and {high // 1000:,} sat")
    return {"template": "_send_confirm.html", "target": target, "amount_msat": amount_msat,
            "fee_reserve_msat": host.settings.fee_reserve(amount_msat),
            "description": described.get("description"),
            "payee": described.get("lnaddress") or described.get("domain")}


@post("/wallets/{wallet_id:str}/send/check", include_in_schema=False, dependencies=ACCOUNT)
async def send_check(request: Request, session: WebSession, wallet_id: str) -> Response[str]:
    form = await checked_form(request)
    await session.wallet(wallet_id)
    try:
        send = await check_target(host_of(request), form.get("target") or "",
                                  sats_field(form, "amount", required=False))
    except FulmenError as exc:
        return await part(request, session, wallet_id, "_send_confirm.html", exc.status_code,
                          send={"template": "_send_confirm.html", "error": exc.detail})
    return await part(request, session, wallet_id, "_send_confirm.html", 200, send=send)


@post("/wallets/{wallet_id:str}/send", include_in_schema=False, dependencies=ACCOUNT)
async def send(request: Request, session: WebSession, wallet_id: str) -> Response[str]:
    form = await checked_form(request)
    auth = await session.wallet(wallet_id)
    host = host_of(request)
    try:
        checked = await check_target(host, form.get("target") or "", sats_field(form, "amount", False))
        if checked["target"].lower().startswith(BOLT11_PREFIXES):
            payment = await host.payments.pay(auth, checked["target"])
        else:
            payment = await LnurlClient(host).pay(auth, checked["target"], None, checked["amount_msat"])
    except FulmenError as exc:
        return await part(request, session, wallet_id, "_send_done.html", exc.status_code,
                          send={"template": "_send_done.html", "error": exc.detail})
    return await part(request, session, wallet_id, "_send_done.html", 200,
                      send={"template": "_send_done.html", "payment": payment})


@get("/wallets/{wallet_id:str}/events", include_in_schema=False, dependencies=ACCOUNT)
async def wallet_events(request: Request, session: WebSession, wallet_id: str) -> ServerSentEvent:
    """The wallet's payments as they settle, for the open page (session, not key)."""
    auth = await session.wallet(wallet_id)
    host = host_of(request)
    sub = host.events.subscribe_wallet(auth.wallet_id)

    async def stream() -> AsyncIterator[ServerSentEventMessage]:
        await sub.open()
        try:
            yield ServerSentEventMessage(data=None, comment="connected", retry=3000)
            while True:
                event = await sub.next(15.0)
                if event is None and sub.closed:
                    return
                if event is None:
                    if await load_session(request) is None:  # signed out elsewhere
                        return
                    yield ServerSentEventMessage(data=None, comment="keep-alive")
                    continue
                payment = event.data.get("payment", {})
                yield ServerSentEventMessage(event="payment", data=json.dumps({
                    "payment_hash": event.payment_hash, "status": payment.get("status"),
                    "amount_msat": payment.get("amount"), "balance_sat": event.data.get("wallet_balance"),
                }))
        finally:
            sub.close()

    return ServerSentEvent(stream(), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


ROUTES: list[Any] = [
    home, login, logout, signup, keys_saved, account_page, set_password, rotate_token,
    wallets_page, create_wallet, wallet_page, wallet_history, wallet_csv, rename_wallet, delete_wallet,
    rotate_keys, wallet_keys_saved, create_invoice, send_check, send, wallet_events,
]
