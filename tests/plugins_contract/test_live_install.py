"""Installing, upgrading and uninstalling a plugin while `fulmen serve` runs,
by the CLI and by the admin API, into a throwaway venv (throwaway.py)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from fulmen.plugins.installer import Installer, InstallRefused
from fulmen.settings import Settings
from fulmen.testing import ADMIN_KEY, ServerProcess

from .throwaway import MIGRATIONS, PLUGIN_ID, build_wheel, make_venv

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
API = "/admin/api/v1"
FOLLOW_SECONDS = 20.0  # detection (2 s) + a new worker's start on a busy 2-core machine


def until(check, timeout: float = FOLLOW_SECONDS, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(0.2)


@pytest.fixture
def live(tmp_path):
    """A throwaway venv with wheels of livetest 1.0.0 (one migration) and 1.1.0 (two)."""
    wheels = tmp_path / "wheels"
    build_wheel(wheels, "1.0.0", migrations=1)
    build_wheel(wheels, "1.1.0", migrations=2)
    python = make_venv(tmp_path / "venv")
    env = {"FULMEN_ADMIN_KEY": ADMIN_KEY, "FULMEN_DATA_DIR": str(tmp_path / "data"),
           "FULMEN_PLUGINS": PLUGIN_ID, "FULMEN_PLUGIN_INSTALL_ALLOW": "fulmen-live*",
           "FULMEN_PLUGIN_INSTALL_PATHS": str(wheels), "FULMEN_PLUGIN_RESCAN_INTERVAL": "0.5"}
    return python, wheels, env


def cli(python: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "fulmen", "plugin", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


def hello(url: str) -> dict | None:
    r = httpx.get(url + f"/{PLUGIN_ID}/hello", timeout=10)
    return r.json() if r.status_code == 200 else None


def columns(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[1] for row in conn.execute("PRAGMA table_info(livetest_note)")]


def test_install_upgrade_uninstall_while_serving(live, tmp_path):
    python, wheels, env = live
    server = ServerProcess(env, python=str(python), log_path=tmp_path / "server.log").start()
    try:
        url, pid = server.url, server.proc.pid
        assert hello(url) is None
        # CLI install, from another process
        done = cli(python, env, "install", str(wheels / "fulmen_livetest-1.0.0-py3-none-any.whl"))
        assert done.returncode == 0, done.stderr
        assert "installed plugin livetest 1.0.0" in done.stdout
        assert until(lambda: hello(url), what="livetest served") == {"version": "1.0.0", "notes": 0}
        listed = httpx.get(url + API + "/plugins", headers=ADMIN).json()
        assert [p["version"] for p in listed if p["id"] == PLUGIN_ID] == ["1.0.0"]
        detail = httpx.get(url + API + f"/plugins/{PLUGIN_ID}", headers=ADMIN).json()
        assert detail["lifecycle"] == "started" and detail["migrations"] == [MIGRATIONS[0][0]]
        assert detail["processes"][0]["version"] == "1.0.0"
        assert httpx.post(url + f"/{PLUGIN_ID}/notes", json={"id": "n1", "note": "kept"}).status_code == 201

        # API upgrade to a version with a new migration
        r = httpx.post(url + API + f"/plugins/{PLUGIN_ID}/upgrade", headers=ADMIN, timeout=120,
                       json={"spec": str(wheels / "fulmen_livetest-1.1.0-py3-none-any.whl")})
        assert r.status_code == 200, r.text
        assert r.json()["upgraded"] == {PLUGIN_ID: {"from": "1.0.0", "to": "1.1.0"}}
        assert until(lambda: (hello(url) or {}).get("version") == "1.1.0", what="1.1.0 served")
        assert "colour" in columns(tmp_path / "data" / "fulmen.sqlite3")
        detail = httpx.get(url + API + f"/plugins/{PLUGIN_ID}", headers=ADMIN).json()
        assert detail["migrations"] == [m[0] for m in MIGRATIONS]

        # CLI uninstall: not served, data kept
        done = cli(python, env, "uninstall", PLUGIN_ID)
        assert done.returncode == 0, done.stderr
        assert "removed plugin livetest" in done.stdout and "data is kept" in done.stdout
        until(lambda: httpx.get(url + f"/{PLUGIN_ID}/hello").status_code == 404, what="not served")
        assert PLUGIN_ID not in [p["id"] for p in httpx.get(url + API + "/plugins", headers=ADMIN).json()]
        assert httpx.get(url + API + f"/plugins/{PLUGIN_ID}", headers=ADMIN).status_code == 404
        assert "colour" in columns(tmp_path / "data" / "fulmen.sqlite3")

        # API install again: the kept data is there
        r = httpx.post(url + API + "/plugins/install", headers=ADMIN, timeout=120,
                       json={"spec": str(wheels / "fulmen_livetest-1.1.0-py3-none-any.whl")})
        assert r.status_code == 200 and r.json()["installed"] == {PLUGIN_ID: "1.1.0"}, r.text
        assert until(lambda: hello(url), what="served again") == {"version": "1.1.0", "notes": 1}

        # API uninstall with drop_data
        r = httpx.delete(url + API + f"/plugins/{PLUGIN_ID}?drop_data=true", headers=ADMIN, timeout=120)
        assert r.status_code == 200 and r.json()["dropped_tables"] == ["livetest_note"], r.text
        until(lambda: httpx.get(url + f"/{PLUGIN_ID}/hello").status_code == 404, what="not served")
        assert columns(tmp_path / "data" / "fulmen.sqlite3") == []

        # refusals through the API: 4xx JSON naming the problem
        refused = {
            "--index-url=https://evil.example": "looks like an installer option",
            "/etc/passwd": "FULMEN_PLUGIN_INSTALL_PATHS",
            "requests": "not in FULMEN_PLUGIN_INSTALL_ALLOW",
            "https://evil.example/x.whl": "URLs are not accepted",
        }
        for spec, reason in refused.items():
            r = httpx.post(url + API + "/plugins/install", headers=ADMIN, json={"spec": spec})
            assert r.status_code == 403 and reason in r.json()["detail"], (spec, r.text)
        r = httpx.post(url + API + "/plugins/install", headers=ADMIN, json={})
        assert r.status_code == 400 and "spec" in r.json()["detail"]
        assert httpx.post(url + API + "/plugins/install", json={"spec": "x"}).status_code == 401
        assert httpx.delete(url + API + "/plugins/nope", headers=ADMIN).status_code == 404
        # one server process throughout: the handovers happened behind it
        assert server.proc.pid == pid and server.proc.poll() is None
    finally:
        assert server.stop() in (0, -15)  # as a single-process uvicorn ends on SIGTERM


def test_install_refused_without_allow_list(tmp_path):
    installer = Installer(Settings(plugin_install_allow="", plugin_install_paths=str(tmp_path)))
    with pytest.raises(InstallRefused, match="FULMEN_PLUGIN_INSTALL_ALLOW is empty"):
        installer.check("fulmen-livetest")


@pytest.mark.parametrize(("spec", "reason"), [
    ("-e", "looks like an installer option"),
    ("--index-url", "looks like an installer option"),
    ("fulmen-livetest; rm -rf /", "characters no package spec has"),
    ("git+https://example.com/x.git", "URLs are not accepted"),
    ("fulmen-livetest @ https://example.com/x.whl", "URLs are not accepted"),
    ("other-package==1.0", "not in FULMEN_PLUGIN_INSTALL_ALLOW"),
    ("/tmp/elsewhere/fulmen_livetest-1.0.0-py3-none-any.whl", "FULMEN_PLUGIN_INSTALL_PATHS"),
])
def test_specs_refused(tmp_path, spec, reason):
    installer = Installer(Settings(plugin_install_allow="fulmen-live*",
                                   plugin_install_paths=str(tmp_path / "wheels")))
    with pytest.raises(InstallRefused, match=reason):
        installer.check(spec)


def test_requirement_needs_a_source_and_gets_no_index(tmp_path):
    no_source = Installer(Settings(plugin_install_allow="fulmen-livetest"))
    with pytest.raises(InstallRefused, match="no source"):
        no_source.check("fulmen-livetest==1.0.0")
    wheels = tmp_path / "wheels"
    wheel = build_wheel(wheels, "1.0.0")
    installer = Installer(Settings(plugin_install_allow="fulmen_LiveTest",
                                   plugin_install_paths=str(wheels)))
    checked = installer.check("fulmen-livetest==1.0.0")
    argv = installer.install_argv(checked)
    assert "--no-index" in argv and argv[argv.index("--find-links") + 1] == str(wheels.resolve())
    assert argv[-1] == "fulmen-livetest==1.0.0"
    assert installer.check(str(wheel)).distribution == "fulmen-livetest"
    indexed = Installer(Settings(plugin_install_allow="fulmen-livetest",
                                 plugin_index_url="https://pypi.example/simple"))
    argv = indexed.install_argv(indexed.check("fulmen-livetest"))
    assert "--no-index" not in argv and "https://pypi.example/simple" in argv


def test_older_copy_quarantines_when_a_newer_one_migrates_postgres(live, tmp_path, postgres_url):
    """Two processes on one PostgreSQL: A runs livetest 1.0.0, then B starts
    with 1.1.0 and migrates forward; A sees the migration it does not know
    and quarantines the plugin with the reason instead of serving it."""
    _, wheels, env = live
    env = {**env, "DATABASE_URL": postgres_url}
    venvs = {}
    for name, version in (("a", "1.0.0"), ("b", "1.1.0")):
        venvs[name] = make_venv(tmp_path / f"venv-{name}")
        done = cli(venvs[name], env, "install", str(wheels / f"fulmen_livetest-{version}-py3-none-any.whl"))
        assert done.returncode == 0, done.stderr
    a = ServerProcess(env, python=str(venvs["a"]), log_path=tmp_path / "a.log").start()
    b = None
    try:
        assert hello(a.url) == {"version": "1.0.0", "notes": 0}
        b = ServerProcess(env, python=str(venvs["b"]), log_path=tmp_path / "b.log").start()
        assert hello(b.url) == {"version": "1.1.0", "notes": 0}
        started = time.monotonic()
        detail = until(lambda: (d := httpx.get(a.url + API + f"/plugins/{PLUGIN_ID}", headers=ADMIN).json())
                       ["state"] == "incompatible" and d, timeout=5, what="quarantine in A")
        took = time.monotonic() - started
        assert MIGRATIONS[1][0] in detail["last_error"]
        assert "this copy (1.0.0) does not know" in detail["last_error"]
        assert "running 1.1.0 elsewhere" in detail["last_error"]
        assert httpx.get(a.url + f"/{PLUGIN_ID}/hello").status_code == 404
        assert hello(b.url) == {"version": "1.1.0", "notes": 0}
        processes = httpx.get(b.url + API + "/processes", headers=ADMIN).json()
        versions = sorted(p["plugins"][PLUGIN_ID]["version"] for p in processes)
        assert versions == ["1.0.0", "1.1.0"]
        states = {p["plugins"][PLUGIN_ID]["version"]: p["plugins"][PLUGIN_ID]["state"] for p in processes}
        assert states == {"1.0.0": "incompatible", "1.1.0": "enabled"}
        print(f"A quarantined livetest {took:.1f}s after B was ready")
    finally:
        if b:
            b.stop()
        a.stop()


def test_a_worker_that_cannot_start_leaves_the_old_one_serving(live, tmp_path):
    """With FULMEN_PLUGINS_STRICT a broken plugin stops a new worker from
    starting: the running one keeps serving the previous version."""
    python, wheels, env = live
    env = {**env, "FULMEN_PLUGINS_STRICT": "true"}
    broken = build_wheel(tmp_path / "broken", "2.0.0", broken=True)
    assert cli(python, env, "install", str(wheels / "fulmen_livetest-1.0.0-py3-none-any.whl")).returncode == 0
    server = ServerProcess(env, python=str(python), log_path=tmp_path / "server.log").start()
    try:
        assert hello(server.url) == {"version": "1.0.0", "notes": 0}
        done = cli(python, {**env, "FULMEN_PLUGIN_INSTALL_PATHS": str(broken.parent)}, "upgrade",
                   str(broken))
        assert "upgraded plugin livetest 1.0.0 -> 2.0.0" in done.stdout, done.stderr
        log = tmp_path / "server.log"
        until(lambda: "failed to start" in log.read_text(), what="the failed handover")
        assert hello(server.url) == {"version": "1.0.0", "notes": 0}
        assert httpx.get(server.url + "/ready").status_code == 200
    finally:
        assert server.stop() in (0, -15)
