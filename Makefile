# Two commands do all the set-up on a fresh machine (Python 3.11+ and pip):
#   make serve   - install, then start the server on the embedded default
#   make test    - install, then run the tests
#   make lint    - ruff and the import-layer contracts (lint-imports)
#   make typecheck - mypy over the host, the plugins and the plugin template
#   make dist    - wheels and sdists of the host and every plugin in ./dist
UV ?= $(shell command -v uv 2>/dev/null || echo python3 -m uv)
DIST ?= dist

.PHONY: uv setup serve test bench lint typecheck dist

uv:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv

# Installs exactly what uv.lock lists (and removes anything else): add a
# plugin with `uv add`, see docs/plugins.md.
setup: uv
	$(UV) sync --all-packages --frozen

# The host (`fulmen`) and each plugins/<id> (`fulmen-<id>`), built from their
# sdists, so a broken sdist fails here too.
dist: uv
	$(UV) build --all-packages --clear --out-dir "$(DIST)"

serve: setup
	$(UV) run fulmen serve

test: setup
	$(UV) run pytest

bench: setup
	$(UV) run python bench/run.py

# The plugin template holds placeholders (`__plugin_id__`), so both checks
# render it to a temporary folder first, as `fulmen plugin new` does.
RENDER_TEMPLATE = dir=$$(mktemp -d) && trap 'rm -rf "$$dir"' EXIT && \
	$(UV) run fulmen plugin new template_check --dir "$$dir" >/dev/null && \
	plugin="$$dir/template_check"

lint: setup
	$(UV) run ruff check .
	$(UV) run lint-imports
	@$(RENDER_TEMPLATE) && echo "ruff: rendered plugin template" && \
	$(UV) run ruff check --config pyproject.toml "$$plugin"

typecheck: setup
	@$(RENDER_TEMPLATE) && set -x && \
	$(UV) run mypy host/fulmen plugins/*/fulmen_* "$$plugin/fulmen_template_check" "$$plugin/tests"
