"""Secrets the host makes for itself on first start (admin key, node key)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def read_or_create_secret(path: Path, make: Callable[[], str]) -> tuple[str, bool]:
    """The secret in `path`, or a new one from `make()` stored there (0600).
    Returns (secret, created_now). Processes starting together on one data
    folder agree on one value: the new file is written in full under a
    temporary name and linked into place, which fails for all but the first."""
    if path.exists():
        return path.read_text().strip(), False
    private_dir(path.parent)
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


def private_dir(path: Path, tighten: bool = True) -> None:
    """Create `path` (and missing parents) readable by this user only (0700);
    with `tighten`, an existing folder loses its group and other bits too."""
    if not path.exists():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    elif tighten and path.stat().st_mode & 0o077:
        os.chmod(path, path.stat().st_mode & 0o700)


def private_sqlite(path: Path) -> None:
    """The SQLite database file, created 0600 before SQLite opens it, and any
    existing one (and its -wal, -shm, -journal) made 0600. SQLite gives the
    files it creates beside a database the database file's mode."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    for file in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
        if file.exists() and file.stat().st_mode & 0o077:
            os.chmod(file, 0o600)
