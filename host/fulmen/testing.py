"""Pytest fixtures for the host's tests and for plugin authors.

Installed as a pytest plugin (entry point `pytest11`), so a plugin's own
tests get them with no set-up:

    async def test_my_route(fulmen):
        client = await fulmen.start(plugins=["myplugin"])
        alice = await fulmen.wallet("alice", sats=1000)
        r = await client.get("/myplugin/api/v1/things", headers=alice.invoice_headers)

Every test gets a fresh database. By default that is SQLite; tests that take
the `database` fixture (or `fulmen_db`) run on SQLite and on PostgreSQL;
`pg_fulmen` is a host on PostgreSQL only, `postgres_url` a fresh PostgreSQL
database for hosts in other processes. PostgreSQL is found
at FULMEN_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres);
when it is unreachable those tests are skipped with the reason, unless
FULMEN_REQUIRE_SERVICES=1 (CI), which makes that a failure.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from .plugins import Plugin

ADMIN_KEY = "test-admin-key-0123456789abcdef"
POSTGRES_URL = os.environ.get(
    "FULMEN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("FULMEN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def pytest_configure(config: pytest.Config) -> None:
    # Stops the host from loading whatever plugins happen to be installed.
    sys._called_from_test = True  # type: ignore[attr-defined]
    config.addinivalue_line("markers", "postgres: needs PostgreSQL")
    config.addinivalue_line("markers", "redis: needs Redis")
    config.addinivalue_line(
        "markers", "other_plugins: needs first-party plugins besides the one under test "
        "(left out when a plugin's tests run in its own install)")


def services_required() -> bool:
    return os.environ.get("FULMEN_REQUIRE_SERVICES", "") not in ("", "0", "false")


def reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 0), timeout=1):
            return True
    except OSError:
        return False


def need_service(name: str, url: str) -> None:
    if reachable(url):
        return
    message = f"{name} is not reachable at {url}"
    if services_required():
        pytest.fail(message + " and FULMEN_REQUIRE_SERVICES=1")
    pytest.skip(message + ": start it (see docs/operations.md) to run these tests")


async def create_postgres_database() -> str:
    import asyncpg

    name = f"fulmen_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = POSTGRES_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


async def drop_postgres_database(url: str) -> None:
    import asyncpg

    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards (skipped, or a
    failure in CI, when PostgreSQL is unreachable)."""
    need_service("PostgreSQL", POSTGRES_URL)
    url = await create_postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database URL; the test runs once per database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fulmen.sqlite3'}"
        return
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database URL (for hosts in other processes)."""
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def redis_url() -> str:
    need_service("Redis", REDIS_URL)
    return REDIS_URL


@dataclass
class TestWallet:
    id: str
    adminkey: str
    inkey: str
    readkey: str
    account_token: str
    raw: dict[str, Any]

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"X-Api-Key": self.adminkey}

    @property
    def invoice_headers(self) -> dict[str, str]:
        return {"X-Api-Key": self.inkey}

    @property
    def read_headers(self) -> dict[str, str]:
        return {"X-Api-Key": self.readkey}


def plugin(plugin_id: str, module: Any) -> Plugin:
    """A throwaway plugin for a test: any object with @hookimpl functions."""
    return Plugin(id=plugin_id, version="0.0.0", summary="test plugin", module=module)


class Fulmen:
    """A host under test and helpers to drive it over HTTP."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.tmp_path = tmp_path
        self.database_url = database_url
        self.client: Any = None
        self.host: Any = None
        self.app: Any = None
        self._client_cm: Any = None

    async def start(
        self,
        plugins: list[str | Plugin] | None = None,
        funding: Any = None,
        **settings: Any,
    ) -> Any:
        """Start a host (in this event loop) and return its async test client."""
        from .app import create_app
        from .host import Host
        from .plugins import discover
        from .settings import Settings

        values = {
            "data_dir": self.tmp_path / "data",
            "database_url": self.database_url,
            "admin_key": ADMIN_KEY,
            "allow_private_addresses": True,
            "reconcile_interval": 3600.0,
            "db_pool_min_size": 2,  # many short-lived hosts: open connections as needed
            "rates_providers": "",  # tests never ask the internet for a rate
            "rate_limits_enabled": False,  # tests make many requests from one address
            "max_streams_per_address": 0,
            **settings,
        }
        cfg = Settings(**values)
        names = [p for p in plugins or [] if isinstance(p, str)]
        infos = [p for p in plugins or [] if isinstance(p, Plugin)]
        if names:
            infos = discover(set(names)) + infos
            missing = set(names) - {i.id for i in infos}
            if missing:
                raise RuntimeError(f"plugins not installed: {sorted(missing)}")
        self.host = Host(cfg, funding=funding, plugins=infos)
        self.app = create_app(host=self.host)
        # The app runs in this test's event loop (httpx's ASGI transport), so
        # tests can use the same database pool as the app; the host's own
        # start/stop stands in for the ASGI lifespan.
        await self.host.start()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://testserver.local"
        )
        return self.client

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None
            await self.host.stop()

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_KEY}"}

    async def wallet(self, name: str = "wallet", sats: int = 0) -> TestWallet:
        """Create an account with one wallet, optionally funded by the admin."""
        r = await self.client.post("/api/v1/account", json={"name": name})
        assert r.status_code == 201, r.text
        data = r.json()
        w = TestWallet(data["id"], data["adminkey"], data["inkey"], data["readkey"],
                       data["access_token"], data)
        if sats:
            await self.fund(w, sats)
        return w

    async def fund(self, wallet: TestWallet, sats: int) -> None:
        r = await self.client.put("/users/api/v1/balance", json={"id": wallet.id, "amount": sats},
                                  headers=self.admin_headers)
        assert r.status_code == 200, r.text

    async def balance(self, wallet: TestWallet) -> int:
        """Balance in msat."""
        r = await self.client.get("/api/v1/wallet", headers=wallet.read_headers)
        assert r.status_code == 200, r.text
        return r.json()["balance"]

    async def invoice(self, wallet: TestWallet, sats: int, memo: str = "", **extra: Any) -> dict[str, Any]:
        r = await self.client.post("/api/v1/payments", headers=wallet.invoice_headers,
                                   json={"out": False, "amount": sats, "memo": memo, **extra})
        assert r.status_code == 201, r.text
        return r.json()

    async def pay(self, wallet: TestWallet, bolt11: str) -> httpx.Response:
        return await self.client.post("/api/v1/payments", headers=wallet.admin_headers,
                                      json={"out": True, "bolt11": bolt11})

    async def settle_from_outside(self, payment_hash: str) -> httpx.Response:
        """FakeWallet: mark an invoice paid as if by another node."""
        return await self.client.post(f"/admin/api/v1/fake/settle/{payment_hash}",
                                      headers=self.admin_headers)

    async def drain(self, timeout: float = 15.0) -> None:
        """Wait until post-commit work has run: listeners (events, metrics)
        and every payment-hook delivery that is due, including one the
        host's own worker is running right now. A hook that failed and waits
        for its retry does not hold this up."""
        from .db import now_ms, query

        await self.host.payments.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            await self.host.hooks.deliver_due()
            rows = await query(
                "SELECT COUNT(*) AS n FROM fulmen_hook_delivery WHERE status = 'pending' "
                "AND next_attempt_at <= {}",
                now_ms(),
            )
            if int(rows[0]["n"]) == 0 and not self.host.settlement.busy:
                return
            await asyncio.sleep(0.02)


@pytest.fixture
async def fulmen(tmp_path: Path) -> AsyncIterator[Fulmen]:
    """A host on a fresh SQLite database; call `await fulmen.start(...)`."""
    f = Fulmen(tmp_path, f"sqlite:///{tmp_path / 'fulmen.sqlite3'}")
    try:
        yield f
    finally:
        await f.stop()


@pytest.fixture
async def pg_fulmen(tmp_path: Path, postgres_url: str) -> AsyncIterator[Fulmen]:
    """A host on a fresh PostgreSQL database only (PostgreSQL-specific behaviour)."""
    f = Fulmen(tmp_path, postgres_url)
    try:
        yield f
    finally:
        await f.stop()


@pytest.fixture
async def fulmen_db(tmp_path: Path, database: str) -> AsyncIterator[Fulmen]:
    """Like `fulmen`, run once on SQLite and once on PostgreSQL."""
    f = Fulmen(tmp_path, database)
    try:
        yield f
    finally:
        await f.stop()


# --- real server processes, for multi-process tests and the benchmark ---------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`fulmen serve` in a subprocess on a loopback port."""

    def __init__(self, env: dict[str, str], port: int | None = None, log_path: Path | None = None,
                 python: str | None = None):
        self.python = python or sys.executable  # another venv's, to install plugins into it
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {"FULMEN_RATE_LIMITS_ENABLED": "false", "FULMEN_MAX_STREAMS_PER_ADDRESS": "0",
                    **os.environ, **env, "FULMEN_PORT": str(self.port), "FULMEN_HOST": "127.0.0.1"}
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> ServerProcess:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen([self.python, "-m", "fulmen", "serve"], env=self.env,
                                     stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(self.url + "/ready", timeout=5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server on {self.url} not ready after {timeout}s")

    def stop(self) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None
