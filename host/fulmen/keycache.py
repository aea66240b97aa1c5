"""Recently used API keys, kept in memory for a moment.

Every request with an X-Api-Key looks its key up (a database round trip);
a busy client sends the same key hundreds of times a second. The cache
keeps `digest -> WalletAuth` for `ttl` seconds. A key stops working when it
is rotated or its wallet deleted: at once in the process that made the
change, at once in other processes when Redis is configured (an
invalidation message; the whole cache is dropped whenever the subscription
is lost, since messages may have been missed), and otherwise after at most
`ttl` seconds. Money is never at stake in that window: a debit checks the
wallet row itself (a deleted wallet cannot spend).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

from .models import WalletAuth

log = logging.getLogger(__name__)

CHANNEL = "fulmen:keys"


class KeyCache:
    def __init__(self, ttl: float, size: int = 10_000, redis_url: str = "") -> None:
        self.ttl = ttl
        self.size = size
        self.redis_url = redis_url
        self._entries: OrderedDict[str, tuple[WalletAuth, float]] = OrderedDict()
        self._redis: Any = None
        self._listener: asyncio.Task[None] | None = None
        # Lookups that started before an invalidation must not store their
        # (possibly stale) answer after it.
        self._generation = 0
        # With Redis configured, only cache while subscribed (else an
        # invalidation could be missed for longer than the TTL).
        self._listening = not redis_url

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

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
        if not self.enabled or not self._listening or generation != self._generation:
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

    async def invalidate(self, wallet_id: str) -> None:
        """This wallet's keys changed: forget them here and in other processes."""
        self.drop_wallet(wallet_id)
        if self._redis is not None:
            try:
                await self._redis.publish(CHANNEL, wallet_id)
            except Exception as exc:  # the others fall back on the TTL
                log.warning("key cache: could not publish an invalidation (%r)", exc)

    # --- other processes (Redis) -------------------------------------------------

    async def start(self) -> None:
        if not (self.enabled and self.redis_url):
            return
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=5)
        subscribed = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(subscribed), name="fulmen-key-cache")
        try:
            await asyncio.wait_for(subscribed.wait(), 5)
        except TimeoutError:
            log.warning("key cache: Redis not reachable; entries expire after %.1fs", self.ttl)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def _listen(self, subscribed: asyncio.Event) -> None:
        import redis.asyncio as aioredis

        delay = 0.5
        while True:
            client = aioredis.from_url(self.redis_url, socket_connect_timeout=2)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                self.clear()  # whatever was published while not subscribed
                self._listening = True
                subscribed.set()
                delay = 0.5
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                    if message and message.get("type") == "message":
                        data = message["data"]
                        self.drop_wallet(data.decode() if isinstance(data, bytes) else str(data))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._listening = False
                self.clear()
                log.warning("key cache: Redis subscription lost (%r); retrying in %.1fs", exc, delay)
            finally:
                try:
                    await pubsub.aclose()
                    await client.aclose()
                except Exception:
                    pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
