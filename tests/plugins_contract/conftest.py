"""Fixtures for the plugin-contract tests.

`probe_site` makes the probe plugin in fixtures/probe installable by path:
a folder with the package and its `.dist-info` (metadata and the
`fulmen.plugins` entry point), put on sys.path in this process and on
PYTHONPATH for server subprocesses. Nothing is installed into the venv.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]


def make_distribution(site: Path, name: str, version: str, entry_points: dict[str, str],
                      requires: list[str], summary: str = "") -> None:
    """Write the metadata of an installed distribution into `site`."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", f"Summary: {summary}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    eps = "[fulmen.plugins]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(eps)
    (info / "RECORD").write_text("")


@pytest.fixture(scope="session")
def probe_site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("probe-site")
    shutil.copytree(FIXTURES / "probe" / "fulmen_contract_probe", site / "fulmen_contract_probe",
                    ignore=shutil.ignore_patterns("__pycache__"))
    make_distribution(site, "fulmen-contract-probe", "0.1.0",
                      {"contract_probe": "fulmen_contract_probe"}, ["fulmen>=0.1,<0.2"],
                      "Records every hook call (contract tests)")
    return site


@pytest.fixture
def probe(probe_site, monkeypatch) -> Path:
    """The probe plugin is importable and discoverable in this process."""
    monkeypatch.syspath_prepend(str(probe_site))
    return probe_site


def probe_env(site: Path, **extra: str) -> dict[str, str]:
    """Environment for a server subprocess that loads only the probe plugin."""
    path = os.pathsep.join(p for p in [str(site), os.environ.get("PYTHONPATH", "")] if p)
    return {"PYTHONPATH": path, "FULMEN_PLUGINS": "contract_probe", **extra}
