from __future__ import annotations

from pathlib import Path

import pytest

from .common import make_cert


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    d = tmp_path_factory.mktemp("certs")
    return {"node": make_cert(d, "node"), "other": make_cert(d, "other")}
