#!/bin/sh
# Build the host and first-party plugin wheels and the locked list of their
# third-party dependencies (with hashes) into OUT. Used by the Dockerfile and
# by tests/host/test_container.py, which installs the result in a fresh venv.
set -eu
OUT=${1:?usage: deploy/build-wheels.sh OUT_DIR}
UV=${UV:-uv}
mkdir -p "$OUT"
$UV build --wheel --all-packages --out-dir "$OUT"
$UV export --quiet --frozen --no-dev --all-packages --no-emit-workspace \
    --format requirements-txt --output-file "$OUT/requirements.txt"
