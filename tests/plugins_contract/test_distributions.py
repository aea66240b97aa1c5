"""Every first-party plugin (plugins/<id>/) is its own distribution: it builds
a wheel, declares the host versions it supports, installs alone next to the
host in a fresh virtualenv, and its tests (tests/plugins/<id>/) pass there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from fulmen import __version__
from fulmen.plugins import ENTRY_POINT_GROUP, check_id
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_DIRS = sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))


def run(cmd: list[str], cwd: Path | None = None, timeout: float = 600) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                         check=False)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out.stdout


def test_there_are_first_party_plugins():
    assert PLUGIN_DIRS, "no plugins/*/pyproject.toml found"


@pytest.mark.parametrize("plugin_dir", PLUGIN_DIRS, ids=[p.name for p in PLUGIN_DIRS])
def test_metadata_declares_id_and_supported_host_versions(plugin_dir):
    project = tomllib.loads((plugin_dir / "pyproject.toml").read_text())["project"]
    entry_points = project.get("entry-points", {}).get(ENTRY_POINT_GROUP, {})
    assert list(entry_points) == [plugin_dir.name], "entry-point name must be the folder's plugin id"
    assert check_id(plugin_dir.name) is None
    assert entry_points[plugin_dir.name] == f"fulmen_{plugin_dir.name}"
    assert project["name"] == f"fulmen-{plugin_dir.name.replace('_', '-')}"
    [host] = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == "fulmen"]
    assert host.specifier, "declare the supported host versions, e.g. fulmen>=0.1,<0.2"
    assert Version(__version__) in host.specifier
    assert any(s.operator == "<" for s in host.specifier), "give an upper bound on the host version"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("plugin_dir", PLUGIN_DIRS, ids=[p.name for p in PLUGIN_DIRS])
def test_builds_installs_alone_and_its_tests_pass(plugin_dir, tmp_path):
    uv = shutil.which("uv")
    assert uv, "uv is needed to build wheels and virtualenvs"
    plugin_id = plugin_dir.name
    dist = tmp_path / "dist"
    run([uv, "build", "--quiet", "--wheel", "--out-dir", str(dist), str(plugin_dir)], cwd=plugin_dir)
    [wheel] = dist.glob(f"fulmen_{plugin_id}-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = [line.split(":", 1)[1].strip() for line in zf.read(metadata).decode().splitlines()
                    if line.startswith("Requires-Dist:")]
        entry_points = zf.read(metadata.replace("METADATA", "entry_points.txt")).decode()
    assert any(Requirement(r).name == "fulmen" for r in requires), requires
    assert f"[{ENTRY_POINT_GROUP}]" in entry_points and f"{plugin_id} = fulmen_{plugin_id}" in entry_points
    assert any(n.startswith(f"fulmen_{plugin_id}/") and n.endswith(".py") for n in names)

    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)])
    run([uv, "pip", "install", "--quiet", "--python", str(python), str(ROOT / "host"), str(wheel),
         "pytest", "pytest-asyncio", "pytest-timeout", "httpx"])
    code = "import importlib.metadata as m; print(' '.join(d.metadata['Name'] for d in m.distributions()))"
    installed = run([str(python), "-c", code])
    others = [line for line in installed.split() if line.startswith("fulmen-") and line != project_name(plugin_id)]
    assert others == [], f"other plugins were pulled in: {others}"

    tests = ROOT / "tests" / "plugins" / plugin_id
    assert tests.is_dir(), f"no tests for {plugin_id} in tests/plugins/{plugin_id}"
    # the whole tests/plugins folder (tests may share helpers), but only this plugin's run
    work = tmp_path / "work"
    shutil.copytree(tests.parent, work / "tests" / "plugins", ignore=shutil.ignore_patterns("__pycache__"))
    out = run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto",
               "-o", "asyncio_default_fixture_loop_scope=function", "-o", "timeout=300",
               "-m", "not other_plugins", "--rootdir", str(work), f"tests/plugins/{plugin_id}"],
              cwd=work, timeout=900)
    assert " passed" in out and " failed" not in out and " error" not in out, out


def project_name(plugin_id: str) -> str:
    return f"fulmen-{plugin_id.replace('_', '-')}"
