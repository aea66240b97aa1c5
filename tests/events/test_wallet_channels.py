"""With Redis, each wallet's events go on the wallet's own channel, and a
process hears only the wallets it has listeners for."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import fulmen.events as events_module
import httpx
import pytest
import redis.asyncio as aioredis
import websockets
from event_helpers import http_wallet, ws_url
from fulmen.testing import ADMIN_KEY
from test_multiprocess import cluster_factory, invoice, pay  # noqa: F401 (a fixture)


@pytest.fixture
async def elsewhere(fulmen, redis_url, monkeypatch) -> AsyncIterator[events_module.EventBus]:
    """A host on SQLite with Redis, and another process's bus beside it (same
    database and channel); a long log poll, so only Redis carries events."""
    monkeypatch.setenv("FULMEN_EVENT_REDIS_CHANNEL", f"fulmen-test-{uuid.uuid4().hex}")
    monkeypatch.setenv("FULMEN_EVENT_POLL_SECONDS", "60")
    await fulmen.start(redis_url=redis_url)
    bus = events_module.EventBus(redis_url, fulmen.host.spawn, events_module.EventSettings())
    await bus.start()
    try:
        yield bus
    finally:
        await bus.stop()


def count_messages(bus: events_module.EventBus, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every Redis message the bus receives from now on."""
    seen: list[Any] = []
    real = bus._receive

    def counting(raw: Any) -> None:
        seen.append(raw)
        real(raw)

    monkeypatch.setattr(bus, "_receive", counting)
    return seen


async def subscribers(redis_url: str, channel: str) -> int:
    client = aioredis.from_url(redis_url)
    try:
        [(_, n)] = await client.pubsub_numsub(channel)
        return int(n)
    finally:
        await client.aclose()


async def wait_subscribers(redis_url: str, channel: str, n: int) -> None:
    for _ in range(200):
        if await subscribers(redis_url, channel) == n:
            return
        await asyncio.sleep(0.02)
    assert await subscribers(redis_url, channel) == n


async def test_a_process_without_listeners_for_a_wallet_receives_none_of_its_events(
    fulmen, elsewhere, monkeypatch
):
    alice = await fulmen.wallet("alice", sats=100)
    bob = await fulmen.wallet("bob")
    carol = await fulmen.wallet("carol")
    seen = count_messages(elsewhere, monkeypatch)
    dispatched: list[events_module.Event] = []
    real_dispatch = elsewhere._dispatch
    monkeypatch.setattr(elsewhere, "_dispatch", lambda e: (dispatched.append(e), real_dispatch(e)))
    async with elsewhere.subscribe_wallet(carol.id) as carols:
        for _ in range(5):
            assert (await fulmen.pay(alice, (await fulmen.invoice(bob, 1))["bolt11"])).status_code == 201
        await fulmen.host.payments.settlement.drain()
        # carol's event comes after bob's on the same Redis connection: once it
        # is here, bob's would have been too
        assert (await fulmen.pay(alice, (await fulmen.invoice(carol, 2))["bolt11"])).status_code == 201
        event = await carols.next(5)
        assert event is not None and event.wallet_id == carol.id
    assert len(seen) == 1 and [e.wallet_id for e in dispatched] == [carol.id]


async def test_listeners_on_another_process_get_its_payments(fulmen, elsewhere):
    alice = await fulmen.wallet("alice", sats=100)
    bob = await fulmen.wallet("bob")
    inv = await fulmen.invoice(bob, 7)
    async with elsewhere.subscribe_wallet(bob.id) as sub, \
            elsewhere.subscribe_hash(inv["payment_hash"]) as hsub:
        assert hsub.status == "pending"
        assert (await fulmen.pay(alice, inv["bolt11"])).status_code == 201
        event = await sub.next(3)
        assert event is not None and event.payment_hash == inv["payment_hash"] and event.seq == 1
        assert await asyncio.wait_for(hsub.__anext__(), 3) == {"pending": False, "status": "success"}
        # more payments, in order, each once
        for sats in (2, 3):
            assert (await fulmen.pay(alice, (await fulmen.invoice(bob, sats))["bolt11"])).status_code == 201
        got = [await sub.next(3) for _ in range(2)]
        assert [e.seq for e in got if e] == [2, 3]


async def test_a_hash_listener_opened_as_the_invoice_is_paid_elsewhere_sees_it(fulmen, elsewhere, monkeypatch):
    """The invoice is paid (and the event published) after the listener read
    its status but before its wallet's channel was subscribed: it reads the
    status again once subscribed."""
    alice = await fulmen.wallet("alice", sats=100)
    bob = await fulmen.wallet("bob")
    inv = await fulmen.invoice(bob, 7)
    real_listen = elsewhere._listen

    async def pay_then_listen(wallet_id: str, since: int | None = None) -> bool:
        assert (await fulmen.pay(alice, inv["bolt11"])).status_code == 201
        await fulmen.host.payments.settlement.drain()
        return await real_listen(wallet_id, since)

    monkeypatch.setattr(elsewhere, "_listen", pay_then_listen)
    async with elsewhere.subscribe_hash(inv["payment_hash"]) as hsub:
        assert hsub.status == "success"


async def test_closing_the_last_listener_unsubscribes(fulmen, elsewhere, redis_url, monkeypatch):
    alice = await fulmen.wallet("alice", sats=100)
    bob = await fulmen.wallet("bob")
    inv = await fulmen.invoice(bob, 7)
    channel = elsewhere.wallet_channel(bob.id)
    assert await subscribers(redis_url, channel) == 0
    sub = await elsewhere.subscribe_wallet(bob.id).open()
    hsub = await elsewhere.subscribe_hash(inv["payment_hash"]).open()
    other = await elsewhere.subscribe_wallet(bob.id).open()
    assert await subscribers(redis_url, channel) == 1  # one subscription for all three
    sub.close()
    other.close()
    await asyncio.sleep(0.2)
    assert await subscribers(redis_url, channel) == 1  # the hash listener still needs it
    hsub.close()
    await wait_subscribers(redis_url, channel, 0)
    seen = count_messages(elsewhere, monkeypatch)
    assert (await fulmen.pay(alice, inv["bolt11"])).status_code == 201
    await fulmen.host.payments.settlement.drain()
    await asyncio.sleep(0.3)
    assert seen == []
    # and a new listener subscribes again
    async with elsewhere.subscribe_wallet(bob.id) as again:
        assert await subscribers(redis_url, channel) == 1
        assert (await fulmen.pay(alice, (await fulmen.invoice(bob, 1))["bolt11"])).status_code == 201
        event = await again.next(3)
        assert event is not None and event.seq == 2


async def test_a_redis_reconnect_subscribes_every_wallet_channel_again(fulmen, elsewhere, redis_url, monkeypatch):
    alice = await fulmen.wallet("alice", sats=100)
    bob = await fulmen.wallet("bob")
    carol = await fulmen.wallet("carol")
    inv = await fulmen.invoice(carol, 5)
    async with elsewhere.subscribe_wallet(bob.id) as sub, \
            elsewhere.subscribe_hash(inv["payment_hash"]) as hsub:
        first = elsewhere._pubsub
        real_get_message = aioredis.client.PubSub.get_message
        dropped: list[bool] = []

        async def get_message(self: Any, *args: Any, **kwargs: Any) -> Any:
            if self is first and not dropped:  # the other bus's subscription, once
                dropped.append(True)
                raise ConnectionError("connection lost")
            return await real_get_message(self, *args, **kwargs)

        monkeypatch.setattr(aioredis.client.PubSub, "get_message", get_message)
        for _ in range(300):
            if dropped and elsewhere._pubsub not in (None, first) and all(
                c.confirmed_tick for c in elsewhere._channels.values()
            ):
                break
            await asyncio.sleep(0.02)
        assert dropped and elsewhere._pubsub not in (None, first)
        assert await subscribers(redis_url, elsewhere.wallet_channel(bob.id)) == 1
        assert await subscribers(redis_url, elsewhere.wallet_channel(carol.id)) == 1
        assert (await fulmen.pay(alice, (await fulmen.invoice(bob, 1))["bolt11"])).status_code == 201
        assert (await fulmen.pay(alice, inv["bolt11"])).status_code == 201
        event = await sub.next(3)
        assert event is not None and event.wallet_id == bob.id and event.seq == 1
        assert await asyncio.wait_for(hsub.__anext__(), 3) == {"pending": False, "status": "success"}


async def test_events_lost_while_a_wallet_channel_was_down_are_read_from_the_log(
    fulmen, elsewhere, monkeypatch
):
    alice = await fulmen.wallet("alice", sats=100)
    bob = await fulmen.wallet("bob")
    async with elsewhere.subscribe_wallet(bob.id) as sub:
        first = elsewhere._pubsub
        real_receive = elsewhere._receive
        monkeypatch.setattr(elsewhere, "_receive", lambda raw: None)  # lost in transit
        assert (await fulmen.pay(alice, (await fulmen.invoice(bob, 1))["bolt11"])).status_code == 201
        await fulmen.host.payments.settlement.drain()
        await asyncio.sleep(0.2)
        monkeypatch.setattr(elsewhere, "_receive", real_receive)
        assert sub.queue.empty()  # lost; the log poll is a minute away
        await first.aclose()  # the subscription drops; the reconnect resyncs
        loop = asyncio.get_running_loop()
        started = loop.time()
        event = await sub.next(10)  # (past 10 s, `next` would read the log itself)
        assert event is not None and event.seq == 1
        assert loop.time() - started < 5


async def test_processes_hear_only_the_wallets_they_listen_to(cluster_factory):  # noqa: F811
    cluster = cluster_factory(FULMEN_EVENT_POLL_SECONDS="60")
    a, b = await cluster.start_many(1, 2)
    async with httpx.AsyncClient(base_url=a.url, timeout=10) as ca, \
            httpx.AsyncClient(base_url=b.url, timeout=10) as cb:
        alice = await http_wallet(ca, ADMIN_KEY, "alice", sats=100)
        bob = await http_wallet(ca, ADMIN_KEY, "bob")
        for round_ in range(2):  # listeners opened, closed, and opened again on b
            inv = await invoice(cb, bob, 3)
            async with websockets.connect(ws_url(b.url, bob["inkey"])) as wallet_ws, \
                    websockets.connect(ws_url(b.url, inv["payment_hash"])) as hash_ws:
                await pay(ca, alice, inv["bolt11"])
                got = json.loads(await asyncio.wait_for(wallet_ws.recv(), 3))
                assert got["payment"]["payment_hash"] == inv["payment_hash"]
                assert got["wallet_balance"] == 3 * (round_ + 1)
                status = json.loads(await asyncio.wait_for(hash_ws.recv(), 3))
                assert status == {"pending": False, "status": "success"}
