"""`make dist` builds wheels that run on their own: the host's wheel and two
plugins' wheels, installed in a fresh virtualenv (no editable installs, no
source folders), serve those two plugins and not a third one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from fulmen.testing import ADMIN_KEY, free_port

ROOT = Path(__file__).resolve().parents[2]
INSTALLED = ["lnurlp", "tpos"]
LEFT_OUT = "withdraw"


def run(cmd: list[str], cwd: Path = ROOT, timeout: float = 300) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                         check=False)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out.stdout


def package_files(package_dir: Path) -> set[str]:
    """What a wheel must carry of a source package: every file but bytecode."""
    return {str(p.relative_to(package_dir.parent)) for p in package_dir.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def wheel(dist: Path, distribution: str) -> Path:
    [found] = dist.glob(f"{distribution}-*-py3-none-any.whl")
    return found


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(["make", "--no-print-directory", "dist", f"DIST={out}"])
    return out


def test_make_dist_builds_a_wheel_and_an_sdist_of_the_host_and_every_plugin(dist):
    plugins = sorted(p.parent.name for p in (ROOT / "plugins").glob("*/pyproject.toml"))
    expected = {"fulmen"} | {f"fulmen_{p}" for p in plugins}
    assert {p.name.split("-")[0] for p in dist.glob("*.whl")} == expected
    assert {p.name.split("-")[0] for p in dist.glob("*.tar.gz")} == expected


@pytest.mark.parametrize("package", ["host/fulmen", *(f"plugins/{p}/fulmen_{p}" for p in INSTALLED)])
def test_wheels_carry_templates_static_files_migrations_and_py_typed(dist, package):
    package_dir = ROOT / package
    names = set(zipfile.ZipFile(wheel(dist, package_dir.name)).namelist())
    missing = package_files(package_dir) - names
    assert not missing, f"left out of the wheel: {sorted(missing)}"
    assert f"{package_dir.name}/py.typed" in names
    if package_dir.name == "fulmen":  # what `fulmen plugin new` renders
        template = {f"fulmen/plugin_template/{p.relative_to(ROOT / 'plugin-template')}"
                    for p in (ROOT / "plugin-template").rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts}
        assert template <= names, sorted(template - names)


@pytest.mark.timeout(300)
def test_host_and_plugin_wheels_install_in_a_plain_venv_and_serve(dist, tmp_path):
    uv = shutil.which("uv")
    assert uv, "uv is needed to make the virtualenv"
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)])
    # The third-party dependencies at the versions of uv.lock, from the package index.
    pins = tmp_path / "pins.txt"
    run([uv, "export", "--quiet", "--frozen", "--all-packages", "--no-dev", "--no-emit-workspace",
         "--no-hashes", "--output-file", str(pins)])
    wheels = [wheel(dist, "fulmen"), *(wheel(dist, f"fulmen_{p}") for p in INSTALLED)]
    run([uv, "pip", "install", "--quiet", "--python", str(python), "--constraint", str(pins),
         *map(str, wheels)])

    where = run([str(python), "-c", "import fulmen; print(fulmen.__file__)"], cwd=tmp_path)
    assert where.startswith(str(venv)), f"fulmen imported from {where}, not the venv"
    run([str(venv / "bin" / "fulmen"), "plugin", "new", "probe_shop", "--dir", str(tmp_path)],
        cwd=tmp_path)
    assert (tmp_path / "probe_shop" / "fulmen_probe_shop" / "templates" / "probe_shop").is_dir()

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULMEN_") and k != "VIRTUAL_ENV"}
    env |= {"FULMEN_DATA_DIR": str(tmp_path / "data"), "FULMEN_ADMIN_KEY": ADMIN_KEY,
            "FULMEN_HOST": "127.0.0.1", "FULMEN_PORT": str(port), "FULMEN_RATE_LIMITS_ENABLED": "false"}
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([str(venv / "bin" / "fulmen"), "serve"], cwd=tmp_path, env=env,
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            wait_until_ready(client, server, log)
            assert client.get("/health").status_code == 200
            assert client.get("/static/fulmen.css").status_code == 200
            assert client.get("/").status_code == 200  # a page from the wheel's templates

            listed = client.get("/admin/api/v1/plugins",
                                headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()
            assert sorted(p["id"] for p in listed) == INSTALLED, listed
            assert all(p["state"] == "enabled" and p["migrations"] for p in listed), listed

            account = client.post("/api/v1/account", json={"name": "shop"}).json()
            key = {"X-Api-Key": account["inkey"]}
            assert client.get("/lnurlp/api/v1/links", headers=key).status_code == 200
            assert client.get("/tpos/api/v1/tposs", headers=key).status_code == 200
            assert client.get(f"/{LEFT_OUT}/api/v1/links", headers=key).status_code == 404
    finally:
        server.terminate()
        server.wait(15)


def wait_until_ready(client: httpx.Client, server: subprocess.Popen, log: Path) -> None:
    for _ in range(600):
        assert server.poll() is None, f"fulmen serve exited:\n{log.read_text()[-4000:]}"
        try:
            if client.get("/ready").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"fulmen serve not ready after 60 s:\n{log.read_text()[-4000:]}")
