"""Fixtures for the event and webhook tests (helpers live in event_helpers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from event_helpers import Receiver, serve


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver on a loopback port; `receiver.url` is its hook URL."""
    r = Receiver()
    async with serve(r) as url:
        r.url = url + "/hook"
        yield r
