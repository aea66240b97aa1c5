"""Helpers for the event and webhook tests: a real loopback server for an
in-process app (WebSockets and streaming need one), and a webhook receiver."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fulmen.funding.fake import FakeWallet
from fulmen.testing import free_port


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app on a loopback port in this event loop."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off",
                                           log_level="warning"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.ensure_future(server.serve())
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        server.force_exit = True
        await asyncio.wait_for(task, 10)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    path: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver: answers with the next status from `statuses`
    (then 200), after `delays` seconds when given."""

    statuses: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    calls: list[Received] = field(default_factory=list)
    url: str = ""
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        delay = self.delays.pop(0) if self.delays else 0
        status = self.statuses.pop(0) if self.statuses else 200
        self.calls.append(Received(headers, body, scope["path"]))
        self.arrived.set()
        if delay:
            await asyncio.sleep(delay)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok" if status < 300 else b"nope"})

    async def wait_for(self, count: int, timeout: float = 15) -> list[Received]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.calls) < count:
            remaining = deadline - asyncio.get_running_loop().time()
            assert remaining > 0, f"receiver got {len(self.calls)} calls, expected {count}"
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except TimeoutError:
                pass
        return self.calls


async def foreign_invoice(sats: int) -> str:
    """An invoice from some other node: FakeWallet cannot pay it, so paying fails."""
    created = await FakeWallet(secrets.token_hex(32)).create_invoice(sats * 1000, "elsewhere", None, 3600)
    return created.bolt11


async def http_wallet(client: httpx.AsyncClient, admin_key: str, name: str, sats: int = 0) -> dict:
    """Create and fund a wallet on a running server over HTTP."""
    r = await client.post("/api/v1/account", json={"name": name})
    assert r.status_code == 201, r.text
    wallet = r.json()
    if sats:
        r = await client.put("/users/api/v1/balance", json={"id": wallet["id"], "amount": sats},
                             headers={"Authorization": f"Bearer {admin_key}"})
        assert r.status_code == 200, r.text
    return wallet


class SSE:
    """Read Server-Sent Events from an open httpx streaming response."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()

    async def next(self, timeout: float = 5.0) -> dict[str, str]:
        """The next event with data (comments and keep-alives skipped)."""
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> dict[str, str]:
        fields: dict[str, str] = {}
        async for line in self.lines:
            if line == "":
                if "data" in fields:
                    return fields
                fields = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            fields[name] = fields[name] + "\n" + value if name in fields else value
        raise EOFError("stream ended")


def ws_url(base: str, channel: str) -> str:
    return base.replace("http://", "ws://") + f"/api/v1/ws/{channel}"
