"""Rate limits per client address and per key, with the `limits` package.

Counters live in Redis when `REDIS_URL` is set (so every process of a
deployment shares them) and in this process's memory otherwise. A route
opts in by naming its bucket in its handler's `opt` (plugins too):

    @get("/api/v1/lnurl/cb/{link_id:str}", opt={"rate_limit": "lnurl_callback"})

and a handler that only knows its bucket after reading the body calls
`await enforce(request, bucket)`. Over the limit the answer is 429 with
`Retry-After` (seconds).

The client address is the connection's peer, or, when the peer is one of
`FULMEN_TRUSTED_PROXIES`, the right-most address in `X-Forwarded-For` that
is not itself a trusted proxy.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from .errors import FulmenError

if TYPE_CHECKING:
    from litestar import Request

    from .settings import Settings

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BUCKETS = ("signup", "invoice", "payment", "lnurl_callback", "withdraw_claim")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TooManyRequests(FulmenError):
    status_code = 429

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


def parse_networks(text: str) -> list[Network]:
    return [ipaddress.ip_network(p.strip(), strict=False) for p in text.split(",") if p.strip()]


def client_address(scope: Scope, trusted: list[Network]) -> str:
    """The client's address: the peer, or behind trusted proxies the right-most
    untrusted `X-Forwarded-For` entry."""
    peer = (scope.get("client") or ("unknown", 0))[0]

    def is_trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in trusted)

    if not trusted or not is_trusted(peer):
        return peer
    forwarded = [v.decode("latin-1") for k, v in scope.get("headers") or []
                 if k == b"x-forwarded-for"]
    hops = [h.strip() for h in ",".join(forwarded).split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # a forged or garbled entry: count it against the proxy
    return peer


def key_of(scope: Scope) -> str | None:
    """A digest of the request's credential (X-Api-Key, bearer or `api-key`
    query parameter), so the raw key is never a storage key."""
    headers = dict(scope.get("headers") or [])
    raw = headers.get(b"x-api-key") or headers.get(b"authorization")
    if not raw:
        return None
    return hashlib.sha256(raw).hexdigest()[:32]


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limits_enabled
        self.trusted = parse_networks(settings.trusted_proxies)
        self.items: dict[str, list[RateLimitItem]] = {
            b: parse_many(getattr(settings, f"rate_limit_{b}")) for b in BUCKETS
            if getattr(settings, f"rate_limit_{b}")
        }
        storage: Storage
        if settings.redis_url and self.enabled and self.items:
            url = settings.redis_url
            storage = RedisStorage(url if url.startswith("async+") else "async+" + url,
                                   implementation="redispy", key_prefix="fulmen-ratelimit")
        else:
            storage = MemoryStorage()
        self.storage = storage
        self.limiter = MovingWindowRateLimiter(storage)

    async def check(self, scope: Scope, bucket: str) -> None:
        """Count one request in `bucket` for its address and its key; raise
        `TooManyRequests` when either is over a limit."""
        if not self.enabled or bucket not in self.items:
            return
        who = [("address", client_address(scope, self.trusted))]
        key = key_of(scope)
        if key:
            who.append(("key", key))
        for item in self.items[bucket]:
            for kind, ident in who:
                try:
                    allowed = await self.limiter.hit(item, bucket, kind, ident)
                except Exception as exc:  # noqa: BLE001 - storage down: serve, say so
                    log.warning("rate limit storage unavailable, not limiting: %r", exc)
                    return
                if not allowed:
                    stats = await self.limiter.get_window_stats(item, bucket, kind, ident)
                    wait = max(1, math.ceil(stats.reset_time - time.time()))
                    raise TooManyRequests(
                        f"too many {bucket.replace('_', ' ')} requests from this {kind} "
                        f"(limit {item}); try again in {wait} s", wait)


async def enforce(request: Request, bucket: str) -> None:
    """For a handler that knows its bucket only after reading the body."""
    limits: RateLimits = request.app.state.rate_limits
    await limits.check(request.scope, bucket)  # type: ignore[arg-type]


def too_many_response(exc: TooManyRequests) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    body = json.dumps({"detail": exc.detail, "status_code": 429}).encode()
    return body, [(b"content-type", b"application/json"),
                  (b"content-length", str(len(body)).encode()),
                  (b"retry-after", str(exc.retry_after).encode())]


class RateLimitMiddleware:
    """Applies `opt={"rate_limit": bucket}` of the matched route handler."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = scope.get("route_handler")
        bucket = getattr(handler, "opt", {}).get("rate_limit") if handler is not None else None
        if bucket and scope["type"] == "http":
            limits: RateLimits = scope["app"].state.rate_limits
            try:
                await limits.check(scope, bucket)
            except TooManyRequests as exc:
                body, headers = too_many_response(exc)
                await send({"type": "http.response.start", "status": 429, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


class StreamCaps:
    """Open streams (WebSocket, SSE) per client address and per key, counted in
    this process: a stream lives in one process, so the cap holds per process."""

    def __init__(self, settings: Settings) -> None:
        self.per_address = settings.max_streams_per_address
        self.per_key = settings.max_streams_per_key
        self.trusted = parse_networks(settings.trusted_proxies)
        self.open: dict[tuple[str, str], int] = {}

    def acquire(self, scope: Scope) -> list[tuple[str, str]] | None:
        """The counters taken, or None (nothing taken) when one is full."""
        taken = [("address", client_address(scope, self.trusted))]
        key = key_of(scope)
        channel = (scope.get("path_params") or {}).get("channel")
        if key is None and isinstance(channel, str) and len(channel) != 64:
            key = hashlib.sha256(channel.encode()).hexdigest()[:32]  # a wallet key in the path
        if key is not None:
            taken.append(("key", key))
        for slot in taken:
            cap = self.per_address if slot[0] == "address" else self.per_key
            if cap and self.open.get(slot, 0) >= cap:
                return None
        for slot in taken:
            self.open[slot] = self.open.get(slot, 0) + 1
        return taken

    def release(self, taken: list[tuple[str, str]]) -> None:
        for slot in taken:
            left = self.open.get(slot, 0) - 1
            if left > 0:
                self.open[slot] = left
            else:
                self.open.pop(slot, None)


class StreamCapMiddleware:
    """Applies `opt={"stream": True}` of the matched handler: 429 (SSE) or a
    refused handshake (WebSocket, close code 1008) beyond the caps."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = scope.get("route_handler")
        if handler is None or not getattr(handler, "opt", {}).get("stream"):
            await self.app(scope, receive, send)
            return
        caps: StreamCaps = scope["app"].state.stream_caps
        taken = caps.acquire(scope)
        if taken is None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008,
                            "reason": "too many open streams"})
                return
            body, headers = too_many_response(TooManyRequests(
                "too many open streams from this address or key; close one first", 5))
            await send({"type": "http.response.start", "status": 429, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        try:
            await self.app(scope, receive, send)
        finally:
            caps.release(taken)
