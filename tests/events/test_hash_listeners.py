"""Payment-hash listeners (`/api/v1/ws/{payment_hash}`): fed by the bus, and
idle ones cost no database reads."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import fulmen.events as events_module
import pytest
import redis.asyncio as aioredis
from fulmen.testing import free_port


async def next_status(sub: Any, timeout: float = 5.0) -> dict:
    return await asyncio.wait_for(sub.__anext__(), timeout)


def count_queries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SQL statement the event bus runs from now on."""
    seen: list[str] = []
    real = events_module.query

    async def counting(sql: str, *args: Any) -> Any:
        seen.append(sql)
        return await real(sql, *args)

    monkeypatch.setattr(events_module, "query", counting)
    return seen


async def test_idle_hash_listeners_do_not_read_the_database(fulmen_db, monkeypatch):
    monkeypatch.setenv("FULMEN_EVENT_POLL_SECONDS", "0.05")
    await fulmen_db.start()
    bus = fulmen_db.host.events
    assert bus.config.event_poll_seconds == 0.05
    alice = await fulmen_db.wallet("alice", sats=100)
    bob = await fulmen_db.wallet("bob")
    invoices = [await fulmen_db.invoice(bob, 1) for _ in range(5)]
    hashes = [inv["payment_hash"] for inv in invoices] * 40  # 200 listeners
    subs = [await bus.subscribe_hash(h).open() for h in hashes]
    waiting = [asyncio.ensure_future(sub.__anext__()) for sub in subs]
    try:
        seen = count_queries(monkeypatch)
        await asyncio.sleep(0.5)  # ten poll intervals
        if fulmen_db.database_url.startswith("postgresql"):
            # Several processes may share PostgreSQL without Redis: one batched
            # read per interval for all 200 listeners, instead of 200 per interval.
            assert 1 <= len(seen) <= 12 and all("IN (" in sql for sql in seen)
        else:
            assert seen == []  # one process: the bus brings every event
        assert not any(task.done() for task in waiting)
        assert (await fulmen_db.pay(alice, invoices[0]["bolt11"])).status_code == 201
        for sub, task in zip(subs, waiting):
            if sub.payment_hash == invoices[0]["payment_hash"]:
                assert await asyncio.wait_for(task, 5) == {"pending": False, "status": "success"}
        await asyncio.sleep(0.1)
        assert sum(task.done() for task in waiting) == 40  # only the paid invoice's listeners
    finally:
        for task in waiting:
            task.cancel()
        for sub in subs:
            sub.close()


async def test_a_lost_event_is_delivered_by_the_resync(fulmen_db, monkeypatch):
    await fulmen_db.start()
    bus = fulmen_db.host.events
    alice = await fulmen_db.wallet("alice", sats=100)
    bob = await fulmen_db.wallet("bob")
    inv = await fulmen_db.invoice(bob, 10)
    async with bus.subscribe_hash(inv["payment_hash"]) as sub:
        assert sub.status == "pending"
        monkeypatch.setattr(bus, "_dispatch", lambda event: None)  # the event is lost in transit
        assert (await fulmen_db.pay(alice, inv["bolt11"])).status_code == 201
        await fulmen_db.host.payments.settlement.drain()
        with pytest.raises(asyncio.TimeoutError):
            await next_status(sub, 0.3)
        bus._resync_all()  # what the bus does when it may have missed events
        assert await next_status(sub) == {"pending": False, "status": "success"}


async def test_a_resync_read_never_takes_a_paid_status_back(fulmen):
    await fulmen.start()
    bob = await fulmen.wallet("bob")
    inv = await fulmen.invoice(bob, 10)
    async with fulmen.host.events.subscribe_hash(inv["payment_hash"]) as sub:
        sub.offer("success")
        sub.offer("pending")  # a status read that raced the payment
        assert await next_status(sub) == {"pending": False, "status": "success"}
        with pytest.raises(asyncio.TimeoutError):
            await next_status(sub, 0.2)


async def test_redis_reconnect_resyncs_hash_listeners(fulmen, redis_url, monkeypatch):
    monkeypatch.setenv("FULMEN_EVENT_REDIS_CHANNEL", f"fulmen-test-{uuid.uuid4().hex}")
    # Short polls: with Redis up, an idle listener still reads nothing.
    monkeypatch.setenv("FULMEN_EVENT_POLL_SECONDS", "0.05")
    await fulmen.start(redis_url=redis_url)
    bus = fulmen.host.events
    alice = await fulmen.wallet("alice", sats=100)
    bob = await fulmen.wallet("bob")
    inv = await fulmen.invoice(bob, 10)
    async with bus.subscribe_hash(inv["payment_hash"]) as sub:
        seen = count_queries(monkeypatch)
        monkeypatch.setattr(bus, "_dispatch", lambda event: None)  # lost in transit
        assert (await fulmen.pay(alice, inv["bolt11"])).status_code == 201
        with pytest.raises(asyncio.TimeoutError):
            await next_status(sub, 0.3)
        assert not [sql for sql in seen if "fulmen_payment" in sql]  # idle: no status reads
        # The Redis subscription drops; the bus reconnects and resyncs.
        real_get_message = aioredis.client.PubSub.get_message
        dropped: list[bool] = []

        async def get_message(self: Any, *args: Any, **kwargs: Any) -> Any:
            events_channel = any(b"fulmen-test-" in (c if isinstance(c, bytes) else str(c).encode())
                                 for c in self.channels)
            if events_channel and not dropped:  # the event bus's subscription, once
                dropped.append(True)
                raise ConnectionError("connection lost")
            return await real_get_message(self, *args, **kwargs)

        monkeypatch.setattr(aioredis.client.PubSub, "get_message", get_message)
        assert await next_status(sub, 10) == {"pending": False, "status": "success"}
        assert dropped
        assert len([sql for sql in seen if "IN (" in sql]) >= 1  # one batched read


async def test_a_failed_publish_makes_the_other_processes_resync(fulmen, redis_url, monkeypatch):
    channel = f"fulmen-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("FULMEN_EVENT_REDIS_CHANNEL", channel)
    await fulmen.start(redis_url=redis_url)
    here = fulmen.host.events
    # Another process's bus on the same channel and database.
    elsewhere = events_module.EventBus(redis_url, fulmen.host.spawn, events_module.EventSettings())
    await elsewhere.start()
    try:
        alice = await fulmen.wallet("alice", sats=100)
        bob = await fulmen.wallet("bob")
        inv = await fulmen.invoice(bob, 10)
        async with elsewhere.subscribe_hash(inv["payment_hash"]) as sub:
            real_publish = here._redis.publish

            async def failing_publish(*args: Any) -> Any:
                monkeypatch.setattr(here._redis, "publish", real_publish)
                raise ConnectionError("Redis is away")

            monkeypatch.setattr(here._redis, "publish", failing_publish)
            assert (await fulmen.pay(alice, inv["bolt11"])).status_code == 201
            assert await next_status(sub, 10) == {"pending": False, "status": "success"}
    finally:
        await elsewhere.stop()


async def test_while_redis_is_unreachable_listeners_are_polled_in_one_batch(fulmen, monkeypatch):
    monkeypatch.setenv("FULMEN_EVENT_POLL_SECONDS", "0.1")
    # Nothing listens on this port: the subscription never comes up.
    await fulmen.start(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    bus = fulmen.host.events
    alice = await fulmen.wallet("alice", sats=100)
    bob = await fulmen.wallet("bob")
    invoices = [await fulmen.invoice(bob, 10) for _ in range(3)]
    subs = [await bus.subscribe_hash(inv["payment_hash"]).open() for inv in invoices]
    try:
        monkeypatch.setattr(bus, "_dispatch", lambda event: None)  # as if paid on another process
        assert (await fulmen.pay(alice, invoices[1]["bolt11"])).status_code == 201
        seen = count_queries(monkeypatch)
        assert await next_status(subs[1]) == {"pending": False, "status": "success"}
        assert all("IN (" in sql for sql in seen)  # batched reads only, none per listener
    finally:
        for sub in subs:
            sub.close()
