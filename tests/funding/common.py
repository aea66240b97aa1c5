"""Helpers shared by the fake nodes and the funding-source tests."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bolt11
import uvicorn
from bolt11 import Bolt11, MilliSatoshi, TagChar, Tags

# A fixed key for invoices that fakes issue and that tests pay "elsewhere".
NODE_KEY = "11" * 32
OTHER_KEY = "22" * 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_bolt11(
    payment_hash: str,
    amount_msat: int,
    *,
    memo: str = "",
    description_hash: bytes | None = None,
    expiry: int = 3600,
    key: str = NODE_KEY,
    date: int | None = None,
) -> str:
    tags = Tags()
    tags.add(TagChar.payment_hash, payment_hash)
    tags.add(TagChar.payment_secret, secrets.token_hex(32))
    if description_hash is not None:
        tags.add(TagChar.description_hash, description_hash.hex())
    else:
        tags.add(TagChar.description, memo)
    tags.add(TagChar.expire_time, expiry)
    tags.add(TagChar.min_final_cltv_expiry, 18)
    inv = Bolt11(
        currency="bcrt",
        date=date if date is not None else int(time.time()),
        tags=tags,
        amount_msat=MilliSatoshi(amount_msat) if amount_msat else None,
    )
    return bolt11.encode(inv, key)


@dataclass
class External:
    """An invoice from some other node, for the backend under test to pay."""

    bolt11: str
    payment_hash: str
    preimage: str
    amount_msat: int


def external_invoice(
    amount_msat: int = 50_000, *, expiry: int = 3600, date: int | None = None
) -> External:
    preimage = secrets.token_bytes(32)
    payment_hash = hashlib.sha256(preimage).hexdigest()
    return External(
        make_bolt11(
            payment_hash, amount_msat, memo="elsewhere", expiry=expiry, key=OTHER_KEY, date=date
        ),
        payment_hash,
        preimage.hex(),
        amount_msat,
    )


def decode(pr: str) -> Bolt11:
    return bolt11.decode(pr)


def make_cert(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost, like a node makes."""
    cert = directory / f"{name}.cert"
    key = directory / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            f"/O=fake/CN={name}",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class AppServer:
    """Runs an ASGI app on a fixed loopback port; can stop and start again."""

    def __init__(self, app: Any, *, certfile: Path | None = None, keyfile: Path | None = None):
        self.app = app
        self.port = free_port()
        self.certfile = certfile
        self.keyfile = keyfile
        self.server: uvicorn.Server | None = None
        self.task: asyncio.Task | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.certfile else 'http'}://127.0.0.1:{self.port}"

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        config = uvicorn.Config(
            self.app,
            log_level="critical",
            lifespan="off",
            access_log=False,
            ssl_certfile=str(self.certfile) if self.certfile else None,
            ssl_keyfile=str(self.keyfile) if self.keyfile else None,
            timeout_graceful_shutdown=0.3,
        )
        self.server = uvicorn.Server(config)
        self.task = asyncio.create_task(self.server.serve(sockets=[sock]))
        for _ in range(500):
            if self.server.started:
                return
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.01)
        raise RuntimeError("fake server did not start")

    async def stop(self) -> None:
        if self.server is None or self.task is None:
            return
        self.server.should_exit = True
        try:
            await asyncio.wait_for(self.task, 5)
        finally:
            self.server = None
            self.task = None

    @property
    def running(self) -> bool:
        return self.server is not None


async def next_item(stream: AsyncIterator[str], timeout: float = 10.0) -> str:
    return await asyncio.wait_for(stream.__anext__(), timeout)


async def collect(stream: AsyncIterator[str], n: int, timeout: float = 10.0) -> list[str]:
    return [await next_item(stream, timeout) for _ in range(n)]


def ts() -> dict:
    now = time.time()
    return {"iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "unix": int(now)}


class Drain:
    """Consumes a paid-invoices stream in a task, as the host does, so the
    stream keeps running (and reconnecting) while the test does other things."""

    def __init__(self, stream: AsyncIterator[str]) -> None:
        self.stream = stream
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for item in self.stream:
            self.queue.put_nowait(item)

    async def next(self, timeout: float = 10.0) -> str:
        getter = asyncio.ensure_future(self.queue.get())
        done, _ = await asyncio.wait(
            {getter, self.task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if getter in done:
            return getter.result()
        getter.cancel()
        if self.task in done:
            self.task.result()  # re-raise what ended the stream
            raise AssertionError("stream ended")
        raise TimeoutError("no paid invoice in time")

    async def take(self, n: int, timeout: float = 10.0) -> list[str]:
        return [await self.next(timeout) for _ in range(n)]

    def pending(self) -> list[str]:
        items = []
        while not self.queue.empty():
            items.append(self.queue.get_nowait())
        return items

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.stream.aclose()
