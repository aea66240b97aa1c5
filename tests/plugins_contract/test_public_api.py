"""Plugins import only the host's public API: `fulmen` (its `__all__`) and
`fulmen.testing`. Checked over every first-party plugin, the rendered plugin
template and the probe plugin, so a plugin reaching into the host's
internals fails the normal test run."""

from __future__ import annotations

import ast
from pathlib import Path

import fulmen
import pytest
from fulmen.scaffold import render

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_MODULES = {"fulmen", "fulmen.testing"}


def shadowed(tree: ast.AST) -> set[int]:
    """ids of nodes where the name `fulmen` is a function's parameter (the
    pytest fixture), not the module."""
    nodes: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs
            if any(a.arg == "fulmen" for a in args):
                nodes.update(id(n) for n in ast.walk(fn))
    return nodes


def violations(path: Path) -> list[str]:
    """Imports of the host's private modules or names in one Python file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    local = shadowed(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "fulmen" and alias.name not in PUBLIC_MODULES:
                    found.append(f"{path}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "fulmen":
                continue
            if node.module not in PUBLIC_MODULES:
                found.append(f"{path}:{node.lineno}: from {node.module} import ...")
            elif node.module == "fulmen":
                for alias in node.names:
                    if alias.name not in fulmen.__all__ and alias.name != "testing":
                        found.append(f"{path}:{node.lineno}: from fulmen import {alias.name} "
                                     "(not in fulmen.__all__)")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id == "fulmen" and id(node) not in local \
                and not node.attr.startswith("__"):
            if node.attr not in fulmen.__all__ and node.attr != "testing":
                found.append(f"{path}:{node.lineno}: fulmen.{node.attr} (not in fulmen.__all__)")
    return found


def plugin_sources() -> list[Path]:
    return sorted(p for p in (ROOT / "plugins").glob("*/**/*.py") if ".venv" not in p.parts)


def test_the_checker_catches_private_imports(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import fulmen.db\nfrom fulmen.payments import PaymentService\n"
                   "from fulmen import PluginHost, _secret\nimport fulmen\nfulmen.hooks\n"
                   "from fulmen.testing import plugin\nfrom .local import x\n"
                   "async def test_x(fulmen):\n    await fulmen.start()\n")
    found = violations(bad)
    assert [f.split(": ", 1)[1] for f in found] == [
        "import fulmen.db",
        "from fulmen.payments import ...",
        "from fulmen import _secret (not in fulmen.__all__)",
        "fulmen.hooks (not in fulmen.__all__)",
    ]


def test_first_party_plugins_use_only_the_public_api():
    sources = plugin_sources()
    found = [v for path in sources for v in violations(path)]
    assert found == [], "plugins import host internals:\n" + "\n".join(found)


def test_rendered_template_uses_only_the_public_api(tmp_path):
    out = render("sample_shop", tmp_path)
    sources = sorted(out.rglob("*.py"))
    assert sources
    found = [v for path in sources for v in violations(path)]
    assert found == [], "\n".join(found)


def test_probe_plugin_uses_only_the_public_api():
    sources = sorted((Path(__file__).parent / "fixtures").rglob("*.py"))
    found = [v for path in sources for v in violations(path)]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("name", fulmen.__all__)
def test_public_names_exist(name):
    assert hasattr(fulmen, name)
