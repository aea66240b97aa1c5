"""A fake LND REST gateway: the parts of lnrpc/routerrpc a funding source uses.

Follows LND's JSON mapping: int64 as strings, `bytes` fields base64, the
router's Payment with hex payment_hash/payment_preimage, streams as one JSON
object per line wrapped in {"result": ...}, errors as
{"code", "message", "details"} (or {"error": {...}} inside a stream).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import bolt11
from litestar import Litestar, Request, Response, get, post
from litestar.response import Stream

from .common import AppServer, make_bolt11


def b64(hex_or_bytes: str | bytes | None) -> str:
    if not hex_or_bytes:
        return ""
    raw = bytes.fromhex(hex_or_bytes) if isinstance(hex_or_bytes, str) else hex_or_bytes
    return base64.b64encode(raw).decode()


@dataclass
class Invoice:
    payment_hash: str
    preimage: str
    bolt11: str
    value_msat: int
    memo: str
    description_hash: bytes | None
    expiry: int
    add_index: int
    state: str = "OPEN"
    settle_index: int = 0
    creation_date: int = field(default_factory=lambda: int(time.time()))
    settle_date: int = 0

    def json(self) -> dict:
        return {
            "memo": self.memo,
            "r_preimage": b64(self.preimage),
            "r_hash": b64(self.payment_hash),
            "value": str(self.value_msat // 1000),
            "value_msat": str(self.value_msat),
            "settled": self.state == "SETTLED",
            "creation_date": str(self.creation_date),
            "settle_date": str(self.settle_date),
            "payment_request": self.bolt11,
            "description_hash": b64(self.description_hash),
            "expiry": str(self.expiry),
            "fallback_addr": "",
            "cltv_expiry": "80",
            "route_hints": [],
            "private": False,
            "add_index": str(self.add_index),
            "settle_index": str(self.settle_index),
            "amt_paid": str(self.value_msat // 1000 if self.state == "SETTLED" else 0),
            "amt_paid_sat": str(self.value_msat // 1000 if self.state == "SETTLED" else 0),
            "amt_paid_msat": str(self.value_msat if self.state == "SETTLED" else 0),
            "state": self.state,
            "htlcs": [],
            "features": {},
            "is_keysend": False,
            "payment_addr": b64(secrets.token_bytes(32)),
            "is_amp": False,
        }


@dataclass
class Outcome:
    """What the network does with a payment to one payment hash."""

    kind: str  # "succeed", "fail", "hold", "garbage", "drop"
    fee_msat: int = 0
    preimage: str = ""
    reason: str = "FAILURE_REASON_NO_ROUTE"


@dataclass
class Payment:
    payment_hash: str
    bolt11: str
    value_msat: int
    index: int
    status: str = "IN_FLIGHT"
    fee_msat: int = 0
    preimage: str = ""
    failure_reason: str = "FAILURE_REASON_NONE"
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def json(self) -> dict:
        return {
            "payment_hash": self.payment_hash,
            "value": str(self.value_msat // 1000),
            "creation_date": str(int(time.time())),
            "fee": str(self.fee_msat // 1000),
            "payment_preimage": self.preimage or "0" * 64,
            "value_sat": str(self.value_msat // 1000),
            "value_msat": str(self.value_msat),
            "payment_request": self.bolt11,
            "status": self.status,
            "fee_sat": str(self.fee_msat // 1000),
            "fee_msat": str(self.fee_msat),
            "creation_time_ns": str(time.time_ns()),
            "htlcs": [],
            "payment_index": str(self.index),
            "failure_reason": self.failure_reason,
        }


def grpc_error(code: int, message: str) -> dict:
    return {"code": code, "message": message, "details": []}


class FakeLnd:
    def __init__(self, certfile, keyfile, macaroon_hex: str | None = None) -> None:
        self.macaroon = macaroon_hex or secrets.token_bytes(40).hex()
        self.balance_msat = 123_456_000
        self.invoices: dict[str, Invoice] = {}
        self.payments: dict[str, Payment] = {}
        self.outcomes: dict[str, Outcome] = {}
        self.add_index = 0
        self.settle_index = 0
        self.subscribers: list[asyncio.Queue] = []
        self.requests: list[tuple[str, str, Any]] = []  # (method, path, body)
        self.server = AppServer(self.app(), certfile=certfile, keyfile=keyfile)

    @property
    def url(self) -> str:
        return self.server.url

    # ------------------------------------------------------------ test controls

    def settle(self, payment_hash: str) -> None:
        """Someone on the network pays our invoice."""
        inv = self.invoices[payment_hash]
        self.settle_index += 1
        inv.state = "SETTLED"
        inv.settle_index = self.settle_index
        inv.settle_date = int(time.time())
        self._publish(inv)

    def resolve(
        self, payment_hash: str, *, ok: bool, fee_msat: int = 0, preimage: str = ""
    ) -> None:
        """A held (in-flight) payment completes."""
        p = self.payments[payment_hash]
        if ok:
            p.status, p.fee_msat, p.preimage = "SUCCEEDED", fee_msat, preimage
        else:
            p.status, p.failure_reason = "FAILED", "FAILURE_REASON_TIMEOUT"
        p.changed.set()

    def drop_streams(self) -> None:
        for q in list(self.subscribers):
            q.put_nowait(None)

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        self.drop_streams()
        await self.server.stop()

    def _publish(self, inv: Invoice) -> None:
        line = {"result": inv.json()}
        for q in list(self.subscribers):
            q.put_nowait(line)

    # ------------------------------------------------------------ app

    def app(self) -> Litestar:
        fake = self

        def before(request: Request) -> Response | None:
            mac = request.headers.get("grpc-metadata-macaroon")
            if mac is None:
                return Response(grpc_error(2, "expected 1 macaroon, got 0"), status_code=500)
            if mac != fake.macaroon:
                return Response(
                    grpc_error(
                        2, "verification failed: signature mismatch after caveat verification"
                    ),
                    status_code=500,
                )
            return None

        @get("/v1/getinfo")
        async def getinfo() -> dict:
            return {
                "version": "0.18.3-beta commit=v0.18.3-beta",
                "identity_pubkey": "02" + "ab" * 32,
                "alias": "fake-lnd",
                "num_active_channels": 1,
                "synced_to_chain": True,
                "synced_to_graph": True,
                "block_height": 800000,
                "chains": [{"chain": "bitcoin", "network": "regtest"}],
            }

        @get("/v1/balance/channels")
        async def balance() -> dict:
            sat = fake.balance_msat // 1000
            return {
                "balance": str(sat),
                "pending_open_balance": "0",
                "local_balance": {"sat": str(sat), "msat": str(fake.balance_msat)},
                "remote_balance": {"sat": "0", "msat": "0"},
            }

        @post("/v1/invoices", status_code=200)
        async def add_invoice(request: Request) -> Any:
            body = json.loads(await request.body())
            fake.requests.append(("POST", "/v1/invoices", body))
            preimage = (
                base64.b64decode(body["r_preimage"])
                if body.get("r_preimage")
                else secrets.token_bytes(32)
            )
            payment_hash = hashlib.sha256(preimage).hexdigest()
            if payment_hash in fake.invoices:
                return Response(
                    grpc_error(2, "invoice with payment hash already exists"), status_code=500
                )
            value_msat = int(body.get("value_msat") or 0) or int(body.get("value") or 0) * 1000
            dh = (
                base64.b64decode(body["description_hash"]) if body.get("description_hash") else None
            )
            expiry = int(body.get("expiry") or 86400)
            memo = body.get("memo", "")
            pr = make_bolt11(
                payment_hash, value_msat, memo=memo, description_hash=dh, expiry=expiry
            )
            fake.add_index += 1
            inv = Invoice(
                payment_hash, preimage.hex(), pr, value_msat, memo, dh, expiry, fake.add_index
            )
            fake.invoices[payment_hash] = inv
            fake._publish(inv)
            return {
                "r_hash": b64(payment_hash),
                "payment_request": pr,
                "add_index": str(inv.add_index),
                "payment_addr": b64(secrets.token_bytes(32)),
            }

        @get("/v1/invoice/{r_hash_str:str}")
        async def lookup_invoice(r_hash_str: str) -> Any:
            inv = fake.invoices.get(r_hash_str.lower())
            if inv is None:
                return Response(grpc_error(5, "unable to locate invoice"), status_code=404)
            return inv.json()

        @get("/v1/invoices")
        async def list_invoices(request: Request) -> dict:
            invs = sorted(fake.invoices.values(), key=lambda i: i.add_index)
            if request.query_params.get("reversed") == "true":
                invs = invs[::-1]
            n = int(request.query_params.get("num_max_invoices") or 100)
            invs = invs[:n]
            return {
                "invoices": [i.json() for i in invs],
                "last_index_offset": str(max((i.add_index for i in invs), default=0)),
                "first_index_offset": str(min((i.add_index for i in invs), default=0)),
            }

        @get("/v1/invoices/subscribe")
        async def subscribe(request: Request) -> Stream:
            settle_after = int(request.query_params.get("settle_index") or 0)
            add_after = int(request.query_params.get("add_index") or 0)
            q: asyncio.Queue = asyncio.Queue()
            backlog = []
            if add_after:
                backlog += [i for i in fake.invoices.values() if i.add_index > add_after]
            if settle_after:
                backlog += sorted(
                    (
                        i
                        for i in fake.invoices.values()
                        if i.state == "SETTLED" and i.settle_index > settle_after
                    ),
                    key=lambda i: i.settle_index,
                )
            for inv in backlog:
                q.put_nowait({"result": inv.json()})
            fake.subscribers.append(q)

            async def lines():
                try:
                    while True:
                        item = await q.get()
                        if item is None:
                            return
                        yield json.dumps(item) + "\n"
                finally:
                    if q in fake.subscribers:
                        fake.subscribers.remove(q)

            return Stream(lines(), media_type="application/json")

        @post("/v2/router/send", status_code=200)
        async def send(request: Request) -> Stream | Response:
            body = json.loads(await request.body())
            fake.requests.append(("POST", "/v2/router/send", body))
            q: asyncio.Queue = asyncio.Queue()
            fake.subscribers.append(q)  # so drop_streams() ends this too

            async def lines():
                try:
                    async for line in fake._send(body, q):
                        yield line
                finally:
                    if q in fake.subscribers:
                        fake.subscribers.remove(q)

            return Stream(lines(), media_type="application/json")

        @get("/v2/router/track/{payment_hash:str}")
        async def track(payment_hash: str, request: Request) -> Stream:
            raw = base64.urlsafe_b64decode(payment_hash + "=" * (-len(payment_hash) % 4))
            p = fake.payments.get(raw.hex())
            no_inflight = request.query_params.get("no_inflight_updates") == "true"

            async def lines():
                if p is None:
                    yield json.dumps({"error": grpc_error(5, "payment isn't initiated")}) + "\n"
                    return
                if p.status == "IN_FLIGHT" and not no_inflight:
                    yield json.dumps({"result": p.json()}) + "\n"
                while p.status == "IN_FLIGHT":
                    await p.changed.wait()
                yield json.dumps({"result": p.json()}) + "\n"

            return Stream(lines(), media_type="application/json")

        return Litestar(
            route_handlers=[
                getinfo,
                balance,
                add_invoice,
                lookup_invoice,
                list_invoices,
                subscribe,
                send,
                track,
            ],
            before_request=before,
            debug=False,
        )

    async def _send(self, body: dict, q: asyncio.Queue):
        def err(code: int, message: str) -> str:
            return json.dumps({"error": grpc_error(code, message)}) + "\n"

        pr = body.get("payment_request", "")
        try:
            decoded = bolt11.decode(pr)
        except Exception:  # noqa: BLE001 - whatever the decoder raises
            yield err(2, "invalid bech32 string length 3")
            return
        if decoded.date + (decoded.expiry or 3600) < time.time():
            yield err(2, "invoice expired. Valid until 2020-01-01 00:00:00 +0000 UTC")
            return
        h = decoded.payment_hash
        existing = self.payments.get(h)
        if existing is not None:
            if existing.status == "SUCCEEDED":
                yield err(2, "invoice is already paid")
                return
            if existing.status == "IN_FLIGHT":
                yield err(2, "payment is in transition")
                return
        outcome = self.outcomes.get(h, Outcome("fail", reason="FAILURE_REASON_NO_ROUTE"))
        if outcome.kind == "garbage":
            yield "<html>502 Bad Gateway</html>\n"
            return
        p = Payment(h, pr, int(decoded.amount_msat or 0), len(self.payments) + 1)
        self.payments[h] = p
        no_inflight = bool(body.get("no_inflight_updates"))
        if not no_inflight:
            yield json.dumps({"result": p.json()}) + "\n"
        fee_limit = int(body.get("fee_limit_msat") or 0)
        if outcome.kind == "succeed":
            if outcome.fee_msat > fee_limit:
                p.status, p.failure_reason = "FAILED", "FAILURE_REASON_NO_ROUTE"
            else:
                p.status, p.fee_msat, p.preimage = "SUCCEEDED", outcome.fee_msat, outcome.preimage
        elif outcome.kind == "fail":
            p.status, p.failure_reason = "FAILED", outcome.reason
        elif outcome.kind in ("hold", "drop"):
            # stays in flight; "drop" additionally cuts the connection
            item = await q.get()
            if item is None or outcome.kind == "drop":
                return
        p.changed.set()
        yield json.dumps({"result": p.json()}) + "\n"
