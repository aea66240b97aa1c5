"""`fulmen plugin new` renders plugin-template/ into a package that installs
next to the host in a fresh virtualenv, migrates, serves, gets its hook
called, builds a wheel, and whose own tests pass there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHECKS = '''
from fulmen import query

PLUGIN = "sample_shop"


async def test_route_table_and_hook(fulmen):
    client = await fulmen.start(plugins=[PLUGIN])
    page = await client.get(f"/{PLUGIN}/")
    assert page.status_code == 200 and "Sample Shop" in page.text
    # the table exists, empty
    assert list(await query("SELECT * FROM sample_shop_paid_invoice")) == []
    listed = (await client.get("/admin/api/v1/plugins", headers=fulmen.admin_headers)).json()
    assert [(p["id"], p["state"], len(p["migrations"])) for p in listed] == [(PLUGIN, "enabled", 1)]
    # the hook fires on a payment of an invoice made through the plugin
    payer = await fulmen.wallet("payer", sats=100)
    shop = await fulmen.wallet("shop")
    r = await client.post(f"/{PLUGIN}/api/v1/invoices", json={"amount": 3},
                          headers=shop.invoice_headers)
    assert r.status_code == 201, r.text
    assert (await fulmen.pay(payer, r.json()["bolt11"])).status_code == 201
    await fulmen.drain()
    rows = [dict(x) for x in await query("SELECT wallet_id, amount_msat FROM sample_shop_paid_invoice")]
    assert rows == [{"wallet_id": shop.id, "amount_msat": 3000}]
    deliveries = (await client.get("/admin/api/v1/hook-deliveries", headers=fulmen.admin_headers)).json()
    assert [(d["plugin_id"], d["hook"], d["status"]) for d in deliveries] == [
        (PLUGIN, "on_invoice_paid", "done")]
'''


def run(cmd: list[str], cwd: Path | None = None, timeout: float = 300) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                         check=False)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


@pytest.mark.timeout(900)
def test_rendered_template_installs_serves_and_its_tests_pass(tmp_path):
    uv = shutil.which("uv")
    assert uv, "uv is needed to build the fresh virtualenv"
    run([sys.executable, "-m", "fulmen", "plugin", "new", "sample_shop", "--dir", str(tmp_path)])
    plugin_dir = tmp_path / "sample_shop"
    pyproject = (plugin_dir / "pyproject.toml").read_text()
    assert 'sample_shop = "fulmen_sample_shop"' in pyproject
    assert '"fulmen>=0.1,<0.2"' in pyproject and "hatchling" in pyproject
    assert not [p for p in plugin_dir.rglob("*") if "__plugin" in str(p) or
                (p.is_file() and "__plugin_" in p.read_text(errors="ignore"))]

    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)])
    run([uv, "pip", "install", "--quiet", "--python", str(python), str(ROOT / "host"), str(plugin_dir),
         "pytest", "pytest-asyncio", "httpx"], timeout=600)
    # installed, not imported from the source folders
    code = "import fulmen, fulmen_sample_shop; print(fulmen.__file__); print(fulmen_sample_shop.__file__)"
    where = run([str(python), "-c", code], cwd=tmp_path)
    assert str(ROOT) not in where and str(plugin_dir) not in where

    checks = tmp_path / "checks"
    checks.mkdir()
    (checks / "test_checks.py").write_text(textwrap.dedent(CHECKS))
    ini = ["-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function",
           "-p", "no:cacheprovider", "-q"]
    out = run([str(python), "-m", "pytest", *ini, str(checks)], cwd=checks)
    assert "1 passed" in out, out
    out = run([str(python), "-m", "pytest", "-p", "no:cacheprovider", "-q"], cwd=plugin_dir)
    assert "5 passed" in out, out

    run([uv, "build", "--quiet", "--wheel", "--out-dir", str(tmp_path / "dist"), str(plugin_dir)])
    [wheel] = (tmp_path / "dist").glob("fulmen_sample_shop-0.1.0-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "fulmen_sample_shop/templates/sample_shop/index.html" in names
    assert any(n.startswith("fulmen_sample_shop/migrations/sample_shop_") for n in names)
