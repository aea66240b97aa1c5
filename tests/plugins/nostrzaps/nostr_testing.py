"""A real Nostr relay for the tests, and a small independent Nostr client.

The relay is the `nostr-relay` package from PyPI, installed into its own
virtual environment (its pins differ from ours) the first time it is needed:
in FULMEN_NOSTR_RELAY_VENV, by default ~/.cache/fulmen/nostr-relay-venv.
When it cannot be installed or started the tests are skipped with the reason,
unless FULMEN_REQUIRE_SERVICES=1, which makes that a failure.

Events are built and checked here with coincurve's BIP-340 functions and
code written for the tests, not with the plugin's `nostr.py`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from coincurve import PrivateKey, PublicKeyXOnly
from fulmen.testing import free_port, services_required
from websockets.asyncio.client import connect

RELAY_VENV = Path(os.environ.get("FULMEN_NOSTR_RELAY_VENV",
                                 Path.home() / ".cache" / "fulmen" / "nostr-relay-venv"))
RELAY_BIN = RELAY_VENV / "bin" / "nostr-relay"


def unavailable(message: str) -> None:
    if services_required():
        pytest.fail(message + " and FULMEN_REQUIRE_SERVICES=1")
    pytest.skip(message)


def uv_command() -> list[str] | None:
    if found := shutil.which("uv"):
        return [found]
    for python in (sys.executable, shutil.which("python3")):
        if python and subprocess.run([python, "-m", "uv", "--version"], capture_output=True,
                                     check=False).returncode == 0:
            return [python, "-m", "uv"]
    return None


def install_relay() -> str | None:
    """Install nostr-relay into its own venv; returns why not, or None."""
    if RELAY_BIN.exists():
        return None
    RELAY_VENV.parent.mkdir(parents=True, exist_ok=True)
    uv = uv_command()
    try:
        if uv:
            steps = [uv + ["venv", "-q", str(RELAY_VENV)],
                     uv + ["pip", "install", "-q", "--python", str(RELAY_VENV / "bin" / "python"),
                           "nostr-relay"]]
        else:
            steps = [[sys.executable, "-m", "venv", str(RELAY_VENV)],
                     [str(RELAY_VENV / "bin" / "pip"), "install", "-q", "nostr-relay"]]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=600, check=False)
            if done.returncode != 0:
                return f"`{' '.join(step)}` failed: {done.stderr.strip()[-500:]}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"installing nostr-relay failed: {exc}"
    return None if RELAY_BIN.exists() else "nostr-relay was installed but has no command"


CONFIG = """\
relay_name: fulmen test relay
storage:
  sqlalchemy.url: sqlite+aiosqlite:///{db}
  num_concurrent_reqs: 5
  num_concurrent_adds: 1
  validators:
    - nostr_relay.validators.is_not_too_large
    - nostr_relay.validators.is_signed
    - nostr_relay.validators.is_recent
verification:
  nip05_verification: disabled
gunicorn:
  bind: 127.0.0.1:{port}
  workers: 1
  loglevel: warning
  reload: false
authentication:
  enabled: false
message_timeout: 1800
subscription_limit: 32
max_limit: 6000
hellthread_limit: 100
"""


class Relay:
    """One nostr-relay server on a loopback port; can be stopped and started
    again on the same port with the same database."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self.config = folder / "config.yaml"
        self.config.write_text(CONFIG.format(db=folder / "relay.sqlite3", port=self.port))
        self.proc: subprocess.Popen[bytes] | None = None

    def listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def start(self, timeout: float = 90) -> Relay:
        with open(self.folder / "relay.log", "ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen([str(RELAY_BIN), "-c", str(self.config), "serve"],
                                         cwd=self.folder, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = (self.folder / "relay.log").read_text()[-1000:]
                unavailable(f"nostr-relay exited with {self.proc.returncode}: {text}")
            if self.listening():
                return self
            time.sleep(0.2)
        self.stop()
        unavailable(f"nostr-relay did not listen on port {self.port} within {timeout} s")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="session")
def relay_installed() -> Path:
    problem = install_relay()
    if problem:
        unavailable(f"the nostr-relay package could not be installed for the tests: {problem}")
    return RELAY_BIN


@pytest.fixture
def relay(relay_installed: Path, tmp_path: Path) -> Any:
    r = Relay(tmp_path / "relay").start()
    try:
        yield r
    finally:
        r.stop()


# --- an independent Nostr client ------------------------------------------------------------


def event_hash(event: dict[str, Any]) -> str:
    data = [0, event["pubkey"], event["created_at"], event["kind"], event["tags"],
            event["content"]]
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def signed(key: PrivateKey, kind: int, tags: list[list[str]], content: str = "",
           created_at: int | None = None) -> dict[str, Any]:
    event = {"pubkey": key.public_key_xonly.format().hex(),
             "created_at": int(time.time()) if created_at is None else created_at,
             "kind": kind, "tags": tags, "content": content}
    event["id"] = event_hash(event)
    event["sig"] = key.sign_schnorr(bytes.fromhex(event["id"])).hex()
    return event


def verifies(event: dict[str, Any]) -> bool:
    if event_hash(event) != event["id"]:
        return False
    key = PublicKeyXOnly(bytes.fromhex(event["pubkey"]))
    return key.verify(bytes.fromhex(event["sig"]), bytes.fromhex(event["id"]))


def zap_request(key: PrivateKey, recipient: str, relays: list[str], amount_msat: int | None,
                lnurl: str | None = None, event_id: str | None = None,
                address: str | None = None, content: str = "Great post!",
                extra_tags: list[list[str]] | None = None) -> dict[str, Any]:
    tags: list[list[str]] = [["relays", *relays]]
    if amount_msat is not None:
        tags.append(["amount", str(amount_msat)])
    if lnurl is not None:
        tags.append(["lnurl", lnurl])
    tags.append(["p", recipient])
    if event_id is not None:
        tags.append(["e", event_id])
    if address is not None:
        tags.append(["a", address])
    tags += extra_tags or []
    return signed(key, 9734, tags, content)


async def query_relay(url: str, filters: dict[str, Any], timeout: float = 10) -> list[dict[str, Any]]:
    """REQ a subscription and collect the stored events until EOSE."""
    events = []
    async with asyncio.timeout(timeout):
        async with connect(url, proxy=None) as ws:
            await ws.send(json.dumps(["REQ", "t", filters]))
            while True:
                message = json.loads(await ws.recv())
                if message[0] == "EVENT" and message[1] == "t":
                    events.append(message[2])
                elif message[0] == "EOSE":
                    await ws.send(json.dumps(["CLOSE", "t"]))
                    return events


async def wait_for_receipts(url: str, filters: dict[str, Any], count: int = 1,
                            timeout: float = 30) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = await query_relay(url, filters)
        if len(found) >= count or loop.time() > deadline:
            return found
        await asyncio.sleep(0.3)
