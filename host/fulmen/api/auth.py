"""Who is calling: wallet keys, account credentials, the admin credential.

Unknown credential: 401. Known but the wrong kind for the call: 403.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.handlers.base import BaseRouteHandler

from ..errors import Forbidden, Unauthorized
from ..host import Host
from ..models import WalletAuth

KIND_RANK = {"read": 0, "invoice": 1, "admin": 2}
KIND_NAMES = {"read": "read-only", "invoice": "invoice", "admin": "admin"}


def host_of(connection: ASGIConnection) -> Host:
    return connection.app.state.host


def api_key_of(connection: ASGIConnection) -> str | None:
    return connection.headers.get("x-api-key") or connection.query_params.get("api-key")


def bearer_of(connection: ASGIConnection) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def authenticate(connection: ASGIConnection, minimum: str) -> WalletAuth:
    key = api_key_of(connection)
    if not key:
        raise Unauthorized("Missing API key: send it in the X-Api-Key header.")
    auth = await host_of(connection).wallets.authenticate_key(key)
    if KIND_RANK[auth.kind] < KIND_RANK[minimum]:
        raise Forbidden(
            f"This call needs the wallet's {KIND_NAMES[minimum]} key; "
            f"a {KIND_NAMES[auth.kind]} key was sent."
        )
    return auth


def require_wallet_key(minimum: str = "invoice") -> Provide:
    """A dependency giving the handler a `WalletAuth` for a key of at least
    this kind: "read" < "invoice" < "admin". Public: plugins use it too."""
    if minimum not in KIND_RANK:
        raise ValueError(f"unknown key kind {minimum!r}")

    async def dependency(request: Request) -> WalletAuth:
        return await authenticate(request, minimum)

    return Provide(dependency)


async def account_id(request: Request) -> str:
    token = bearer_of(request)
    if not token:
        raise Unauthorized("Missing account credential: send Authorization: Bearer <token>.")
    return await host_of(request).wallets.authenticate_account(token)


async def admin_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    token = bearer_of(connection)
    if not token:
        raise Unauthorized("Missing admin credential: send Authorization: Bearer <admin key>.")
    host = host_of(connection)
    if host.check_admin(token):
        return
    # the admin key may have been rotated in Vault: read it again (rate-limited)
    from ..vault import rotated_admin_key

    rotated = await asyncio.to_thread(rotated_admin_key, host.admin_key)
    if rotated is not None:
        host.admin_key = rotated
        if host.check_admin(token):
            return
    raise Unauthorized("Invalid admin credential.")


GuardFn = Callable[[ASGIConnection, BaseRouteHandler], Any | Awaitable[Any]]
