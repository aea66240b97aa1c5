#!/bin/sh
# Install what build-wheels.sh made into the virtualenv VENV (created if
# missing): the locked third-party packages, hash-checked, then the wheels.
set -eu
WHEELS=${1:?usage: deploy/install-wheels.sh WHEELS_DIR VENV}
VENV=${2:?usage: deploy/install-wheels.sh WHEELS_DIR VENV}
UV=${UV:-uv}
[ -x "$VENV/bin/python" ] || $UV venv --quiet "$VENV"
$UV pip install --quiet --python "$VENV/bin/python" --require-hashes -r "$WHEELS/requirements.txt"
$UV pip install --quiet --python "$VENV/bin/python" --no-deps "$WHEELS"/*.whl
