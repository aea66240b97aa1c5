"""Secrets the host makes for itself on first start (admin key, node key)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def read_or_create_secret(path: Path, make: Callable[[], str]) -> tuple[str, bool]:
    """The secret in `path`, or a new one from `make()` stored there (0600).
    Returns (secret, created_now). Processes starting together on one data
    folder agree on one value: the new file is written in full under a
    temporary name and linked into place, which fails for all but the first."""
    if path.exists():
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(value)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path.read_text().strip(), False
    finally:
        os.unlink(tmp)
    return value, True
