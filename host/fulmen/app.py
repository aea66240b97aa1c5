"""The composition root: build the Host, mount core and plugin routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

from litestar import Litestar, Request, Response, Router, get
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.exceptions import HTTPException, NotFoundException
from litestar.handlers.base import BaseRouteHandler

from .api import (
    admin,
    events,
    health,
    lnurl,
    openapi,
    payments,
    rates,
    wallet_transfer,
    wallets,
    webhooks,
)
from .api.guard import InputGuard, unstorable_value
from .contract import PluginHost
from .errors import FulmenError
from .host import Host
from .ratelimit import (
    RateLimitMiddleware,
    RateLimits,
    StreamCapMiddleware,
    StreamCaps,
    TooManyRequests,
)
from .settings import Settings
from .version import __version__
from .web import SignInRequired
from .web import routes as web

log = logging.getLogger(__name__)


def fulmen_error(_: Request, exc: FulmenError) -> Response[dict[str, Any]]:
    return Response({"detail": exc.detail, "status_code": exc.status_code}, status_code=exc.status_code)


def too_many(_: Request, exc: TooManyRequests) -> Response[dict[str, Any]]:
    return Response({"detail": exc.detail, "status_code": 429}, status_code=429,
                    headers={"Retry-After": str(exc.retry_after)})


def http_error(_: Request, exc: HTTPException) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"detail": exc.detail, "status_code": exc.status_code}
    if exc.extra:
        body["extra"] = exc.extra
    return Response(body, status_code=exc.status_code, headers=exc.headers)


def internal_error(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    refused = unstorable_value(exc)
    if refused:
        return Response({"detail": refused, "status_code": 400}, status_code=400)
    # %r: a path with %0a in it cannot forge a log line.
    log.exception("unhandled error on %s %r", request.method, request.url.path, exc_info=exc)
    return Response({"detail": "Internal server error.", "status_code": 500}, status_code=500)


def sign_in_first(request: Request, exc: SignInRequired) -> Response[Any]:
    """A page that needs a session sends the browser to sign in."""
    target = "/admin" if exc.admin else "/?" + urlencode({"next": exc.next_path})
    return Response("", status_code=303, headers={"Location": target})


def plugin_enabled_guard(plugin_id: str):
    def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        if not connection.app.state.host.is_plugin_enabled(plugin_id):
            raise NotFoundException()

    return guard


@get("/.well-known/lnurlp/{username:str}")
async def lightning_address(request: Request, username: str) -> Response[dict[str, Any]]:
    host: Host = request.app.state.host
    answer = await host.hooks.resolve_lightning_address(username.lower(), host.base_url(request))
    if answer is None:
        return Response({"status": "ERROR", "reason": f"Unknown Lightning Address {username!r}."},
                        status_code=404)
    return Response(answer)


def context_provider(context: PluginHost):
    """Plugin handlers can take `host: PluginHost` as a parameter: their plugin's own."""

    async def provide() -> PluginHost:
        return context

    return provide


def plugin_routers(host: Host) -> list[Router]:
    """Each usable plugin's routes under `/{plugin_id}`, behind the serving-guard.
    A plugin whose `register_routes` fails is quarantined (fatal when strict)."""
    routers = []
    for plugin in host.registry.usable():
        try:
            handlers = host.hooks.register_routes(plugin)
            if handlers:
                provide = Provide(context_provider(host.context_for(plugin.id)))
                routers.append(Router(path=f"/{plugin.id}", route_handlers=handlers,
                                      guards=[plugin_enabled_guard(plugin.id)],
                                      dependencies={"host": provide}))
        except Exception as exc:
            plugin.quarantine(f"register_routes failed: {exc!r}")
    host.registry.check_strict()
    return routers


def create_app(settings: Settings | None = None, host: Host | None = None) -> Litestar:
    settings = settings or (host.settings if host else Settings())
    host = host or Host(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await host.start()
        try:
            yield
        finally:
            await host.stop()

    route_handlers: list[Any] = [
        *health.ROUTES, *wallet_transfer.ROUTES, *wallets.ROUTES, *payments.ROUTES, *admin.ROUTES, lightning_address,
        *lnurl.ROUTES, *events.ROUTES, *webhooks.ROUTES, *web.ROUTES, *rates.ROUTES,
        *plugin_routers(host),
    ]
    middleware: list[Any] = [InputGuard, RateLimitMiddleware, StreamCapMiddleware]
    app = Litestar(
        route_handlers=route_handlers,
        lifespan=[lifespan],
        exception_handlers={
            TooManyRequests: too_many,
            FulmenError: fulmen_error,
            SignInRequired: sign_in_first,
            HTTPException: http_error,
            Exception: internal_error,
        },
        middleware=middleware,
        allowed_hosts=[h.strip() for h in settings.allowed_hosts.split(",") if h.strip()] or None,
        openapi_config=openapi.config(__version__),
        debug=False,
    )
    app.state.host = host
    app.state.rate_limits = RateLimits(settings)
    app.state.stream_caps = StreamCaps(settings)
    return app
