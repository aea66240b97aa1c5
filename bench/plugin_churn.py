"""Failed requests while a plugin is installed, upgraded and uninstalled under load.

    uv run python bench/plugin_churn.py [--seconds-between 3] [--clients 4] [--postgres URL]

It builds a throwaway plugin (`livetest` 1.0.0, and 1.1.0 with one more
migration) and a throwaway venv (tests/plugins_contract/throwaway.py), starts
`fulmen serve` from that venv, and keeps a steady stream of requests on the
host's `GET /api/v1/wallet` and the plugin's `GET /livetest/hello` while it
installs 1.0.0 (CLI), upgrades to 1.1.0 (admin API) and uninstalls (CLI).

Failures counted: any answer but 200, or a connection error, on the wallet
route; on the plugin route anything but 200/404, and a 404 while the plugin
must be served (from its first 200 until the uninstall starts; the plugin
legitimately answers 404 before it is installed and after it is removed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "plugins_contract"))

from fulmen.testing import ServerProcess  # noqa: E402
from throwaway import PLUGIN_ID, build_wheel, make_venv  # noqa: E402

ADMIN_KEY = "plugin-churn-admin-key"


class Load:
    def __init__(self, url: str, inkey: str) -> None:
        self.url, self.inkey = url, inkey
        self.phase = "before install"
        self.must_serve = False
        self.stop = False
        self.requests: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.examples: list[str] = []
        self.versions: Counter[str] = Counter()

    def fail(self, what: str) -> None:
        self.failures[self.phase] += 1
        if len(self.examples) < 10:
            self.examples.append(f"{self.phase}: {what}")

    async def client(self) -> None:
        async with httpx.AsyncClient(timeout=10) as c:
            while not self.stop:
                self.requests[self.phase] += 2
                try:
                    r = await c.get(self.url + "/api/v1/wallet", headers={"X-Api-Key": self.inkey})
                    if r.status_code != 200:
                        self.fail(f"wallet {r.status_code}")
                except httpx.HTTPError as exc:
                    self.fail(f"wallet {exc!r}")
                must_serve = self.must_serve
                try:
                    r = await c.get(self.url + f"/{PLUGIN_ID}/hello")
                    if r.status_code == 200:
                        self.versions[r.json()["version"]] += 1
                    elif r.status_code != 404 or must_serve:
                        self.fail(f"plugin {r.status_code}")
                except httpx.HTTPError as exc:
                    self.fail(f"plugin {exc!r}")
                await asyncio.sleep(0.02)


async def until(check, timeout: float = 60.0) -> float:
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout:
            raise RuntimeError("timed out")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def main(seconds_between: float, clients: int, postgres: str | None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="fulmen-plugin-churn-"))
    wheels = tmp / "wheels"
    one, two = build_wheel(wheels, "1.0.0", 1), build_wheel(wheels, "1.1.0", 2)
    python = make_venv(tmp / "venv")
    env = {"FULMEN_ADMIN_KEY": ADMIN_KEY, "FULMEN_DATA_DIR": str(tmp / "data"),
           "FULMEN_PLUGINS": PLUGIN_ID, "FULMEN_PLUGIN_INSTALL_ALLOW": "fulmen-livetest",
           "FULMEN_PLUGIN_INSTALL_PATHS": str(wheels), "FULMEN_LOG_LEVEL": "WARNING"}
    if postgres:
        env["DATABASE_URL"] = postgres
    server = ServerProcess(env, python=str(python), log_path=tmp / "server.log").start()
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    try:
        async with httpx.AsyncClient(timeout=120) as c:
            account = (await c.post(server.url + "/admin/api/v1/accounts", headers=admin)).json()
            load = Load(server.url, account["inkey"])
            tasks = [asyncio.create_task(load.client()) for _ in range(clients)]
            await asyncio.sleep(seconds_between)

            async def served(version: str | None = None) -> bool:
                r = await c.get(server.url + f"/{PLUGIN_ID}/hello")
                return r.status_code == 200 and version in (None, r.json()["version"])

            async def gone() -> bool:
                return (await c.get(server.url + f"/{PLUGIN_ID}/hello")).status_code == 404

            timings = {}
            load.phase = "install (CLI)"
            started = time.monotonic()
            await asyncio.to_thread(subprocess.run, [str(python), "-m", "fulmen", "plugin", "install",
                                                     str(one)], env={**os.environ, **env}, check=True,
                                    capture_output=True)
            await until(served)
            timings["install"] = time.monotonic() - started
            load.must_serve = True
            await asyncio.sleep(seconds_between)

            load.phase = "upgrade (admin API)"
            started = time.monotonic()
            r = await c.post(server.url + f"/admin/api/v1/plugins/{PLUGIN_ID}/upgrade", headers=admin,
                             json={"spec": str(two)})
            r.raise_for_status()
            await until(lambda: served("1.1.0"))
            timings["upgrade"] = time.monotonic() - started
            await asyncio.sleep(seconds_between)

            load.phase = "uninstall (CLI)"
            load.must_serve = False
            started = time.monotonic()
            await asyncio.to_thread(subprocess.run, [str(python), "-m", "fulmen", "plugin", "uninstall",
                                                     PLUGIN_ID], env={**os.environ, **env}, check=True,
                                    capture_output=True)
            await until(gone)
            timings["uninstall"] = time.monotonic() - started
            await asyncio.sleep(seconds_between)
            load.stop = True
            await asyncio.gather(*tasks)
    finally:
        server.stop()
    database = "PostgreSQL" if postgres else "SQLite"
    print(f"plugin churn on {database}, {clients} clients, {sum(load.requests.values())} requests")
    print("| phase | requests | failed |")
    print("|---|---:|---:|")
    for phase in load.requests:
        print(f"| {phase} | {load.requests[phase]} | {load.failures[phase]} |")
    for step, took in timings.items():
        print(f"{step}: served as changed {took:.1f}s after the command started")
    print(f"plugin answers by version: {dict(load.versions)}")
    for example in load.examples:
        print("failure:", example)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds-between", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--postgres", default=None, help="a fresh PostgreSQL database URL")
    args = parser.parse_args()
    asyncio.run(main(args.seconds_between, args.clients, args.postgres))
