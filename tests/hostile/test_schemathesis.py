"""Schemathesis against the published schema, on PostgreSQL, with each kind
of credential (none, invoice key, admin key, the admin bearer key): no 5xx,
and no answer that contradicts the schema (status, content type, body).

Bounded: a few examples per operation and a time budget per credential."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fulmen.testing import ServerProcess

ADMIN = "schemathesis-admin-key-0123456789"
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance")
BUDGET = int(os.environ.get("FULMEN_SCHEMATHESIS_SECONDS", "30"))


@pytest.fixture
def server(tmp_path: Path, postgres_url: str):
    env = {"DATABASE_URL": postgres_url, "FULMEN_DATA_DIR": str(tmp_path / "data"),
           "FULMEN_ADMIN_KEY": ADMIN, "FULMEN_PLUGINS": "lnurlp,withdraw,tpos,splitpayments"}
    proc = ServerProcess(env, log_path=tmp_path / "server.log").start(timeout=120)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.mark.timeout(900)
def test_schemathesis_finds_no_5xx_and_no_schema_contradiction(server, tmp_path: Path) -> None:
    r = httpx.post(server.url + "/api/v1/account", json={"name": "fuzz"}, timeout=30)
    wallet = r.json()
    httpx.put(server.url + "/users/api/v1/balance", json={"id": wallet["id"], "amount": 1000},
              headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30).raise_for_status()
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or "st"
    credentials = {"none": [], "invoice": ["-H", f"X-Api-Key: {wallet['inkey']}"],
                   "admin": ["-H", f"X-Api-Key: {wallet['adminkey']}"],
                   "bearer": ["-H", f"Authorization: Bearer {ADMIN}"]}
    total = 0
    for kind, headers in credentials.items():
        run = subprocess.run(
            [st, "run", server.url + "/schema/openapi.json", *headers, "--checks", CHECKS,
             "-n", "4", "--max-time", str(BUDGET), "--workers", "1", "--no-shrink",
             "--seed", "18", "--request-timeout", "30", "--wait-for-schema", "30"],
            capture_output=True, text=True, timeout=BUDGET + 240, cwd=tmp_path, check=False,
        )
        out = run.stdout + run.stderr
        assert run.returncode == 0, f"{kind}:\n{out[-6000:]}"
        found = re.search(r"(\d+) generated, (\d+) passed", out)
        assert found and found.group(1) == found.group(2), f"{kind}:\n{out[-3000:]}"
        total += int(found.group(1))
    assert total >= 1000, total
    assert "Traceback" not in (tmp_path / "server.log").read_text()
