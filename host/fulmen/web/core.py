"""What every web page shares: browser sessions, CSRF checks, templates.

Public for plugins (through `fulmen`): `page_environment`, `render_page`,
`WebSession`, `require_web_session`, `current_web_session`, `checked_form`,
`field_errors`, `redirect`.

- A session is a random token in an HttpOnly, SameSite=Lax cookie (Secure
  when the page was served over TLS); the database keeps only its sha256.
- Every state-changing form carries a CSRF token that must equal the
  `fulmen_csrf` cookie (double submit, HttpOnly, SameSite=Strict), and a
  cross-site `Origin` or `Sec-Fetch-Site` is refused.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, select_autoescape
from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.di import Provide

from ..db import now_ms, query
from ..errors import Forbidden, NotFound
from ..keys import key_hash, same
from ..models import Wallet, WalletAuth
from ..version import __version__

SESSION_COOKIE = "fulmen_session"
CSRF_COOKIE = "fulmen_csrf"
SESSION_MS = 30 * 86_400_000
HOST_TEMPLATES = Path(__file__).parent.parent / "templates"
_ENVIRONMENTS: dict[str, Environment] = {}


class SignInRequired(Exception):
    """Raised by `require_web_session`; the app answers with a redirect to the
    sign-in page (or the admin sign-in page)."""

    def __init__(self, admin: bool, next_path: str) -> None:
        super().__init__("sign-in required")
        self.admin = admin
        self.next_path = next_path


@dataclass
class WebSession:
    """Who is signed in to the browser: an account, or the operator (admin)."""

    account_id: str | None
    admin: bool
    name: str = ""
    username: str | None = None
    _wallets: list[Wallet] | None = field(default=None, repr=False)

    async def wallets(self) -> list[Wallet]:
        """The account's wallets (none for an admin session)."""
        if self._wallets is None:
            if self.account_id is None:
                self._wallets = []
            else:
                rows = await query(
                    "SELECT * FROM fulmen_wallet WHERE account_id = {} AND NOT deleted "
                    "ORDER BY created_at, id", self.account_id,
                )
                self._wallets = [Wallet.from_row(r) for r in rows]
        return self._wallets

    async def wallet(self, wallet_id: str) -> WalletAuth:
        """An admin-level `WalletAuth` for one of this account's wallets, for
        calling services on the user's behalf; 404 for anyone else's."""
        for wallet in await self.wallets():
            if wallet.id == wallet_id:
                return WalletAuth(wallet_id=wallet.id, account_id=wallet.account_id, kind="admin")
        raise NotFound("Wallet not found.")


def secure_request(request: Request) -> bool:
    host = request.app.state.host
    return request.url.scheme == "https" or host.base_url(request).startswith("https://")


async def load_session(request: Request) -> WebSession | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 128:
        return None
    rows = await query(
        "SELECT s.account_id, s.admin, a.name, a.username FROM fulmen_web_session s "
        "LEFT JOIN fulmen_account a ON a.id = s.account_id "
        "WHERE s.token_hash = {} AND s.expires_at > {}",
        key_hash(token), now_ms(),
    )
    if not rows:
        return None
    row = rows[0]
    return WebSession(account_id=row["account_id"], admin=bool(row["admin"]), name=row["name"] or "",
                      username=row["username"])


async def start_session(request: Request, response: Response, *, account_id: str | None = None,
                        admin: bool = False) -> None:
    """Sign the browser in: a new session token (any old one is ended)."""
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await query("DELETE FROM fulmen_web_session WHERE token_hash = {}", key_hash(old))
    token = secrets.token_urlsafe(32)
    now = now_ms()
    await query("DELETE FROM fulmen_web_session WHERE expires_at < {}", now)  # expired ones
    await query(
        "INSERT INTO fulmen_web_session (token_hash, account_id, admin, created_at, expires_at) "
        "VALUES ({}, {}, {}, {}, {})",
        key_hash(token), account_id, admin, now, now + SESSION_MS,
    )
    response.set_cookie(Cookie(
        key=SESSION_COOKIE, value=token, path="/", max_age=SESSION_MS // 1000, httponly=True,
        secure=secure_request(request), samesite="lax",
    ))


async def end_session(request: Request, response: Response) -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await query("DELETE FROM fulmen_web_session WHERE token_hash = {}", key_hash(token))
    response.delete_cookie(SESSION_COOKIE, path="/")


def require_web_session(admin: bool = False) -> Provide:
    """A dependency giving the handler the browser's `WebSession`. Without
    one the browser is sent to sign in; with `admin=True` only the operator's
    session is accepted, otherwise only an account's."""

    async def dependency(request: Request) -> WebSession:
        session = await load_session(request)
        if session is None or session.admin != admin:
            next_path = request.url.path if request.method == "GET" else "/"
            raise SignInRequired(admin, next_path)
        return session

    return Provide(dependency)


# --- CSRF -------------------------------------------------------------------------


def csrf_token(request: Request) -> str:
    """The browser's CSRF token (made on first use; `render_page` sets the cookie)."""
    token = request.cookies.get(CSRF_COOKIE) or request.scope.get("state", {}).get("fulmen_csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.scope.setdefault("state", {})["fulmen_csrf"] = token
    return token


def _same_origin(request: Request) -> bool:
    site = request.headers.get("sec-fetch-site")
    if site and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin and origin != "null":
        mine = urlsplit(str(request.base_url))
        theirs = urlsplit(origin)
        if (theirs.scheme, theirs.netloc) != (mine.scheme, mine.netloc):
            return False
    return True


async def checked_form(request: Request) -> dict[str, str]:
    """The submitted form, after the CSRF check (403 when it fails). Call it
    in every handler that changes state."""
    form = await request.form()
    sent = request.headers.get("x-csrf-token") or form.get("csrf_token") or ""
    cookie = request.cookies.get(CSRF_COOKIE) or ""
    if not cookie or not isinstance(sent, str) or not same(sent, cookie) or not _same_origin(request):
        raise Forbidden("This form has expired or came from another site: reload the page and try again.")
    return {k: v for k, v in form.items() if isinstance(v, str)}


# --- templates ----------------------------------------------------------------------


def page_environment(package: str | None = None) -> Environment:
    """A Jinja environment that finds `package`'s templates (in its
    `templates/` folder) and the host's, so a plugin page can
    `{% extends "base.html" %}`. One per package, cached."""
    key = package or ""
    env = _ENVIRONMENTS.get(key)
    if env is None:
        loaders: list[Any] = [FileSystemLoader(HOST_TEMPLATES)]
        if package:
            loaders.insert(0, PackageLoader(package, "templates"))
        env = Environment(loader=ChoiceLoader(loaders), autoescape=select_autoescape(["html"]))
        env.filters["sats"] = lambda msat: f"{int(msat) // 1000:,}"
        env.filters["btc"] = lambda msat: f"{int(msat) / 100_000_000_000:.8f}"
        _ENVIRONMENTS[key] = env
    return env


async def render_page(request: Request, env: Environment, template: str, /, *,
                      status_code: int = 200, session: WebSession | None = None,
                      **context: Any) -> Response[str]:
    """Render a page with what `base.html` needs: the session, the CSRF token,
    the navigation (host links and enabled plugins' `nav_entries`)."""
    host = request.app.state.host
    if session is None:
        session = await load_session(request)
    token = csrf_token(request)
    nav = await host.hooks.nav_entries() if session is not None and not session.admin else []
    nav.sort(key=lambda entry: entry["label"].lower())  # a stable order, whatever the plugins
    html = env.get_template(template).render(
        request=request, session=session, csrf_token=token, nav=nav, version=__version__,
        path=request.url.path, **context,
    )
    response: Response[str] = Response(html, media_type="text/html", status_code=status_code,
                                       headers={"Cache-Control": "no-store"})
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(Cookie(key=CSRF_COOKIE, value=token, path="/", httponly=True,
                                   secure=secure_request(request), samesite="strict"))
    return response


def redirect(path: str) -> Response[str]:
    """A 303 to a path on this site (never an absolute URL: no open redirect)."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        path = "/"
    return Response("", status_code=303, headers={"Location": quote(path, safe="/?=&%-_.~#")})


async def current_web_session(request: Request) -> WebSession | None:
    """The browser's session, or None (for pages that also serve visitors)."""
    return await load_session(request)


def field_errors(exc: Exception, fields: Iterable[str]) -> dict[str, str]:
    """A `FulmenError` as `{field: message}` for showing next to that field:
    the API's messages start with the field's name ("min must be ..."). A
    message naming no field is under the key ""."""
    detail = getattr(exc, "detail", None) or str(exc)
    for name in sorted(fields, key=len, reverse=True):
        if detail.startswith(name) and detail[len(name):len(name) + 1] in (" ", ":"):
            return {name: detail}
    return {"": detail}
