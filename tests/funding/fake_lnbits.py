"""A fake upstream LNbits server: one wallet's API behind X-Api-Key.

Shapes follow LNbits v1: POST /api/v1/payments answers 201 with the payment
(payment_hash, bolt11/payment_request, checking_id); GET
/api/v1/payments/{hash} answers {"paid", "status", "preimage", "details"};
errors are {"detail": "..."}; a failed outgoing payment answers 520.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import bolt11 as bolt11_lib
from litestar import Litestar, Request, Response, get, post

from .common import AppServer, make_bolt11


@dataclass
class Record:
    payment_hash: str
    bolt11: str
    amount_msat: int  # negative for outgoing
    memo: str
    status: str = "pending"  # pending, success, failed
    fee_msat: int = 0
    preimage: str | None = None
    expiry: int = 3600
    time: int = field(default_factory=lambda: int(time.time()))

    def json(self) -> dict:
        return {
            "checking_id": self.payment_hash,
            "payment_hash": self.payment_hash,
            "wallet_id": "w1",
            "amount": self.amount_msat,
            "fee": -abs(self.fee_msat),
            "bolt11": self.bolt11,
            "payment_request": self.bolt11,
            "memo": self.memo,
            "status": self.status,
            "pending": self.status == "pending",
            "preimage": self.preimage,
            "time": self.time,
            "expiry": self.time + self.expiry,
            "extra": {},
        }


@dataclass
class Outcome:
    kind: str  # "succeed", "fail", "hold", "insufficient", "server_error"
    fee_msat: int = 0
    preimage: str = ""


class FakeLnbits:
    def __init__(self) -> None:
        self.admin_key = secrets.token_hex(16)
        self.invoice_key = secrets.token_hex(16)
        self.balance_msat = 9_876_000
        self.records: dict[str, Record] = {}
        self.outcomes: dict[str, Outcome] = {}
        self.held: dict[str, asyncio.Event] = {}
        self.calls: list[tuple[str, Any]] = []
        self.broken: set[str] = set()  # payment hashes the server errors on
        # payment hashes whose next lookup answers 404 (a proxy hiccup)
        self.lost_once: set[str] = set()
        # the invoice answer leaves out payment_hash (as some LNbits versions do)
        self.omit_payment_hash = False
        # the invoice answer reports another payment hash than its bolt11's
        self.wrong_payment_hash = False
        self.server = AppServer(self.app())

    @property
    def url(self) -> str:
        return self.server.url

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        for ev in self.held.values():
            ev.set()
        await self.server.stop()

    def settle(self, payment_hash: str) -> None:
        rec = self.records[payment_hash]
        rec.status = "success"

    def resolve(
        self, payment_hash: str, *, ok: bool, fee_msat: int = 0, preimage: str = ""
    ) -> None:
        rec = self.records[payment_hash]
        if ok:
            rec.status, rec.fee_msat, rec.preimage = "success", fee_msat, preimage
        else:
            rec.status = "failed"
        self.held.pop(payment_hash, asyncio.Event()).set()

    def app(self) -> Litestar:
        fake = self

        def before(request: Request) -> Response | None:
            key = request.headers.get("x-api-key")
            if key not in (fake.admin_key, fake.invoice_key):
                return Response({"detail": "Invalid key."}, status_code=401)
            request.state.admin = key == fake.admin_key
            return None

        @get("/api/v1/wallet")
        async def wallet() -> dict:
            return {"id": "w1", "name": "upstream", "balance": fake.balance_msat}

        @post("/api/v1/payments", status_code=201)
        async def payments(request: Request) -> Any:
            body = json.loads(await request.body())
            fake.calls.append(("POST /api/v1/payments", body))
            if body.get("out"):
                if not request.state.admin:
                    return Response({"detail": "Invalid adminkey."}, status_code=401)
                return await fake.pay(body)
            return fake.create(body)

        @get("/api/v1/payments/{payment_hash:str}")
        async def payment(payment_hash: str) -> Any:
            if payment_hash in fake.broken:
                return Response({"detail": "database is locked"}, status_code=500)
            rec = fake.records.get(payment_hash)
            if payment_hash in fake.lost_once:
                fake.lost_once.discard(payment_hash)
                rec = None
            if rec is None:
                return Response({"detail": "Payment does not exist."}, status_code=404)
            return {
                "paid": rec.status == "success",
                "status": rec.status,
                "preimage": rec.preimage,
                "details": rec.json(),
            }

        return Litestar(
            route_handlers=[wallet, payments, payment], before_request=before, debug=False
        )

    def create(self, body: dict) -> Any:
        amount = body.get("amount")
        if not isinstance(amount, int) or amount < 0:
            return Response({"detail": "Invalid amount."}, status_code=400)
        pre = secrets.token_bytes(32)
        h = hashlib.sha256(pre).hexdigest()
        dh = bytes.fromhex(body["description_hash"]) if body.get("description_hash") else None
        expiry = int(body.get("expiry") or 3600)
        memo = body.get("memo", "")
        pr = make_bolt11(h, amount * 1000, memo=memo, description_hash=dh, expiry=expiry)
        rec = Record(h, pr, amount * 1000, memo, preimage=pre.hex(), expiry=expiry)
        self.records[h] = rec
        answer = rec.json()
        if self.omit_payment_hash:
            answer.pop("payment_hash", None)
        if self.wrong_payment_hash:
            answer["payment_hash"] = "ab" * 32
        return answer

    async def pay(self, body: dict) -> Any:
        try:
            d = bolt11_lib.decode(body.get("bolt11", ""))
        except Exception:  # noqa: BLE001 - whatever the decoder raises
            return Response({"detail": "Bolt11 decoding failed."}, status_code=400)
        h = d.payment_hash
        outcome = self.outcomes.get(h, Outcome("fail"))
        if outcome.kind == "insufficient":
            return Response({"detail": "Insufficient balance."}, status_code=400)
        if outcome.kind == "server_error":
            return Response("Internal Server Error", status_code=500, media_type="text/plain")
        if outcome.kind == "request_timeout":
            # A proxy in front gave up waiting; the server records the
            # payment a moment later and goes on paying.
            async def later() -> None:
                await asyncio.sleep(0.3)
                self.records[h] = Record(h, body["bolt11"], -int(d.amount_msat or 0), d.description or "")

            self._tasks = getattr(self, "_tasks", set())
            task = asyncio.ensure_future(later())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return Response({"detail": "request timed out"}, status_code=408)
        rec = Record(h, body["bolt11"], -int(d.amount_msat or 0), d.description or "")
        self.records[h] = rec
        if outcome.kind == "succeed":
            rec.status, rec.fee_msat, rec.preimage = "success", outcome.fee_msat, outcome.preimage
        elif outcome.kind == "fail":
            rec.status = "failed"
            return Response({"detail": "Payment failed: no route"}, status_code=520)
        elif outcome.kind == "hold":
            ev = self.held.setdefault(h, asyncio.Event())
            await ev.wait()
        return rec.json()
