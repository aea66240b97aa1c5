"""Meta-tests: every hook in fulmen/hookspecs.py is documented (in its
docstring and in docs/plugins.md, with an example) and has a test named
`test_hook_<name>` somewhere under tests/."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest
from fulmen import hookspecs

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "plugins.md"


def hooks() -> dict[str, object]:
    return {name: fn for name, fn in vars(hookspecs).items()
            if callable(fn) and hasattr(fn, "fulmen_spec")}


def test_hooks_are_found():
    names = set(hooks())
    assert {"on_invoice_paid", "register_routes", "resolve_lightning_address"} <= names
    assert set(hookspecs.PAYMENT_HOOKS) <= names


def doc_section(name: str) -> str:
    text = DOCS.read_text()
    match = re.search(rf"^### `{name}`\n(.*?)(?=^#{{1,3}} |\Z)", text, re.DOTALL | re.MULTILINE)
    return match.group(1) if match else ""


def defined_functions() -> set[str]:
    names = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        names |= {n.name for n in ast.walk(tree)
                  if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return names


@pytest.mark.parametrize("name", sorted(hooks()))
def test_every_hook_is_documented_in_its_spec(name):
    fn = hooks()[name]
    doc = inspect.getdoc(fn) or ""
    for part in ("When", "Arguments:", "Results:"):
        assert part in doc, f"hookspecs.{name}'s docstring lacks {part!r}"
    firstresult = fn.fulmen_spec.get("firstresult", False)
    assert ("First result wins" in doc) == firstresult, \
        f"hookspecs.{name}: the docstring must say 'First result wins' exactly when firstresult=True"


@pytest.mark.parametrize("name", sorted(hooks()))
def test_every_hook_is_documented_with_an_example(name):
    section = doc_section(name)
    assert section, f"docs/plugins.md has no section '### `{name}`'"
    examples = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert any(re.search(rf"def {name}\(", ex) for ex in examples), \
        f"docs/plugins.md: the `{name}` section needs a python example implementing it"
    for ex in examples:
        ast.parse(ex)  # examples are valid Python


@pytest.mark.parametrize("name", sorted(hooks()))
def test_every_hook_has_a_test(name):
    assert f"test_hook_{name}" in defined_functions(), f"no test_hook_{name} under tests/"
