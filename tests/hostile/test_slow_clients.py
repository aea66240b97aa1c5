"""`fulmen serve` closes a connection whose request headers are not complete
within FULMEN_HEADER_TIMEOUT (slowloris), and still serves normal clients."""

import socket
import time

import httpx
from fulmen.testing import ServerProcess


def test_slow_headers_are_cut_off(tmp_path) -> None:
    server = ServerProcess({"FULMEN_DATA_DIR": str(tmp_path / "data"),
                            "FULMEN_HEADER_TIMEOUT": "2"}, log_path=tmp_path / "log").start()
    try:
        slow = []
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            s.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\n")  # headers never finished
            slow.append(s)
        idle = socket.create_connection(("127.0.0.1", server.port), timeout=10)  # sends nothing
        started = time.monotonic()
        for s in [*slow, idle]:
            assert s.recv(100) == b""  # closed by the server
        assert time.monotonic() - started < 8
        assert httpx.get(server.url + "/ready", timeout=10).status_code == 200
    finally:
        server.stop()
