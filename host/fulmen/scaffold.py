"""`fulmen plugin new NAME`: a new plugin package from plugin-template/.

The template is an ordinary folder whose paths and files use three
placeholders: `__plugin_id__` (the id), `__plugin_dist__` (the id with
dashes, for the distribution name) and `__plugin_title__` (a readable name).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from .plugins import check_id

PLACEHOLDERS = ("__plugin_id__", "__plugin_dist__", "__plugin_title__")
SKIP = {"__pycache__", ".pytest_cache", ".venv", "dist", "build"}


def template_dir() -> Path:
    """The template shipped in the package, else the one in a source checkout."""
    for candidate in (Path(__file__).parent / "plugin_template",
                      Path(__file__).resolve().parents[2] / "plugin-template"):
        if (candidate / "pyproject.toml").is_file():
            return candidate
    raise click.ClickException("the plugin template is missing from this installation of fulmen")


def substitutions(plugin_id: str) -> dict[str, str]:
    return {
        "__plugin_id__": plugin_id,
        "__plugin_dist__": plugin_id.replace("_", "-"),
        "__plugin_title__": plugin_id.replace("_", " ").title(),
    }


def fill(text: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def render(plugin_id: str, parent: Path, template: Path | None = None) -> Path:
    """Write the plugin package for `plugin_id` to `parent/plugin_id`; returns that folder."""
    problem = check_id(plugin_id)
    if problem:
        raise click.BadParameter(problem, param_hint="NAME")
    template = template or template_dir()
    target = Path(parent) / plugin_id
    if target.exists():
        raise click.ClickException(f"{target} already exists; choose another --dir or name")
    values = substitutions(plugin_id)
    for source in sorted(template.rglob("*")):
        relative = source.relative_to(template)
        if SKIP & set(relative.parts) or source.suffix == ".pyc":
            continue
        destination = target / fill(str(relative), values)
        if source.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            destination.write_text(fill(source.read_text(encoding="utf-8"), values), encoding="utf-8")
        except UnicodeDecodeError:  # binary files (images) are copied as they are
            shutil.copyfile(source, destination)
    return target


@click.group()
def plugin() -> None:
    """Write and package plugins."""


@plugin.command("new")
@click.argument("name")
@click.option("--dir", "parent", default=".", type=click.Path(file_okay=False, path_type=Path),
              help="Folder to create the plugin's folder in (default: the current one).")
def new(name: str, parent: Path) -> None:
    """Create the package of a new plugin with id NAME (e.g. my_shop)."""
    target = render(name, parent)
    # `uv add` reads a bare name as a package on the index: a path needs a slash.
    path = str(target) if target.is_absolute() else f"./{target}"
    click.echo(f"Created {target}")
    click.echo(f"Next, in the Fulmen workspace: uv add --editable {path} && uv run pytest {path}")
