"""A fake Eclair HTTP API: form-encoded POSTs behind basic auth.

Shapes follow Eclair's JSON: createinvoice returns the invoice with
`serialized` and `paymentHash`; payinvoice with blocking=true returns a
`payment-sent` or `payment-failed` event; getsentinfo a list of outgoing
payments with status.type sent/pending/failed; getreceivedinfo one incoming
payment with status.type received/pending/expired.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import bolt11 as bolt11_lib
from litestar import Litestar, Request, Response, post

from .common import AppServer, make_bolt11, ts

NODE_ID = "03" + "ee" * 32


@dataclass
class Incoming:
    payment_hash: str
    preimage: str
    serialized: str
    amount_msat: int | None
    description: str
    expiry: int
    created: int = field(default_factory=lambda: int(time.time()))
    received_at: int | None = None

    def invoice_json(self) -> dict:
        out = {
            "prefix": "lnbcrt",
            "timestamp": self.created,
            "nodeId": NODE_ID,
            "serialized": self.serialized,
            "description": self.description,
            "paymentHash": self.payment_hash,
            "expiry": self.expiry,
            "minFinalCltvExpiry": 30,
            "features": {"activated": {}, "unknown": []},
            "routingInfo": [],
        }
        if self.amount_msat:
            out["amount"] = self.amount_msat
        return out

    def received_json(self) -> dict:
        if self.received_at is not None:
            status = {"type": "received", "amount": self.amount_msat or 1000, "receivedAt": ts()}
        elif self.created + self.expiry < time.time():
            status = {"type": "expired"}
        else:
            status = {"type": "pending"}
        return {
            "invoice": self.invoice_json(),
            "paymentPreimage": self.preimage,
            "paymentType": "Standard",
            "createdAt": ts(),
            "status": status,
        }


@dataclass
class Outcome:
    kind: str  # "succeed", "fail", "hold", "server_error", "request_timeout"
    fee_msat: int = 0
    preimage: str = ""


class FakeEclair:
    def __init__(self) -> None:
        self.password = secrets.token_urlsafe(24)
        self.incoming: dict[str, Incoming] = {}
        self.outgoing: dict[str, list[dict]] = {}
        self.outcomes: dict[str, Outcome] = {}
        self.held: dict[str, asyncio.Event] = {}
        self.calls: list[tuple[str, dict]] = []
        # payment hashes whose next getreceivedinfo answers 404 (a proxy hiccup)
        self.lost_once: set[str] = set()
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
        self.incoming[payment_hash].received_at = int(time.time())

    def resolve(
        self, payment_hash: str, *, ok: bool, fee_msat: int = 0, preimage: str = ""
    ) -> None:
        for p in self.outgoing[payment_hash]:
            if p["status"]["type"] == "pending":
                if ok:
                    p["status"] = {
                        "type": "sent",
                        "paymentPreimage": preimage,
                        "feesPaid": fee_msat,
                        "route": [],
                        "completedAt": ts(),
                    }
                else:
                    p["status"] = {
                        "type": "failed",
                        "failures": [
                            {
                                "failureType": "REMOTE",
                                "failureMessage": "temporary channel failure",
                                "failedRoute": [],
                            }
                        ],
                        "completedAt": ts(),
                    }
        self.held.pop(payment_hash, asyncio.Event()).set()

    def app(self) -> Litestar:
        fake = self

        def before(request: Request) -> Response | None:
            auth = request.headers.get("authorization", "")
            ok = False
            if auth.startswith("Basic "):
                try:
                    _, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                    ok = pw == fake.password
                except Exception:  # noqa: BLE001 - whatever the decoder raises
                    ok = False
            if not ok:
                return Response(
                    "The supplied authentication is invalid",
                    status_code=401,
                    media_type="text/plain",
                    headers={"WWW-Authenticate": 'Basic realm="Access restricted"'},
                )
            return None

        @post("/{method:str}", status_code=200)
        async def api(method: str, request: Request) -> Any:
            form = dict((await request.form()).items())
            fake.calls.append((method, form))
            handler = getattr(fake, "api_" + method, None)
            if handler is None:
                return Response({"error": "unknown method"}, status_code=404)
            return await handler(form)

        return Litestar(route_handlers=[api], before_request=before, debug=False)

    # ------------------------------------------------------------ API

    async def api_getinfo(self, form: dict) -> dict:
        return {
            "version": "0.11.0-abcdef",
            "nodeId": NODE_ID,
            "alias": "fake-eclair",
            "color": "#49daaa",
            "features": {},
            "chainHash": "06" * 32,
            "network": "regtest",
            "blockHeight": 800000,
            "publicAddresses": [],
        }

    async def api_usablebalances(self, form: dict) -> list:
        return [
            {
                "remoteNodeId": "02" + "01" * 32,
                "shortIds": {
                    "real": {"status": "final", "realScid": "800000x1x0"},
                    "localAlias": "0x1",
                },
                "canSend": 30_000_000,
                "canReceive": 70_000_000,
                "isPublic": True,
                "isEnabled": True,
            },
            {
                "remoteNodeId": "02" + "02" * 32,
                "shortIds": {},
                "canSend": 12_345,
                "canReceive": 0,
                "isPublic": False,
                "isEnabled": True,
            },
        ]

    async def api_createinvoice(self, form: dict) -> Any:
        if "description" not in form and "descriptionHash" not in form:
            return Response({"error": "missing description or descriptionHash"}, status_code=400)
        pre = (
            bytes.fromhex(form["paymentPreimage"])
            if form.get("paymentPreimage")
            else secrets.token_bytes(32)
        )
        h = hashlib.sha256(pre).hexdigest()
        amount = int(form["amountMsat"]) if form.get("amountMsat") else None
        expiry = int(form.get("expireIn") or 3600)
        dh = bytes.fromhex(form["descriptionHash"]) if form.get("descriptionHash") else None
        desc = form.get("description", "")
        pr = make_bolt11(h, amount or 0, memo=desc, description_hash=dh, expiry=expiry)
        inc = Incoming(h, pre.hex(), pr, amount, desc if dh is None else dh.hex(), expiry)
        self.incoming[h] = inc
        return inc.invoice_json()

    async def api_getreceivedinfo(self, form: dict) -> Any:
        inc = self.incoming.get(form.get("paymentHash", ""))
        if inc is not None and inc.payment_hash in self.lost_once:
            self.lost_once.discard(inc.payment_hash)
            inc = None
        if inc is None:
            return Response({"error": "Not found"}, status_code=404)
        return inc.received_json()

    async def api_getsentinfo(self, form: dict) -> Any:
        return self.outgoing.get(form.get("paymentHash", ""), [])

    async def api_payinvoice(self, form: dict) -> Any:
        try:
            d = bolt11_lib.decode(form["invoice"])
        except Exception:  # noqa: BLE001 - whatever the decoder raises
            return Response({"error": "invalid invoice"}, status_code=400)
        if d.date + (d.expiry or 3600) < time.time():
            return Response({"error": "invoice has expired"}, status_code=400)
        h = d.payment_hash
        outcome = self.outcomes.get(h, Outcome("fail"))
        if outcome.kind == "server_error":
            return Response(
                "There was an internal server error.", status_code=500, media_type="text/plain"
            )
        if outcome.kind == "request_timeout":
            # Eclair's API gave up waiting (eclair.api.timeout) while the
            # payment is still being set up: its record appears later.
            async def later() -> None:
                await asyncio.sleep(0.3)
                self.outgoing.setdefault(h, []).append({
                    "id": str(uuid.uuid4()), "paymentHash": h, "amount": int(d.amount_msat or 0),
                    "createdAt": ts(), "status": {"type": "pending"},
                })

            self._tasks = getattr(self, "_tasks", set())
            task = asyncio.ensure_future(later())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return Response({"error": "request timed out"}, status_code=408)
        amount = int(d.amount_msat or 0)
        pid = str(uuid.uuid4())
        entry = {
            "id": pid,
            "parentId": pid,
            "paymentHash": h,
            "paymentType": "Standard",
            "amount": amount,
            "recipientAmount": amount,
            "recipientNodeId": "02" + "bb" * 32,
            "createdAt": ts(),
            "invoice": {"serialized": form["invoice"], "paymentHash": h},
            "status": {"type": "pending"},
        }
        self.outgoing.setdefault(h, []).append(entry)
        max_fee = int(form.get("maxFeeFlatSat") or 0) * 1000
        if outcome.kind == "succeed" and outcome.fee_msat <= max_fee:
            self.resolve(h, ok=True, fee_msat=outcome.fee_msat, preimage=outcome.preimage)
        elif outcome.kind in ("succeed", "fail"):
            self.resolve(h, ok=False)
        elif outcome.kind == "hold":
            ev = self.held.setdefault(h, asyncio.Event())
            await ev.wait()
        st = entry["status"]
        if st["type"] == "sent":
            return {
                "type": "payment-sent",
                "id": pid,
                "paymentHash": h,
                "paymentPreimage": st["paymentPreimage"],
                "recipientAmount": amount,
                "recipientNodeId": entry["recipientNodeId"],
                "parts": [
                    {
                        "id": str(uuid.uuid4()),
                        "amount": amount,
                        "feesPaid": st["feesPaid"],
                        "toChannelId": "ab" * 32,
                        "timestamp": ts(),
                    }
                ],
            }
        return {
            "type": "payment-failed",
            "id": pid,
            "paymentHash": h,
            "failures": [{"amount": amount, "route": [], "t": "route not found"}],
            "timestamp": ts(),
        }
