# Two commands do all the set-up on a fresh machine (Python 3.11+ and pip):
#   make serve   - install, then start the server on the embedded default
#   make test    - install, then run the tests
UV ?= $(shell command -v uv 2>/dev/null || echo python3 -m uv)

.PHONY: setup serve test bench

setup:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --all-packages --frozen

serve: setup
	$(UV) run fulmen serve

test: setup
	$(UV) run pytest

bench: setup
	$(UV) run python bench/run.py
