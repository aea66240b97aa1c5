"""Puts plugin-template/ into the wheel as `fulmen/plugin_template`, which
`fulmen plugin new` renders.

The template lives beside the host in the repository (`../plugin-template`)
and at the top of the host's sdist (`plugin-template`), so a wheel built from
either finds it here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class PluginTemplateHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        for candidate in (Path(self.root).parent / "plugin-template", Path(self.root) / "plugin-template"):
            if (candidate / "pyproject.toml").is_file():
                build_data["force_include"][str(candidate)] = "fulmen/plugin_template"
                return
        raise FileNotFoundError("plugin-template/ is missing: build from the repository or the sdist")
