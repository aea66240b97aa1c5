"""The event bus: what happened to a wallet's payments, in order, to whoever listens.

How an event travels:

1. Inside the payment's transaction, the settlement step
   (fulmen/settlement.py) takes the wallet's next event number
   (`fulmen_wallet.event_seq`) and stores the event in `fulmen_event`.
   Taking the number locks the wallet's row until the commit, so a wallet's
   events commit in number order and a number is never skipped.
2. After the commit, the settlement step hands the event to `EventBus.publish`:
   this process's subscribers get it and, with REDIS_URL set, it goes out on
   the wallet's Redis channel (`<event_redis_channel>:w:<wallet id>`). A
   process is subscribed to a wallet's channel only while it has a listener
   for that wallet here (a wallet subscription, or a payment-hash listener on
   one of its invoices), so a process hears only the events it has a use for.
   The shared channel (`event_redis_channel`) carries only the "resync"
   announcements every process needs.
3. A subscription (`subscribe_wallet`) yields a wallet's events strictly in
   number order, each once. When it sees a number jump (another process's
   event overtook one in flight, or a Redis message was lost) it reads the
   missing events from the log; when nothing arrives for a while it checks
   the log too. So the live path is fast and the log makes it complete.
4. A payment-hash listener (`subscribe_hash`) reads its invoice's status once
   and then only listens; when the bus may have missed events (Redis
   reconnected, another process could not publish, no Redis on PostgreSQL)
   it reads the status of all listened-to hashes in one query (and, while
   no Redis subscription is up on PostgreSQL, once per poll interval).

The log also serves Server-Sent Events resumption (`Last-Event-ID`) and is
pruned by age and count (`FULMEN_EVENT_RETENTION_HOURS`,
`FULMEN_EVENT_RETENTION_COUNT`; an event is kept while either keeps it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict

from .db import is_postgres, now_ms, query
from .models import Payment

log = logging.getLogger(__name__)

# Payment hook name -> event type (also the webhook filter names).
HOOK_TYPES = {
    "on_invoice_paid": "payment.received",
    "on_payment_sent": "payment.sent",
    "on_payment_failed": "payment.failed",
}
EVENT_TYPES = tuple(HOOK_TYPES.values())


class EventSettings(BaseSettings):
    """Event settings, from FULMEN_* environment variables."""

    model_config = SettingsConfigDict(env_prefix="FULMEN_", env_file=".env", extra="ignore")

    # An event stays in the log while it is younger than this...
    event_retention_hours: float = 24.0
    # ...or among its wallet's most recent this-many events.
    event_retention_count: int = 10_000
    # A quiet subscription checks the log this often (catches anything the
    # live path lost, and carries events between processes without Redis).
    event_poll_seconds: float = 5.0
    event_prune_interval_seconds: float = 600.0
    # Events a slow subscriber may fall behind before it re-reads the log.
    event_queue_size: int = 1000
    # The Redis pub/sub channel the host processes of one installation share
    # (resync announcements); each wallet's events go on `<channel>:w:<wallet id>`.
    event_redis_channel: str = "fulmen:events"


def payment_event_type(payment: Payment) -> str | None:
    if payment.status == "success":
        return "payment.sent" if payment.out else "payment.received"
    if payment.status == "failed" and payment.out:
        return "payment.failed"
    return None


@dataclass
class Event:
    id: int  # global, increasing over the whole log
    wallet_id: str
    seq: int  # per wallet: 1, 2, 3, ... (the SSE event id)
    type: str
    payment_id: int
    payment_hash: str
    data: dict[str, Any]  # {"wallet_balance": sats, "payment": Payment.to_lnbits()}
    created_at: int  # Unix ms
    #: the wallet's webhook endpoint count when the event was written (lets
    #: the webhook writer skip its query for the many wallets without any)
    wallet_webhooks: int = 0

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Event:
        data = row["data"]
        return cls(
            id=int(row["id"]), wallet_id=row["wallet_id"], seq=int(row["seq"]), type=row["type"],
            payment_id=int(row["payment_id"]), payment_hash=row["payment_hash"],
            data=json.loads(data) if isinstance(data, str) else data,
            created_at=int(row["created_at"]),
        )

    @property
    def incoming(self) -> bool:
        return self.type == "payment.received"

    def status_message(self) -> dict[str, Any]:
        """The payment-hash channel's message: paid or not, nothing else."""
        payment = self.data["payment"]
        return {"pending": payment["status"] == "pending", "status": payment["status"]}


def event_body(event: Event) -> str:
    """An event as webhook endpoints receive it."""
    return json.dumps({
        "id": f"evt_{event.id}",
        "type": event.type,
        "created": event.created_at // 1000,
        "wallet_id": event.wallet_id,
        "seq": event.seq,
        "data": event.data,
    }, separators=(",", ":"))


#: starts a background task for the host's lifetime (`Host.spawn`)
Spawn = Callable[..., "asyncio.Task[Any]"]

_RESYNC = object()  # queue marker: re-read the log
_CLOSE = object()  # queue marker: the bus is stopping

#: how long opening a listener waits for Redis to confirm its wallet channel's
#: subscription (past it, the listener resyncs once the confirmation comes)
SUBSCRIBE_WAIT_SECONDS = 2.0


class _Channel:
    """A wallet's Redis channel, while this process has listeners for it."""

    __slots__ = ("refs", "ticket", "confirmed", "confirmed_tick", "resync_on_confirm")

    def __init__(self) -> None:
        self.refs = 0  # local listeners (wallet subscriptions and payment-hash listeners)
        #: which SUBSCRIBE of this channel on the current connection is ours (0: none sent)
        self.ticket = 0
        self.confirmed = asyncio.Event()  # Redis confirmed the subscription
        self.confirmed_tick = 0  # `EventBus._tick` when confirmed (0: not yet)
        #: events may have been missed until the subscription is confirmed
        self.resync_on_confirm = False


class WalletSubscription:
    """A wallet's events, in number order, each once. Use as an async context
    manager; `after` is the last event number already seen (None: from now)."""

    def __init__(self, bus: EventBus, wallet_id: str, after: int | None = None) -> None:
        self.bus = bus
        self.wallet_id = wallet_id
        self.last = after
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=bus.config.event_queue_size)
        self._buffer: deque[Event] = deque()
        self._stale = after is not None  # replay the log first
        self._closed = False
        self._listening = False  # holds a reference on the wallet's Redis channel
        #: set by `open` when the log no longer holds some events after `after`
        self.missed: tuple[int, int] | None = None

    @property
    def closed(self) -> bool:
        """True once the bus stopped (no more events will come)."""
        return self._closed and not self._buffer

    async def open(self) -> WalletSubscription:
        self.bus._wallet_subs.setdefault(self.wallet_id, set()).add(self)
        try:
            # The wallet's Redis channel is subscribed before the starting
            # point is read: whatever commits after that read reaches us.
            self._listening = True
            await self.bus._listen(self.wallet_id)
            current = await self.bus.last_seq(self.wallet_id)
        except BaseException:
            self.close()
            raise
        if self.last is None or self.last > current:
            self.last = current
            self._stale = False
        else:
            first = await self.bus.first_seq_after(self.wallet_id, self.last)
            if first is None and current > self.last:
                self.missed = (self.last + 1, current)  # all of them pruned
            elif first is not None and first > self.last + 1:
                self.missed = (self.last + 1, first - 1)
        return self

    def close(self) -> None:
        subs = self.bus._wallet_subs.get(self.wallet_id)
        if subs is not None:
            subs.discard(self)
            if not subs:
                del self.bus._wallet_subs[self.wallet_id]
        if self._listening:
            self._listening = False
            self.bus._unlisten(self.wallet_id)

    async def __aenter__(self) -> WalletSubscription:
        return await self.open()

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    def offer(self, item: Any) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            if item is _CLOSE:
                self._closed = True
            self._stale = True  # dropped: the log has it

    def __aiter__(self) -> WalletSubscription:
        return self

    async def __anext__(self) -> Event:
        event = await self.next(None)
        if event is None:
            raise StopAsyncIteration
        return event

    async def next(self, timeout: float | None) -> Event | None:
        """The next event; None when `timeout` seconds pass without one, or
        when the bus stops."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            if self._buffer:
                return self._buffer.popleft()
            if self._closed:
                return None
            if self._stale:
                self._stale = False
                await self._fill(None)
                continue
            wait = self.bus.config.event_poll_seconds
            if deadline is not None:
                wait = min(wait, deadline - loop.time())
                if wait <= 0:
                    return None
            try:
                item = await asyncio.wait_for(self.queue.get(), wait)
            except TimeoutError:
                await self._fill(None)  # a quiet spell: check the log
                continue
            if item is _CLOSE:
                self._closed = True
            elif item is _RESYNC:
                self._stale = True
            elif isinstance(item, Event):
                assert self.last is not None
                if item.seq <= self.last:
                    continue  # already delivered
                if item.seq > self.last + 1:
                    await self._fill(item.seq - 1)  # the ones it overtook
                    if self._stale:
                        continue  # more to read; the log has this one too
                if item.seq > (self.last or 0):
                    self._buffer.append(item)
                    self.last = item.seq

    async def _fill(self, upto: int | None) -> None:
        assert self.last is not None
        page = 500
        events = await self.bus.replay(self.wallet_id, self.last, upto, page)
        for event in events:
            self._buffer.append(event)
            self.last = event.seq
        if len(events) == page:
            self._stale = True  # more after this page


class HashSubscription:
    """Status changes of the incoming invoice with this payment hash.

    An idle listener costs nothing: it reads the status once when it opens
    and then only waits. The bus hands it each status an event carries, and
    when the bus may have missed events (Redis reconnected, another process
    could not publish, several processes without Redis) it reads the status
    of every hash that has listeners in one batched query and hands those
    out too (`EventBus.resync_hashes`). Only the latest status matters, so
    there is no queue to overflow."""

    def __init__(self, bus: EventBus, payment_hash: str) -> None:
        self.bus = bus
        self.payment_hash = payment_hash
        #: the status this listener has reported (or read on open)
        self.status: str | None = None
        self._latest: str | None = None  # the newest status the bus handed over
        self._wake = asyncio.Event()
        self._closed = False
        #: the wallet of the invoice, whose Redis channel this listener holds
        self._wallet_id: str | None = None

    async def open(self) -> HashSubscription:
        self.bus._hash_subs.setdefault(self.payment_hash, set()).add(self)
        try:
            read_at = self.bus._listen_epoch()
            self.status, wallet_id = await self.bus.invoice_status_and_wallet(self.payment_hash)
            if wallet_id is not None:
                self._wallet_id = wallet_id
                fresh = await self.bus._listen(wallet_id, since=read_at)
                if fresh and self.status == "pending":
                    # The wallet's channel was subscribed after the read: an
                    # event published in between did not reach us; read again.
                    self.status = await self.bus.invoice_status(self.payment_hash)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        subs = self.bus._hash_subs.get(self.payment_hash)
        if subs is not None:
            subs.discard(self)
            if not subs:
                del self.bus._hash_subs[self.payment_hash]
        if self._wallet_id is not None:
            wallet_id, self._wallet_id = self._wallet_id, None
            self.bus._unlisten(wallet_id)

    async def __aenter__(self) -> HashSubscription:
        return await self.open()

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    def offer(self, item: Any) -> None:
        """An event, a status read by a resync, or `_CLOSE`."""
        if item is _CLOSE:
            self._closed = True
        elif isinstance(item, Event):
            self._note(item.data["payment"]["status"])
        elif isinstance(item, str):
            self._note(item)
        self._wake.set()

    def _note(self, status: str) -> None:
        # A paid (or failed) invoice never becomes pending again: a resync
        # read that raced a newer event must not take its news back.
        if status == "pending" and self._latest not in (None, "pending"):
            return
        self._latest = status

    def __aiter__(self) -> HashSubscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        while True:
            latest = self._latest
            if latest is not None and latest != self.status and not (
                latest == "pending" and self.status not in (None, "pending")
            ):
                self.status = latest
                return {"pending": latest == "pending", "status": latest}
            if self._closed:
                raise StopAsyncIteration
            self._wake.clear()
            await self._wake.wait()


def event_data_json(balance_sat: int, payment_json: str) -> str:
    """An event's stored data: `json.dumps({"wallet_balance": ..., "payment": ...})`."""
    return f'{{"wallet_balance": {balance_sat}, "payment": {payment_json}}}'


class EventBus:
    def __init__(self, redis_url: str, spawn: Spawn, config: EventSettings) -> None:
        self.config = config
        self.redis_url = redis_url
        self.spawn = spawn
        self.origin = uuid.uuid4().hex  # tells this process's own Redis messages apart
        self._wallet_subs: dict[str, set[WalletSubscription]] = {}
        self._hash_subs: dict[str, set[HashSubscription]] = {}
        self._redis: Any = None
        self._redis_subscribed = asyncio.Event()
        self._redis_up = False  # subscribed to the channel right now
        # Wallet channels: one per wallet with local listeners, subscribed on
        # the subscription connection (`_pubsub`) while it is up.
        self._wallet_channel_prefix = f"{config.event_redis_channel}:w:"
        self._own_prefix = json.dumps({"origin": self.origin})[:-1].encode()
        self._channels: dict[str, _Channel] = {}
        self._pubsub: Any = None
        self._subscribed: set[str] = set()  # SUBSCRIBE sent on `_pubsub`, UNSUBSCRIBE not
        self._sent: dict[str, int] = {}  # SUBSCRIBEs sent per wallet channel on `_pubsub`
        self._acked: dict[str, int] = {}  # ...and confirmed
        self._shared_acks = 0  # confirmations of the shared channel on `_pubsub`
        self._tick = 0  # counts confirmations (orders them against status reads)
        self._sync_lock = asyncio.Lock()
        self._sync_wanted = False
        self._sync_task: asyncio.Task | None = None
        self._tasks: list[asyncio.Task] = []
        self._hash_resync_wanted = False
        self._hash_resync_task: asyncio.Task | None = None
        #: a publish to Redis failed: tell the other processes to resync once it works again
        self._publish_failed = False

    # --- life cycle ---------------------------------------------------------------

    async def start(self) -> None:
        if self.redis_url:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=5)
            self._tasks.append(self.spawn(self._redis_loop(), "fulmen-events-redis"))
            try:  # so events published right after start reach this process
                await asyncio.wait_for(self._redis_subscribed.wait(), 5)
            except TimeoutError:
                log.warning("events: Redis not subscribed yet; subscribers fall back to the log")
        if self.redis_url or is_postgres():
            # While no Redis subscription carries other processes' events
            # (none configured on a shared PostgreSQL, or Redis away): one
            # batched status read per interval for all payment-hash listeners.
            self._tasks.append(self.spawn(self._hash_poll_loop(), "fulmen-events-hash-poll"))
        self._tasks.append(self.spawn(self._prune_loop(), "fulmen-events-prune"))

    async def stop(self) -> None:
        subscriptions: list[set[Any]] = [*self._wallet_subs.values(), *self._hash_subs.values()]
        for subs in subscriptions:
            for sub in list(subs):
                sub.offer(_CLOSE)
        tasks = [*self._tasks, *(t for t in (self._hash_resync_task, self._sync_task) if t)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._hash_resync_task = None
        self._sync_task = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    # --- subscribing ---------------------------------------------------------------

    def subscribe_wallet(self, wallet_id: str, after: int | None = None) -> WalletSubscription:
        return WalletSubscription(self, wallet_id, after)

    def subscribe_hash(self, payment_hash: str) -> HashSubscription:
        return HashSubscription(self, payment_hash.lower())

    def wallet_channel(self, wallet_id: str) -> str:
        """The Redis channel of a wallet's events."""
        return self._wallet_channel_prefix + wallet_id

    def _listen_epoch(self) -> int:
        """A mark to pass to `_listen` as `since`, taken before a status read."""
        return self._tick

    async def _listen(self, wallet_id: str, since: int | None = None) -> bool:
        """Take a reference on the wallet's Redis channel and, if it is not
        subscribed yet, subscribe and wait for Redis to confirm it: from then
        on every event of the wallet published anywhere reaches this process.
        True when the confirmation came after `since` (a read made before it
        may have missed an event). Without Redis, or while it is away, this
        returns at once: the reconnect resyncs."""
        if self._redis is None:
            return False
        channel = self._channels.get(wallet_id)
        if channel is None:
            channel = self._channels[wallet_id] = _Channel()
        channel.refs += 1
        if not channel.confirmed_tick:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + SUBSCRIBE_WAIT_SECONDS
            try:
                # (a SUBSCRIBE that outlasts the wait, or whose listener goes
                # away meanwhile, is still completed in the background)
                sync = self.spawn(self._sync(), "fulmen-events-subscribe")
                await asyncio.wait_for(asyncio.shield(sync), SUBSCRIBE_WAIT_SECONDS)
                if not channel.ticket:
                    return False  # not connected: subscribed (and resynced) on reconnect
                await asyncio.wait_for(channel.confirmed.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                log.warning("events: Redis has not confirmed %s yet", self.wallet_channel(wallet_id))
                channel.resync_on_confirm = True
                return False
        return since is not None and channel.confirmed_tick > since

    def _unlisten(self, wallet_id: str) -> None:
        """Drop a reference; the last one unsubscribes the wallet's channel."""
        channel = self._channels.get(wallet_id)
        if channel is None:
            return
        channel.refs -= 1
        if channel.refs <= 0:
            del self._channels[wallet_id]
            if self._pubsub is not None:
                self._sync_wanted = True
                if self._sync_task is None or self._sync_task.done():
                    self._sync_task = self.spawn(self._sync_loop(), "fulmen-events-unsubscribe")

    async def _sync_loop(self) -> None:
        while self._sync_wanted:
            self._sync_wanted = False
            await self._sync()

    async def _sync(self) -> None:
        """Make the wallet channels subscribed on `_pubsub` those with local
        listeners (`_channels`)."""
        async with self._sync_lock:
            pubsub = self._pubsub
            if pubsub is None:
                return
            add = [w for w in self._channels if w not in self._subscribed]
            drop = [w for w in self._subscribed if w not in self._channels]
            for wallet_id in add:
                self._subscribed.add(wallet_id)
                self._sent[wallet_id] = self._channels[wallet_id].ticket = self._sent.get(wallet_id, 0) + 1
            self._subscribed.difference_update(drop)
            try:
                if add:
                    await pubsub.subscribe(*map(self.wallet_channel, add))
                if drop:
                    await pubsub.unsubscribe(*map(self.wallet_channel, drop))
            except Exception as exc:  # the subscription loop reconnects and subscribes again
                log.warning("events: Redis (un)subscribe failed: %r", exc)

    def _confirmed(self, kind: str, raw_channel: bytes | str) -> None:
        """Redis confirmed a SUBSCRIBE or UNSUBSCRIBE on `_pubsub`."""
        name = raw_channel.decode() if isinstance(raw_channel, bytes) else raw_channel
        if name == self.config.event_redis_channel:
            if kind == "subscribe":
                self._shared_acks += 1
                if self._shared_acks > 1:  # the client reconnected by itself and subscribed again
                    log.warning("events: Redis subscription renewed; resyncing")
                    self._resync_all()
            return
        if not name.startswith(self._wallet_channel_prefix):
            return
        wallet_id = name[len(self._wallet_channel_prefix):]
        if kind == "unsubscribe":
            if wallet_id not in self._subscribed and self._acked.get(wallet_id) == self._sent.get(wallet_id):
                self._sent.pop(wallet_id, None)
                self._acked.pop(wallet_id, None)
            return
        acked = self._acked[wallet_id] = self._acked.get(wallet_id, 0) + 1
        channel = self._channels.get(wallet_id)
        if channel is None or not channel.ticket or channel.confirmed_tick or acked < channel.ticket:
            return
        self._tick += 1
        channel.confirmed_tick = self._tick
        channel.confirmed.set()
        if channel.resync_on_confirm:  # events before this may have been missed
            channel.resync_on_confirm = False
            for sub in list(self._wallet_subs.get(wallet_id, ())):
                sub.offer(_RESYNC)
            self.resync_hashes()

    # --- after the commit ------------------------------------------------------------

    async def publish(self, event: Event) -> None:
        """Hand a committed event to subscribers here and (via Redis) elsewhere."""
        self._dispatch(event)
        if self._redis is not None:
            message = json.dumps({"origin": self.origin, "event": asdict(event)})
            try:  # on the wallet's channel: only processes listening to the wallet hear it
                await self._redis.publish(self.wallet_channel(event.wallet_id), message)
            except Exception as exc:  # subscribers elsewhere catch up from the log
                log.warning("events: Redis publish failed: %r", exc)
                self._publish_failed = True  # payment-hash listeners elsewhere resync later

    def _dispatch(self, event: Event) -> None:
        for sub in list(self._wallet_subs.get(event.wallet_id, ())):
            sub.offer(event)
        if event.incoming:
            for hsub in list(self._hash_subs.get(event.payment_hash, ())):
                hsub.offer(event)

    def _resync_all(self) -> None:
        """Events may have been missed: wallet subscriptions re-read the log,
        payment-hash listeners get one batched status read."""
        for subs in list(self._wallet_subs.values()):
            for sub in list(subs):
                sub.offer(_RESYNC)
        self.resync_hashes()

    def resync_hashes(self) -> None:
        """Read the status of every payment hash with listeners (batched, in
        the background) and hand it to them. Calls while a read runs are
        folded into one more read after it."""
        if not self._hash_subs:
            return
        self._hash_resync_wanted = True
        if self._hash_resync_task is None or self._hash_resync_task.done():
            self._hash_resync_task = self.spawn(self._hash_resync_loop(), "fulmen-events-hash-resync")

    async def _hash_resync_loop(self) -> None:
        while self._hash_resync_wanted:
            self._hash_resync_wanted = False
            hashes = list(self._hash_subs)
            try:
                statuses = await self.invoice_statuses(hashes)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("events: reading payment-hash statuses failed (%r); retrying", exc)
                self._hash_resync_wanted = True
                await asyncio.sleep(1.0)
                continue
            for payment_hash, status in statuses.items():
                for hsub in list(self._hash_subs.get(payment_hash, ())):
                    hsub.offer(status)

    async def _hash_poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.event_poll_seconds)
            if not self._redis_up:
                self.resync_hashes()

    async def _announce_resync(self, client: Any) -> None:
        """After a failed publish: ask every process to resync its
        payment-hash listeners (the event itself is in the log)."""
        if not self._publish_failed:
            return
        self._publish_failed = False
        message = json.dumps({"origin": self.origin, "resync": True})
        try:
            await client.publish(self.config.event_redis_channel, message)
        except Exception:
            self._publish_failed = True
            raise

    async def _redis_loop(self) -> None:
        import redis.asyncio as aioredis

        delay = 0.5
        while True:
            client = aioredis.from_url(self.redis_url, socket_connect_timeout=2)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self.config.event_redis_channel)
                # Every wallet channel still needed, subscribed again on this
                # connection; each one's listeners resync once Redis confirms
                # it (anything published while not subscribed is in the log).
                self._shared_acks = 0
                self._subscribed.clear()
                self._sent.clear()
                self._acked.clear()
                for channel in self._channels.values():
                    channel.ticket = channel.confirmed_tick = 0
                    channel.confirmed.clear()
                    channel.resync_on_confirm = True
                self._pubsub = pubsub
                await self._sync()
                self._redis_subscribed.set()
                self._redis_up = True
                delay = 0.5
                self.resync_hashes()  # listeners of hashes without an invoice (no wallet channel)
                while True:
                    await self._announce_resync(client)
                    message = await pubsub.get_message(timeout=5.0)
                    if not message:
                        continue
                    kind = message.get("type")
                    if kind == "message":
                        self._receive(message["data"])
                    elif kind in ("subscribe", "unsubscribe"):
                        self._confirmed(kind, message["channel"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("events: Redis subscription lost (%r); retrying in %.1fs", exc, delay)
            finally:
                self._pubsub = None
                self._redis_up = False
                try:
                    await pubsub.aclose()
                    await client.aclose()
                except Exception:
                    pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _receive(self, raw: bytes | str) -> None:
        if isinstance(raw, bytes) and raw.startswith(self._own_prefix):
            return  # this process's own event, dispatched when published
        try:
            message = json.loads(raw)
            if message.get("origin") == self.origin:
                return
            if message.get("resync"):  # another process could not publish an event
                self.resync_hashes()
                return
            self._dispatch(Event(**message["event"]))
        except Exception as exc:
            log.warning("events: bad message on %s*: %r", self.config.event_redis_channel, exc)

    # --- reading the log -------------------------------------------------------------

    async def last_seq(self, wallet_id: str) -> int:
        rows = await query("SELECT event_seq FROM fulmen_wallet WHERE id = {}", wallet_id)
        return int(rows[0]["event_seq"]) if rows else 0

    async def first_seq_after(self, wallet_id: str, after: int) -> int | None:
        rows = await query(
            "SELECT MIN(seq) AS seq FROM fulmen_event WHERE wallet_id = {} AND seq > {}", wallet_id, after
        )
        return int(rows[0]["seq"]) if rows and rows[0]["seq"] is not None else None

    async def replay(self, wallet_id: str, after: int, upto: int | None = None,
                     limit: int = 500) -> list[Event]:
        """Logged events of a wallet with after < seq <= upto, oldest first."""
        if upto is None:
            rows = await query(
                "SELECT * FROM fulmen_event WHERE wallet_id = {} AND seq > {} ORDER BY seq LIMIT {}",
                wallet_id, after, limit,
            )
        else:
            rows = await query(
                "SELECT * FROM fulmen_event WHERE wallet_id = {} AND seq > {} AND seq <= {} "
                "ORDER BY seq LIMIT {}",
                wallet_id, after, upto, limit,
            )
        return [Event.from_row(r) for r in rows]

    async def invoice_status(self, payment_hash: str) -> str | None:
        """Status of the incoming invoice with this hash; None if there is none."""
        rows = await query(
            "SELECT status FROM fulmen_payment WHERE payment_hash = {} AND NOT out", payment_hash.lower()
        )
        return rows[0]["status"] if rows else None

    async def invoice_status_and_wallet(self, payment_hash: str) -> tuple[str | None, str | None]:
        """Status and wallet of the incoming invoice with this hash; (None, None) if there is none."""
        rows = await query(
            "SELECT status, wallet_id FROM fulmen_payment WHERE payment_hash = {} AND NOT out",
            payment_hash.lower(),
        )
        return (rows[0]["status"], rows[0]["wallet_id"]) if rows else (None, None)

    async def invoice_statuses(self, payment_hashes: list[str]) -> dict[str, str]:
        """Status of the incoming invoices with these hashes, in one query per
        500 hashes (the ones without an invoice are left out)."""
        statuses: dict[str, str] = {}
        for start in range(0, len(payment_hashes), 500):
            chunk = payment_hashes[start:start + 500]
            rows = await query(
                "SELECT payment_hash, status FROM fulmen_payment WHERE NOT out AND payment_hash IN ("
                + ", ".join("{}" for _ in chunk) + ")",
                *chunk,
            )
            statuses.update((r["payment_hash"], r["status"]) for r in rows)
        return statuses

    # --- retention ----------------------------------------------------------------

    async def prune(self) -> None:
        """Drop events that are both older than the retention time and not
        among their wallet's most recent `event_retention_count`."""
        cutoff = now_ms() - int(self.config.event_retention_hours * 3_600_000)
        await query(
            "DELETE FROM fulmen_event WHERE created_at < {} AND seq <= "
            "(SELECT w.event_seq FROM fulmen_wallet w WHERE w.id = fulmen_event.wallet_id) - {}",
            cutoff, self.config.event_retention_count,
        )

    async def _prune_loop(self) -> None:
        while True:
            try:
                await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("events: pruning the log failed")
            await asyncio.sleep(self.config.event_prune_interval_seconds)
