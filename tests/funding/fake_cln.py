"""A fake Core Lightning: clnrest (POST /v1/<method>, `Rune` header) and the
JSON-RPC unix socket, over one set of commands.

Command results and errors follow lightningd: msat amounts as integers,
`pay` error codes 205/206/207/210, `waitanyinvoice` timing out with 904,
rune failures as 1501; clnrest answers 201 on success and 500 with the RPC
error object on failure, 401 for a bad rune.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bolt11 as bolt11_lib
from litestar import Litestar, Request, Response, post

from .common import AppServer, make_bolt11


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def json(self) -> dict:
        out = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


@dataclass
class Invoice:
    label: str
    payment_hash: str
    preimage: str
    bolt11: str
    amount_msat: int | None
    description: str
    expires_at: int
    created_index: int
    status: str = "unpaid"
    pay_index: int | None = None
    paid_at: int | None = None

    def json(self) -> dict:
        out = {
            "label": self.label,
            "bolt11": self.bolt11,
            "payment_hash": self.payment_hash,
            "status": self.status,
            "description": self.description,
            "expires_at": self.expires_at,
            "created_index": self.created_index,
        }
        if self.amount_msat is not None:
            out["amount_msat"] = self.amount_msat
        if self.status == "paid":
            out.update(
                pay_index=self.pay_index,
                amount_received_msat=self.amount_msat or 1000,
                paid_at=self.paid_at,
                payment_preimage=self.preimage,
                updated_index=self.pay_index,
            )
        return out


@dataclass
class Outcome:
    kind: str  # "succeed", "fail", "hold", "garbage", "error"
    fee_msat: int = 0
    preimage: str = ""
    code: int = 205
    message: str = "Ran out of routes to try after 1 attempt: see `paystatus`"


class FakeCln:
    def __init__(self, socket_dir: Path | None = None) -> None:
        self.rune = secrets.token_urlsafe(40)
        self.invoices: dict[str, Invoice] = {}
        self.pays: dict[str, list[dict]] = {}
        self.outcomes: dict[str, Outcome] = {}
        self.created_index = 0
        self.pay_index = 0
        self.changed = asyncio.Condition()
        self.held: dict[str, asyncio.Event] = {}
        self.calls: list[tuple[str, dict]] = []
        self.channels = [
            {
                "state": "CHANNELD_NORMAL",
                "our_amount_msat": 70_000_000,
                "amount_msat": 100_000_000,
                "connected": True,
                "peer_id": "02" + "cd" * 32,
            },
            {
                "state": "ONCHAIN",
                "our_amount_msat": 5_000_000,
                "amount_msat": 5_000_000,
                "connected": False,
                "peer_id": "02" + "ef" * 32,
            },
        ]
        self.server = AppServer(self.app())
        self.socket_path = socket_dir / "lightning-rpc" if socket_dir else None
        self._unix: asyncio.base_events.Server | None = None

    @property
    def url(self) -> str:
        return self.server.url

    # ------------------------------------------------------------ test controls

    async def settle(self, payment_hash: str) -> None:
        inv = self.invoices[payment_hash]
        self.pay_index += 1
        inv.status, inv.pay_index, inv.paid_at = "paid", self.pay_index, int(time.time())
        async with self.changed:
            self.changed.notify_all()

    def resolve(
        self, payment_hash: str, *, ok: bool, fee_msat: int = 0, preimage: str = ""
    ) -> None:
        for p in self.pays[payment_hash]:
            if p["status"] == "pending":
                if ok:
                    p.update(
                        status="complete",
                        preimage=preimage,
                        amount_sent_msat=p["amount_msat"] + fee_msat,
                    )
                else:
                    p["status"] = "failed"
        self.held.pop(payment_hash, asyncio.Event()).set()

    async def start(self) -> None:
        await self.server.start()
        if self.socket_path:
            self._unix = await asyncio.start_unix_server(self._serve_unix, str(self.socket_path))

    async def stop(self) -> None:
        await self.server.stop()
        if self._unix:
            self._unix.close()
            await self._unix.wait_closed()
            self._unix = None
            self.socket_path.unlink(missing_ok=True)

    # ------------------------------------------------------------ transports

    def app(self) -> Litestar:
        fake = self

        @post("/v1/{method:str}", status_code=201)
        async def rpc(method: str, request: Request) -> Any:
            rune = request.headers.get("rune")
            if rune != fake.rune:
                return Response(
                    {"code": 1501, "message": "Not authorized: Not derived from master"},
                    status_code=401,
                )
            raw = await request.body()
            params = json.loads(raw) if raw else {}
            try:
                result = await fake.dispatch(method, params)
            except RpcError as exc:
                return Response(exc.json(), status_code=500)
            if result is _GARBAGE:
                return Response(b"<html>oops", status_code=200, media_type="text/html")
            return result

        return Litestar(route_handlers=[rpc], debug=False)

    async def _serve_unix(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = json.JSONDecoder()
        buf = ""
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                buf += chunk.decode()
                try:
                    req, _ = decoder.raw_decode(buf.lstrip())
                except json.JSONDecodeError:
                    continue
                buf = ""
                reply: dict = {"jsonrpc": "2.0", "id": req.get("id")}
                try:
                    result = await self.dispatch(req["method"], req.get("params") or {})
                    reply["result"] = result
                except RpcError as exc:
                    reply["error"] = exc.json()
                writer.write(json.dumps(reply).encode() + b"\n\n")
                await writer.drain()
        finally:
            writer.close()

    # ------------------------------------------------------------ commands

    async def dispatch(self, method: str, params: dict) -> Any:
        self.calls.append((method, params))
        handler = getattr(self, "cmd_" + method, None)
        if handler is None:
            raise RpcError(-32601, f"Unknown command '{method}'")
        return await handler(**params)

    async def cmd_getinfo(self) -> dict:
        return {
            "id": "02" + "aa" * 32,
            "alias": "fake-cln",
            "version": "v24.08",
            "blockheight": 800000,
            "network": "regtest",
        }

    async def cmd_listfunds(self, spent: bool = False) -> dict:
        return {"outputs": [], "channels": self.channels}

    async def cmd_invoice(
        self,
        amount_msat,
        label,
        description,
        expiry=604800,
        preimage=None,
        deschashonly=False,
        **_: Any,
    ) -> dict:
        if any(i.label == label for i in self.invoices.values()):
            raise RpcError(900, "Duplicate label")
        pre = bytes.fromhex(preimage) if preimage else secrets.token_bytes(32)
        h = hashlib.sha256(pre).hexdigest()
        if h in self.invoices:
            raise RpcError(900, "preimage already used")
        amount = None if amount_msat == "any" else int(amount_msat)
        dh = hashlib.sha256(description.encode()).digest() if deschashonly else None
        pr = make_bolt11(h, amount or 0, memo=description, description_hash=dh, expiry=expiry)
        self.created_index += 1
        inv = Invoice(
            label,
            h,
            pre.hex(),
            pr,
            amount,
            description,
            int(time.time()) + expiry,
            self.created_index,
        )
        self.invoices[h] = inv
        return {
            "payment_hash": h,
            "expires_at": inv.expires_at,
            "bolt11": pr,
            "payment_secret": secrets.token_hex(32),
            "created_index": inv.created_index,
        }

    async def cmd_listinvoices(
        self,
        label=None,
        invstring=None,
        payment_hash=None,
        offer_id=None,
        index=None,
        start=None,
        limit=None,
    ) -> dict:
        invs = list(self.invoices.values())
        if payment_hash:
            invs = [i for i in invs if i.payment_hash == payment_hash]
        return {"invoices": [i.json() for i in invs]}

    async def cmd_waitanyinvoice(self, lastpay_index: int = 0, timeout: int | None = None) -> dict:
        deadline = time.monotonic() + timeout if timeout is not None else None

        def ready():
            paid = [
                i
                for i in self.invoices.values()
                if i.status == "paid" and i.pay_index > (lastpay_index or 0)
            ]
            return min(paid, key=lambda i: i.pay_index) if paid else None

        async with self.changed:
            while (inv := ready()) is None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise RpcError(904, "Timed out")
                try:
                    await asyncio.wait_for(self.changed.wait(), remaining)
                except TimeoutError:
                    pass
        return inv.json()

    async def cmd_pay(
        self, bolt11: str, maxfee: int | None = None, retry_for: int = 60, **_: Any
    ) -> Any:
        try:
            d = bolt11_lib.decode(bolt11)
        except Exception:  # noqa: BLE001 - whatever the decoder raises
            raise RpcError(-32602, "Invalid bolt11: Bad bech32 string") from None
        if d.date + (d.expiry or 3600) < time.time():
            raise RpcError(207, "Invoice expired")
        h = d.payment_hash
        if any(p["status"] in ("complete", "pending") for p in self.pays.get(h, [])):
            raise RpcError(200, "Already in progress or paid")
        outcome = self.outcomes.get(h, Outcome("error"))
        if outcome.kind == "garbage":
            return _GARBAGE
        amount = int(d.amount_msat or 0)
        entry = {
            "bolt11": bolt11,
            "payment_hash": h,
            "status": "pending",
            "created_at": int(time.time()),
            "amount_msat": amount,
            "amount_sent_msat": amount,
            "number_of_parts": 1,
        }
        if outcome.kind == "error":
            raise RpcError(outcome.code, outcome.message)
        self.pays.setdefault(h, []).append(entry)
        if outcome.kind == "succeed":
            if maxfee is not None and outcome.fee_msat > maxfee:
                entry["status"] = "failed"
                raise RpcError(206, "Fee exceeds our fee budget")
            entry.update(
                status="complete",
                preimage=outcome.preimage,
                amount_sent_msat=amount + outcome.fee_msat,
            )
        elif outcome.kind == "fail":
            entry["status"] = "failed"
            raise RpcError(outcome.code, outcome.message)
        elif outcome.kind == "hold":
            ev = self.held.setdefault(h, asyncio.Event())
            await ev.wait()
            if entry["status"] != "complete":
                raise RpcError(210, "Payment failed after retry_for")
        return {
            "destination": "02" + "bb" * 32,
            "payment_hash": h,
            "created_at": entry["created_at"],
            "parts": 1,
            "amount_msat": amount,
            "amount_sent_msat": entry["amount_sent_msat"],
            "payment_preimage": entry["preimage"],
            "status": "complete",
        }

    async def cmd_listpays(self, bolt11=None, payment_hash=None, status=None, **_: Any) -> dict:
        pays = (
            self.pays.get(payment_hash, [])
            if payment_hash
            else [p for ps in self.pays.values() for p in ps]
        )
        return {"pays": [dict(p) for p in pays]}


_GARBAGE = object()
