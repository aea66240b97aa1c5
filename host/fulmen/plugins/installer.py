"""Installing, upgrading and uninstalling plugin distributions into the
host's own environment (the one `sys.executable` runs in).

Every spec is checked before anything runs: what pip would accept (a path
to a wheel or project folder, or a requirement such as `name==1.2`), but
- its distribution name must match FULMEN_PLUGIN_INSTALL_ALLOW (names or
  globs; empty refuses every install);
- a path must lie in one of FULMEN_PLUGIN_INSTALL_PATHS;
- a requirement is looked up in those folders (`--find-links`) and, only
  when FULMEN_PLUGIN_INDEX_URL is set, on that index (`--no-index` otherwise);
- nothing that looks like an option (`-e`, `--index-url`), a URL or a
  shell string gets through; the installer runs from an argv list.

The running server notices the changed set of plugins and restarts its
worker gracefully (fulmen/supervisor.py); nothing here touches it.
"""

from __future__ import annotations

import asyncio
import fnmatch
import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from importlib_metadata import distributions
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from .. import db
from ..settings import Settings
from .discovery import ENTRY_POINT_GROUP
from .lifecycle import Plugin

INSTALL_TIMEOUT = 300.0
SDIST = re.compile(r"^(?P<name>.+)-(?P<version>[^-]+)\.(tar\.gz|zip)$")


class InstallRefused(Exception):
    """A spec or plugin the settings do not allow; the message says which setting."""

    status_code = 403


class InstallFailed(Exception):
    """The installer ran and failed; the message carries its output's tail."""

    status_code = 422


@dataclass(frozen=True)
class Checked:
    spec: str  #: what the installer receives (a resolved path, or the requirement)
    distribution: str  #: its canonical distribution name
    local: bool


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


class Installer:
    def __init__(self, settings: Settings, python: str | None = None) -> None:
        self.settings = settings
        self.python = python or sys.executable
        self.allow = [canonicalize_name(n) if "*" not in n else n.lower().replace("_", "-")
                      for n in _names(settings.plugin_install_allow)]
        self.folders = [Path(p).expanduser().resolve() for p in _names(settings.plugin_install_paths)]

    # --- checking -------------------------------------------------------------------------

    def allowed(self, distribution: str) -> bool:
        name = canonicalize_name(distribution)
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.allow)

    def check(self, spec: str) -> Checked:
        """The spec as the installer will get it, or `InstallRefused` saying why not."""
        if not isinstance(spec, str) or not spec.strip():
            raise InstallRefused("spec is required: a wheel, a project folder or a requirement")
        spec = spec.strip()
        if not self.allow:
            raise InstallRefused("installing plugins is off: FULMEN_PLUGIN_INSTALL_ALLOW is empty")
        if spec.startswith("-"):
            raise InstallRefused(f"{spec!r} looks like an installer option; give a spec")
        if len(spec) > 1000 or any(c in spec for c in "\n\r\0;|&$`"):
            raise InstallRefused("spec holds characters no package spec has")
        if "://" in spec or spec.startswith(("git+", "file:")):
            raise InstallRefused("URLs are not accepted: put the file in a folder of "
                                 "FULMEN_PLUGIN_INSTALL_PATHS, or name a requirement")
        checked = self._check_path(spec) if self._is_path(spec) else self._check_requirement(spec)
        if not self.allowed(checked.distribution):
            raise InstallRefused(f"{checked.distribution!r} is not in FULMEN_PLUGIN_INSTALL_ALLOW")
        return checked

    @staticmethod
    def _is_path(spec: str) -> bool:
        return "/" in spec or spec.startswith(".") or spec.endswith((".whl", ".tar.gz", ".zip"))

    def _check_path(self, spec: str) -> Checked:
        path = Path(spec).expanduser().resolve()
        if not self.folders:
            raise InstallRefused("installing from a path is off: FULMEN_PLUGIN_INSTALL_PATHS is empty")
        if not any(path.is_relative_to(folder) for folder in self.folders):
            raise InstallRefused(f"{spec!r} is not inside a folder of FULMEN_PLUGIN_INSTALL_PATHS")
        if not path.exists():
            raise InstallRefused(f"{spec!r} does not exist")
        return Checked(str(path), self._path_distribution(path), local=True)

    @staticmethod
    def _path_distribution(path: Path) -> str:
        if path.is_dir():
            try:
                project = tomllib.loads((path / "pyproject.toml").read_text())["project"]
                return canonicalize_name(project["name"])
            except (OSError, KeyError, tomllib.TOMLDecodeError):
                raise InstallRefused(f"{path} has no pyproject.toml naming its project") from None
        if path.name.endswith(".whl"):
            try:
                return canonicalize_name(parse_wheel_filename(path.name)[0])
            except InvalidWheelFilename as exc:
                raise InstallRefused(f"not a wheel file name: {exc}") from None
        match = SDIST.match(path.name)
        if not match:
            raise InstallRefused(f"{path.name!r} is neither a wheel nor a source archive")
        return canonicalize_name(match["name"])

    def _check_requirement(self, spec: str) -> Checked:
        try:
            req = Requirement(spec)
        except InvalidRequirement as exc:
            raise InstallRefused(f"not a requirement: {exc}") from None
        if req.url:
            raise InstallRefused("direct URL requirements are not accepted")
        if not self.folders and not self.settings.plugin_index_url:
            raise InstallRefused("no source: set FULMEN_PLUGIN_INSTALL_PATHS (folders of wheels) "
                                 "or FULMEN_PLUGIN_INDEX_URL")
        return Checked(str(req), canonicalize_name(req.name), local=False)

    # --- running the installer ---------------------------------------------------------------

    def base_command(self) -> list[str]:
        """uv when it is there (a uv-made venv may have no pip), else `python -m pip`."""
        uv = shutil.which("uv")
        if uv is None and importlib.util.find_spec("uv") is not None:
            from uv import find_uv_bin  # type: ignore[import-not-found]

            uv = find_uv_bin()
        if uv:
            return [uv, "pip"]
        return [self.python, "-m", "pip"]

    def _uses_uv(self, command: list[str]) -> bool:
        return command[1] == "pip" and command[0] != self.python

    def install_argv(self, checked: Checked, upgrade: bool = False) -> list[str]:
        command = self.base_command()
        argv = [*command, "install"]
        if self._uses_uv(command):
            argv += ["--python", self.python]
        if self.settings.plugin_index_url:
            argv += ["--index-url", self.settings.plugin_index_url]
        else:
            argv.append("--no-index")
        for folder in self.folders:
            argv += ["--find-links", str(folder)]
        if upgrade:
            argv.append("--upgrade")
            if self._uses_uv(command):  # a rebuilt wheel of the same version is taken too
                argv += ["--reinstall-package", checked.distribution]
        return [*argv, "--", checked.spec] if not self._uses_uv(command) else [*argv, checked.spec]

    def uninstall_argv(self, distribution: str) -> list[str]:
        command = self.base_command()
        if self._uses_uv(command):
            return [*command, "uninstall", "--python", self.python, distribution]
        return [*command, "uninstall", "--yes", distribution]

    async def run(self, argv: list[str]) -> str:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), INSTALL_TIMEOUT)
        except TimeoutError:
            proc.kill()
            raise InstallFailed(f"the installer took longer than {INSTALL_TIMEOUT:.0f}s") from None
        text = out.decode(errors="replace")
        if proc.returncode != 0:
            raise InstallFailed(f"{Path(argv[0]).name} {argv[1]} failed: {text[-2000:].strip()}")
        return text

    def run_sync(self, argv: list[str]) -> str:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT, check=False)
        text = done.stdout + done.stderr
        if done.returncode != 0:
            raise InstallFailed(f"{Path(argv[0]).name} {argv[1]} failed: {text[-2000:].strip()}")
        return text


def installed_plugins(python_path: list[str] | None = None) -> dict[str, tuple[str, str]]:
    """Plugin id -> (distribution, version) of every installed plugin, read
    fresh from the environment (no import of the plugins)."""
    importlib.invalidate_caches()
    found: dict[str, tuple[str, str]] = {}
    for dist in distributions(path=python_path or sys.path):
        for ep in dist.entry_points.select(group=ENTRY_POINT_GROUP):
            found.setdefault(ep.name, (canonicalize_name(dist.metadata["Name"] or ""), dist.version))
    return found


def distribution_of(plugin_id: str) -> str | None:
    entry = installed_plugins().get(plugin_id)
    return entry[0] if entry else None


# --- what the CLI and the admin API do ---------------------------------------------------------


def changes(before: dict[str, tuple[str, str]], after: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """The plugins an install or uninstall added, changed and removed."""
    return {
        "installed": {k: after[k][1] for k in after.keys() - before.keys()},
        "upgraded": {k: {"from": before[k][1], "to": after[k][1]}
                     for k in after.keys() & before.keys() if after[k] != before[k]},
        "removed": sorted(before.keys() - after.keys()),
    }


async def install(installer: Installer, spec: str, upgrade: bool = False) -> dict[str, Any]:
    checked = installer.check(spec)
    before = installed_plugins()
    await installer.run(installer.install_argv(checked, upgrade))
    return {"distribution": checked.distribution, **changes(before, installed_plugins())}


def uninstall_target(installer: Installer, plugin_id: str) -> str:
    """The distribution holding `plugin_id`, if the settings let it be removed."""
    distribution = distribution_of(plugin_id)
    if distribution is None:
        raise LookupError(f"No plugin {plugin_id!r} is installed.")
    if not installer.allow:
        raise InstallRefused("removing plugins is off: FULMEN_PLUGIN_INSTALL_ALLOW is empty")
    if not installer.allowed(distribution):
        raise InstallRefused(f"{distribution!r} is not in FULMEN_PLUGIN_INSTALL_ALLOW")
    return distribution


async def drop_data(plugin: Plugin) -> list[str]:
    """Drop the plugin's tables and forget its migrations and its enabled flag."""
    tables = [t._meta.tablename for app in plugin.apps for t in app.table_classes]
    cascade = " CASCADE" if db.is_postgres() else ""
    for table in reversed(tables):
        await db.run_ddl(f'DROP TABLE IF EXISTS "{table}"{cascade}')
    for app in plugin.apps:
        await db.query("DELETE FROM migration WHERE app_name = {}", app.app_name)
    await db.query("DELETE FROM fulmen_plugin_state WHERE plugin_id = {}", plugin.id)
    return tables
