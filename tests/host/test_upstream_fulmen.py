"""Two Fulmen hosts, one funding the other through the upstream-LNbits backend."""

import asyncio

import httpx
from fulmen.funding.lnbits import LnbitsFunding
from fulmen.testing import ADMIN_KEY, ServerProcess


async def eventually(check, timeout=15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.1)


async def test_one_fulmen_funds_another(fulmen, tmp_path):
    upstream = ServerProcess({"FULMEN_DATA_DIR": str(tmp_path / "up"), "FULMEN_ADMIN_KEY": ADMIN_KEY,
                              "FULMEN_PLUGINS": "none"}, log_path=tmp_path / "up.log")
    await asyncio.to_thread(upstream.start)
    try:
        async with httpx.AsyncClient(base_url=upstream.url, timeout=30) as up:
            node = (await up.post("/api/v1/account", json={"name": "downstream node"})).json()
            shop = (await up.post("/api/v1/account", json={"name": "shop"})).json()
            await up.put("/users/api/v1/balance", json={"id": node["id"], "amount": 1000},
                         headers={"Authorization": f"Bearer {ADMIN_KEY}"})
            await up.put("/users/api/v1/balance", json={"id": shop["id"], "amount": 1000},
                         headers={"Authorization": f"Bearer {ADMIN_KEY}"})

            funding = LnbitsFunding(upstream.url, node["adminkey"], poll_interval=0.2)
            await fulmen.start(funding=funding)
            bob = await fulmen.wallet("bob")

            # receive: bob's invoice is made upstream; the shop pays it there
            inv = await fulmen.invoice(bob, 100, memo="from the shop")
            r = await up.post("/api/v1/payments", headers={"X-Api-Key": shop["adminkey"]},
                              json={"out": True, "bolt11": inv["bolt11"]})
            assert r.status_code == 201, r.text
            assert await eventually(lambda: _balance_is(fulmen, bob, 100_000)), "settlement not noticed"

            # send: bob pays the shop; it leaves through the upstream wallet
            shop_inv = (await up.post("/api/v1/payments", headers={"X-Api-Key": shop["inkey"]},
                                      json={"out": False, "amount": 40})).json()
            r = await fulmen.pay(bob, shop_inv["bolt11"])
            assert r.status_code == 201 and r.json()["status"] == "success", r.text
            assert await fulmen.balance(bob) == 60_000  # upstream internal payment: no fee
            upstream_node = (await up.get("/api/v1/wallet", headers={"X-Api-Key": node["inkey"]})).json()
            assert upstream_node["balance"] == 1000_000 + 100_000 - 40_000
            assert await fulmen.host.wallets.audit() == []
            audit = (await up.get("/admin/api/v1/audit", headers={"Authorization": f"Bearer {ADMIN_KEY}"})).json()
            assert audit["ok"] is True
    finally:
        upstream.stop()


async def _balance_is(fulmen, wallet, msat):
    return await fulmen.balance(wallet) == msat
