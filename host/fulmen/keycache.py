"""Recently used API keys, kept in memory (on PostgreSQL).

Every request with an X-Api-Key looks its key up; on PostgreSQL that is a
network round trip, and a busy client sends the same key hundreds of times
a second. The cache keeps `digest -> WalletAuth` for up to `ttl` seconds.

A key must stop working at once in every process when it is rotated or its
wallet deleted. So the change sends `NOTIFY fulmen_keys, '<wallet id>'` in
its own transaction (PostgreSQL delivers it when that commits), and every
process LISTENs on a connection of its own and forgets that wallet's keys.
While that connection is down nothing is cached (and what was is dropped:
notifications may have been missed). SQLite is left uncached: there a
lookup is an in-process read costing about as much as the cache would.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

from .models import WalletAuth

log = logging.getLogger(__name__)

CHANNEL = "fulmen_keys"


class KeyCache:
    def __init__(self, ttl: float, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[str, tuple[WalletAuth, float]] = OrderedDict()
        self._listening = False  # only cache while invalidations can arrive
        self._task: asyncio.Task[None] | None = None
        # A lookup that started before an invalidation must not store its
        # (possibly stale) answer after it.
        self._generation = 0

    def generation(self) -> int:
        return self._generation

    def get(self, digest: str) -> WalletAuth | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        auth, expires = entry
        if expires < time.monotonic():
            del self._entries[digest]
            return None
        return auth

    def put(self, digest: str, auth: WalletAuth, generation: int) -> None:
        if not self._listening or generation != self._generation:
            return
        self._entries[digest] = (auth, time.monotonic() + self.ttl)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def drop_wallet(self, wallet_id: str) -> None:
        self._generation += 1
        for digest in [d for d, (auth, _) in self._entries.items() if auth.wallet_id == wallet_id]:
            del self._entries[digest]

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()

    # --- the LISTEN connection -------------------------------------------------------

    async def start(self, postgres_config: dict[str, Any] | None) -> None:
        """Listen for invalidations (PostgreSQL only; else stay off)."""
        if self.ttl <= 0 or postgres_config is None:
            return
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._listen(postgres_config, ready), name="fulmen-key-cache")
        try:
            await asyncio.wait_for(ready.wait(), 5)
        except TimeoutError:
            log.warning("key cache: not listening yet; every key is looked up meanwhile")

    async def stop(self) -> None:
        self._listening = False
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _listen(self, config: dict[str, Any], ready: asyncio.Event) -> None:
        import asyncpg

        delay = 0.5
        while True:
            lost = asyncio.Event()
            connection = None
            try:
                connection = await asyncpg.connect(**config, timeout=5)
                connection.add_termination_listener(lambda _, lost=lost: lost.set())
                await connection.add_listener(CHANNEL, self._notified)
                self.clear()  # anything sent while not listening
                self._listening = True
                ready.set()
                delay = 0.5
                while not lost.is_set():  # and notice a connection that died quietly
                    try:
                        await asyncio.wait_for(lost.wait(), 5)
                    except TimeoutError:
                        await connection.fetchval("SELECT 1", timeout=5)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("key cache: LISTEN failed (%r); retrying in %.1fs", exc, delay)
            finally:
                self._listening = False
                self.clear()
                if connection is not None and not connection.is_closed():
                    connection.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _notified(self, _connection: Any, _pid: int, _channel: str, wallet_id: str) -> None:
        self.drop_wallet(wallet_id)
