"""A request path with a line break cannot forge a log line."""

import logging
from types import SimpleNamespace

from fulmen.app import internal_error


def test_unhandled_error_logs_the_path_quoted(caplog) -> None:
    request = SimpleNamespace(method="GET", url=SimpleNamespace(
        path="/x\n2026-01-01 INFO fulmen forged line"))
    with caplog.at_level(logging.ERROR, logger="fulmen.app"):
        response = internal_error(request, RuntimeError("boom"))  # type: ignore[arg-type]
    assert response.status_code == 500
    message = caplog.records[-1].getMessage()
    assert "\n" not in message and "\\n2026-01-01" in message
