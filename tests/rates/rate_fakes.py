"""Local fake price providers on loopback: tests never reach the internet.

One HTTP server answers every fake provider on its own path; each path's
behaviour can be changed while the test runs: a price in a given JSON shape,
slow, down (HTTP 500 or a closed port), garbage, or a wrong price.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fulmen.testing import free_port


@dataclass
class Behaviour:
    body: bytes = b"{}"
    status: int = 200
    delay: float = 0.0
    content_type: str = "application/json"


class FakeProviders:
    def __init__(self) -> None:
        self.routes: dict[str, Behaviour] = {}
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        fakes = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                path = self.path.split("?", 1)[0]
                with fakes.lock:
                    fakes.hits[path] = fakes.hits.get(path, 0) + 1
                    behaviour = fakes.routes.get(path)
                if behaviour is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                if behaviour.delay:
                    time.sleep(behaviour.delay)
                try:
                    self.send_response(behaviour.status)
                    self.send_header("Content-Type", behaviour.content_type)
                    self.send_header("Content-Length", str(len(behaviour.body)))
                    self.end_headers()
                    self.wfile.write(behaviour.body)
                except OSError:  # the client gave up (the slow provider)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeProviders:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # --- behaviours ----------------------------------------------------------------

    def price(self, path: str, value: Any, delay: float = 0.0) -> None:
        """Answer `{"data": {"rates": {"USD": value, ...}}}` (the coinbase shape)."""
        rates = {"USD": str(value), "EUR": str(value)}
        self.json(path, {"data": {"currency": "BTC", "rates": rates}}, delay=delay)

    def json(self, path: str, document: Any, delay: float = 0.0) -> None:
        self.routes[path] = Behaviour(json.dumps(document).encode(), delay=delay)

    def raw(self, path: str, body: bytes, status: int = 200,
            content_type: str = "text/html") -> None:
        self.routes[path] = Behaviour(body, status=status, content_type=content_type)

    def down(self, path: str) -> None:
        self.routes[path] = Behaviour(b'{"error": "maintenance"}', status=500)

    def provider(self, name: str, path: str,
                 json_path: str = "data.rates.{CURRENCY}") -> dict[str, Any]:
        """A FULMEN_RATES_CUSTOM_PROVIDERS entry for one of the paths."""
        return {"name": name, "url": self.url(path), "path": json_path}


def closed_port_url() -> str:
    """A loopback URL nothing listens on (connection refused)."""
    return f"http://127.0.0.1:{free_port()}/down"


def settings_for(providers: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    """Host settings that use only these providers."""
    return {"rates_providers": "", "rates_custom_providers": json.dumps(providers), **more}
