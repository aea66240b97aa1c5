"""Helpers for the LNURL tests (lnurlp, withdraw, the host's LNURL client).

`start_looped` starts the in-process test host with a loopback base URL and
routes the host's own outbound fetches of that URL back into the app, so the
host's LNURL client really fetches the plugins' LNURL endpoints (through
`host.http`, with its URL checks), while everything else (a webhook
receiver) goes over the real network.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from bolt11 import Bolt11, MilliSatoshi, TagChar, Tags, encode
from fulmen import query
from fulmen.testing import free_port


async def start_looped(fulmen: Any, plugins: list[str], **settings: Any) -> tuple[httpx.AsyncClient, str]:
    base = f"http://127.0.0.1:{free_port()}"
    client = await fulmen.start(plugins=plugins, base_url=base, **settings)
    http = fulmen.host.http
    old = http.client
    http.client = httpx.AsyncClient(
        timeout=http.timeout, follow_redirects=False,
        mounts={base: httpx.ASGITransport(app=fulmen.app)},
    )
    await old.aclose()
    return client, base


async def payment_count(wallet_id: str) -> int:
    rows = await query("SELECT COUNT(*) AS n FROM fulmen_payment WHERE wallet_id = {}", wallet_id)
    return int(rows[0]["n"])


class Receiver:
    """A plain HTTP server on loopback that records what is POSTed to it and
    answers with `reply` (HTTP status)."""

    def __init__(self, reply: int = 200, body: dict | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.reply = reply
        self.body = body
        self.gets: dict[str, Any] = {}  # path -> JSON answered to GET
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                receiver.requests.append({"path": self.path, "headers": dict(self.headers),
                                          "json": json.loads(raw or b"null")})
                self._answer(receiver.reply, receiver.body or {"ok": True})

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path not in receiver.gets:
                    self._answer(404, {"status": "ERROR", "reason": "not here"})
                    return
                receiver.requests.append({"path": self.path, "method": "GET"})
                self._answer(200, receiver.gets[path])

            def _answer(self, status: int, data: Any) -> None:
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        import asyncio

        deadline = time.monotonic() + timeout
        while len([r for r in self.requests if "json" in r]) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return [r for r in self.requests if "json" in r]


def amountless_invoice() -> str:
    """A valid bolt11 invoice without an amount, signed by a throwaway key."""
    tags = Tags()
    tags.add(TagChar.payment_hash, secrets.token_hex(32))
    tags.add(TagChar.payment_secret, secrets.token_hex(32))
    tags.add(TagChar.description, "no amount")
    tags.add(TagChar.expire_time, 3600)
    return encode(Bolt11(currency="bc", date=int(time.time()), tags=tags), secrets.token_hex(32))


def foreign_invoice(amount_msat: int, description_hash: str | None = None, expiry: int = 3600,
                    date: int | None = None) -> str:
    """A valid bolt11 invoice from a node that is not this host."""
    tags = Tags()
    tags.add(TagChar.payment_hash, secrets.token_hex(32))
    tags.add(TagChar.payment_secret, secrets.token_hex(32))
    if description_hash:
        tags.add(TagChar.description_hash, description_hash)
    else:
        tags.add(TagChar.description, "foreign")
    tags.add(TagChar.expire_time, expiry)
    return encode(Bolt11(currency="bc", date=date or int(time.time()), tags=tags,
                         amount_msat=MilliSatoshi(amount_msat)), secrets.token_hex(32))
