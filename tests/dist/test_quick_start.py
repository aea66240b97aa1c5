"""The quick start of docs/plugins.md runs as written, in a copy of this
checkout: the new plugin's tests pass without warnings, and the plugin is
still installed after `make setup` (what `make serve` and `make test` run
first), since pyproject.toml and uv.lock now list it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "plugins.md"


def quick_start_commands() -> str:
    section = DOCS.read_text().split("## Quick start\n", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    return block


def copy_checkout(target: Path) -> None:
    """The checkout's files (tracked, and new ones not ignored), without its .venv or data."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def bash(script: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=400, check=False)
    assert out.returncode == 0, f"{script}\nfailed:\n{out.stdout[-6000:]}\n{out.stderr[-6000:]}"
    return out.stdout + out.stderr


def test_the_quick_start_block_is_found():
    commands = quick_start_commands()
    assert "fulmen plugin new my_shop" in commands and "pytest" in commands


@pytest.mark.timeout(450)
def test_quick_start_runs_verbatim_and_the_plugin_survives_make_setup(tmp_path):
    assert shutil.which("uv") and shutil.which("make"), "the quick start needs uv and make"
    checkout = tmp_path / "fulmen"
    copy_checkout(checkout)

    out = bash(quick_start_commands(), checkout)
    summary = [line for line in out.splitlines() if " passed" in line]
    assert summary and re.search(r"\b5 passed in ", summary[-1]), out[-4000:]
    assert "warning" not in summary[-1], summary[-1]  # no deprecation noise from the host

    assert '"fulmen-my-shop"' in (checkout / "pyproject.toml").read_text()
    assert 'name = "fulmen-my-shop"' in (checkout / "uv.lock").read_text()
    after = bash("make --no-print-directory setup && .venv/bin/python -c "
                 "'import fulmen_my_shop; print(fulmen_my_shop.__file__)'", checkout)
    assert str(checkout / "my_shop" / "fulmen_my_shop") in after, after
    assert "Uninstalled" not in after, after
