"""uvicorn's HTTP protocol with a header read timeout and a gentle drain.

uvicorn (kept: the host and its tests already run on it, with uvloop and
httptools) closes idle keep-alive connections (`--timeout-keep-alive`) but
waits forever for a request's headers, so a client that sends them a byte
at a time holds a connection open as long as it likes (slowloris). This
protocol closes a connection whose request headers are not complete within
`FULMEN_HEADER_TIMEOUT` seconds of its first byte (or of the connection)."""

from __future__ import annotations

import asyncio
import os

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT = float(os.environ.get("FULMEN_HEADER_TIMEOUT", "10") or 10)


#: seconds an idle keep-alive connection stays open once the server drains: a
#: client may be sending its next request on it right now; that one is answered
#: (with `Connection: close`) instead of finding the connection closed under it.
DRAIN_GRACE = 1.0


class HeaderTimeoutProtocol(HttpToolsProtocol):
    _header_timer: asyncio.TimerHandle | None = None
    _draining = False

    def shutdown(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self._draining = True
            self.loop.call_later(DRAIN_GRACE, self._close_if_idle)
        else:
            self.cycle.keep_alive = False

    def _close_if_idle(self) -> None:
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        if self._draining and self.cycle is not None:
            self.cycle.keep_alive = False

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if HEADER_TIMEOUT > 0:
            self._header_timer = self.loop.call_later(HEADER_TIMEOUT, self._expire)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expire(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()
