"""Review: SafeHttp's outbound rules (fulmen/net.py)."""

import asyncio
import socket
import time

import pytest
from fulmen.net import FetchFailed, SafeHttp, UnsafeURL, is_internal


class SlowServer:
    """A loopback HTTP server; records whether it was reached. With `drip`, it
    sends its body one byte at a time, `drip` seconds apart."""

    def __init__(self, drip: float = 0.0, body_bytes: int = 0) -> None:
        self.drip, self.body_bytes, self.hits, self.server = drip, body_bytes, 0, None

    async def handle(self, reader, writer):
        self.hits += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n" % max(self.body_bytes, 2)
        )
        if not self.body_bytes:
            writer.write(b"{}")
        await writer.drain()
        try:
            for _ in range(self.body_bytes):
                await asyncio.sleep(self.drip)
                writer.write(b" ")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        writer.close()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()


async def test_review_dns_answer_that_changes_after_the_check_does_not_reach_loopback(monkeypatch):
    """A hostile name answers with a public address for the check and with
    127.0.0.1 for the connection (short TTL). The request must not land on loopback."""
    real = socket.getaddrinfo
    answers = []

    def rebinding(host, port, *args, **kwargs):
        if (host.decode() if isinstance(host, bytes) else host) == "rebind.example":
            ip = "93.184.216.34" if not answers else "127.0.0.1"
            answers.append(ip)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    http = SafeHttp(timeout=3, allow_private=False, insecure_hosts={"rebind.example"})
    async with SlowServer() as server:
        try:
            await http.request("GET", f"http://rebind.example:{server.port}/")
        except (UnsafeURL, FetchFailed):
            pass
        finally:
            await http.close()
        assert server.hits == 0, f"reached loopback after answers {answers}"


async def test_review_slow_drip_response_is_cut_off_by_the_timeout():
    http = SafeHttp(timeout=0.5, allow_private=True)
    async with SlowServer(drip=0.2, body_bytes=20) as server:  # 4 s in total, never 0.5 s idle
        started = time.monotonic()
        try:
            await http.request("GET", f"http://127.0.0.1:{server.port}/")
        except FetchFailed:
            pass
        finally:
            await http.close()
        assert time.monotonic() - started < 1.5


# --- properties verified to hold --------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/",
        "https://127.1/",
        "https://2130706433/",
        "https://0x7f000001/",
        "https://0177.0.0.1/",
        "https://localhost/",
        "https://localhost./",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://0.0.0.0/",
        "https://10.0.0.1/",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00::1]/",
        "https://[fe80::1]/",
        "https://100.64.0.1/",
        "https://224.0.0.1/",
    ],
)
async def test_review_internal_addresses_in_any_spelling_are_refused(url):
    http = SafeHttp(allow_private=False)
    try:
        # FetchFailed: the name does not resolve here; nothing is sent either way
        with pytest.raises((UnsafeURL, FetchFailed)):
            await http.check_url(url)
    finally:
        await http.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/",
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://127.0.0.1/",
        "https:///nohost",
    ],
)
async def test_review_non_https_schemes_are_refused(url):
    http = SafeHttp(allow_private=False)
    try:
        with pytest.raises(UnsafeURL):
            await http.check_url(url)
    finally:
        await http.close()


def test_review_ipv4_mapped_and_public_addresses_are_classified():
    assert is_internal("::ffff:10.1.2.3") and is_internal("::ffff:7f00:1")
    assert not is_internal("93.184.216.34") and not is_internal("2606:4700::1111")


async def test_review_redirects_are_not_followed():
    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/\r\ncontent-length: 0\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    http = SafeHttp(timeout=2, allow_private=True)
    try:
        r = await http.request("GET", f"http://127.0.0.1:{port}/")
        assert r.status_code == 302
    finally:
        await http.close()
        server.close()


async def test_review_response_size_cap_holds():
    http = SafeHttp(timeout=5, max_bytes=10, allow_private=True)
    async with SlowServer(drip=0, body_bytes=100) as server:
        try:
            with pytest.raises(FetchFailed, match="larger than"):
                await http.request("GET", f"http://127.0.0.1:{server.port}/")
        finally:
            await http.close()
