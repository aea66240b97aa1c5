"""Real-time events: WebSocket `/api/v1/ws/{key or payment_hash}` and SSE `/api/v1/events`.

Read-only by design. LNbits also lets anyone POST (or GET) a message into any
channel id; Fulmen has no publish route at all, and what a client sends over
a socket is ignored. Only the host writes events, after a payment commits.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from litestar import Request, WebSocket, get, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage

from ..errors import BadRequest, Unauthorized
from ..host import Host
from ..models import WalletAuth
from .auth import api_key_of, require_wallet_key

HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
POLICY_VIOLATION = 1008  # RFC 6455: the endpoint refuses the connection
SSE_KEEPALIVE_SECONDS = 15.0
SSE_RETRY_MS = 2000
# A stream re-checks its key (rotated? wallet deleted?) before sending an
# event when the last check is older than this, and when quiet this often.
KEY_RECHECK_SECONDS = 1.0
KEY_RECHECK_IDLE_SECONDS = 15.0


class KeyCheck:
    """Is the key a stream was opened with still a key of that wallet?"""

    def __init__(self, host: Host, key: str, wallet_id: str) -> None:
        self.host = host
        self.key = key
        self.wallet_id = wallet_id
        self.checked = time.monotonic()

    async def valid(self, force: bool = False) -> bool:
        now = time.monotonic()
        if not force and now - self.checked < KEY_RECHECK_SECONDS:
            return True
        try:
            auth = await self.host.wallets.authenticate_key(self.key)
        except Unauthorized:
            return False
        if auth.wallet_id != self.wallet_id:
            return False
        self.checked = now
        return True


async def _ignore_incoming(socket: WebSocket) -> None:
    """Read (and drop) what the client sends, until it goes away."""
    try:
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                return
    except WebSocketDisconnect:
        return


async def _pump(socket: WebSocket, messages: AsyncIterator[dict[str, Any]]) -> None:
    async def send_all() -> None:
        async for message in messages:
            await socket.send_json(message)

    tasks = [asyncio.ensure_future(_ignore_incoming(socket)), asyncio.ensure_future(send_all())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if socket.connection_state != "disconnect":
        try:
            await socket.close(code=1001)  # going away: the host is stopping
        except Exception:
            pass


async def _refuse(socket: WebSocket, reason: str) -> None:
    await socket.accept()
    await socket.close(code=POLICY_VIOLATION, reason=reason)


@websocket("/api/v1/ws/{channel:str}", opt={"stream": True})
async def ws_channel(socket: WebSocket, channel: str) -> None:
    """`channel` is a wallet key (admin, invoice or read-only: every event of
    that wallet) or a payment hash (status changes of that invoice)."""
    host: Host = socket.app.state.host
    if HEX64.match(channel):
        async with host.events.subscribe_hash(channel) as hsub:
            if hsub.status is None:
                await _refuse(socket, "Unknown payment hash.")
                return
            await socket.accept()
            if hsub.status != "pending":  # already decided before the page connected
                await socket.send_json({"pending": False, "status": hsub.status})
            await _pump(socket, hsub)
        return
    try:
        auth = await host.wallets.authenticate_key(channel)
    except Unauthorized:
        await _refuse(socket, "Invalid API key.")
        return
    # Subscribed before accepting: whatever commits after the client sees the
    # connection open reaches it.
    check = KeyCheck(host, channel, auth.wallet_id)
    async with host.events.subscribe_wallet(auth.wallet_id) as sub:
        await socket.accept()

        async def messages() -> AsyncIterator[dict[str, Any]]:
            while True:
                event = await sub.next(KEY_RECHECK_IDLE_SECONDS)
                if event is None and sub.closed:
                    return
                # The key may have been rotated (it leaked?) or the wallet deleted.
                if not await check.valid(force=event is None):
                    await socket.close(code=POLICY_VIOLATION, reason="API key no longer valid.")
                    return
                if event is not None:
                    yield event.data

        await _pump(socket, messages())


def _last_event_id(request: Request) -> int | None:
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest("Last-Event-ID must be a whole number (an event id from this stream)") from None
    if value < 0:
        raise BadRequest("Last-Event-ID must not be negative")
    return value


@get("/api/v1/events", dependencies={"wallet": require_wallet_key("read")}, opt={"stream": True},
     media_type="text/event-stream")
async def event_stream(request: Request, wallet: WalletAuth) -> ServerSentEvent:
    """The wallet's events as Server-Sent Events. Each has `id:` (the wallet's
    event number); reconnect with `Last-Event-ID` to get what was missed."""
    host: Host = request.app.state.host
    after = _last_event_id(request)
    if after is None:
        # "From now" is fixed before the response starts: a payment that
        # commits once the client has the headers is in the stream, even if
        # it commits before `open()` below runs.
        after = await host.events.last_seq(wallet.wallet_id)
    sub = host.events.subscribe_wallet(wallet.wallet_id, after)
    check = KeyCheck(host, api_key_of(request) or "", wallet.wallet_id)

    async def stream() -> AsyncIterator[ServerSentEventMessage]:
        # Opened here, so a client gone before the stream starts leaves nothing behind.
        await sub.open()
        try:
            if sub.missed:
                first, last = sub.missed
                yield ServerSentEventMessage(
                    event="gap", data=json.dumps({"missed_from": first, "missed_to": last}),
                )
            yield ServerSentEventMessage(data=None, comment="connected", retry=SSE_RETRY_MS)
            while True:
                event = await sub.next(SSE_KEEPALIVE_SECONDS)
                if event is None and sub.closed:
                    return
                # The key may have been rotated (it leaked?) or the wallet deleted.
                if not await check.valid(force=event is None):
                    return
                if event is None:
                    yield ServerSentEventMessage(data=None, comment="keep-alive")
                    continue
                yield ServerSentEventMessage(id=event.seq, event=event.type, data=json.dumps(event.data))
        finally:
            sub.close()

    return ServerSentEvent(stream(), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


ROUTES: list = [ws_channel, event_stream]
