"""Outbound HTTP with the safety rules every caller needs.

LNURL fetches, webhooks and rate providers all go through `SafeHttp`:
- a timeout on every request and a cap on the response size;
- https only, except `.onion` hosts and hosts listed in
  FULMEN_ALLOW_INSECURE_HTTP_HOSTS;
- no private, loopback, link-local or otherwise internal addresses unless
  FULMEN_ALLOW_PRIVATE_ADDRESSES is set. The host name is resolved first and
  every address it resolves to is checked, so a public name that points at
  127.0.0.1 is refused too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from typing import Any
from urllib.parse import urlparse

import httpx

from .errors import BadRequest


class UnsafeURL(BadRequest):
    """The URL breaks an outbound rule; nothing was sent."""


class FetchFailed(BadRequest):
    """The remote did not answer usefully (timeout, too large, not JSON...)."""


def is_internal(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


class SafeHttp:
    def __init__(
        self,
        timeout: float = 10.0,
        max_bytes: int = 1_000_000,
        allow_private: bool = False,
        insecure_hosts: set[str] | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.allow_private = allow_private
        self.insecure_hosts = {h.lower() for h in insecure_hosts or set()}
        self.client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    @classmethod
    def from_settings(cls, settings: Any) -> SafeHttp:
        hosts = {h.strip() for h in settings.allow_insecure_http_hosts.split(",") if h.strip()}
        return cls(settings.http_timeout, settings.http_max_response_bytes,
                   settings.allow_private_addresses, hosts)

    async def close(self) -> None:
        await self.client.aclose()

    def check_url_now(self, url: str) -> None:
        """The checks that need no DNS: scheme, and the address when the URL
        gives one. For URLs stored now and called later (webhooks); the call
        itself checks again, names included."""
        parsed = urlparse(url)
        host = (parsed.hostname or "").lower()
        if not host:
            raise UnsafeURL(f"URL {url!r} has no host")
        onion = host.endswith(".onion")
        if parsed.scheme == "http":
            if not (onion or host in self.insecure_hosts or self._loopback_allowed(host)):
                raise UnsafeURL(f"URL {url!r} must use https")
        elif parsed.scheme != "https":
            raise UnsafeURL(f"URL {url!r} must be https")
        if onion or self.allow_private:
            return
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return
        if is_internal(str(address)):
            raise UnsafeURL(f"URL {url!r} points at an internal address ({address})")

    async def check_url(self, url: str) -> str | None:
        """Refuse URLs that break the rules. Returns the checked address to
        connect to when the host is a name that had to be resolved, so a DNS
        answer that changes after the check cannot redirect the request."""
        self.check_url_now(url)
        parsed = urlparse(url)
        host = (parsed.hostname or "").lower()
        if host.endswith(".onion") or self.allow_private:
            return None
        addresses = await self._resolve(host, parsed.port or (443 if parsed.scheme == "https" else 80))
        for address in addresses:
            if is_internal(address):
                raise UnsafeURL(f"URL {url!r} points at an internal address ({address})")
        return None if addresses == [host] else addresses[0]

    def _loopback_allowed(self, host: str) -> bool:
        """With private addresses allowed (tests, local set-ups), plain http to
        loopback is allowed too."""
        return self.allow_private and host in ("localhost", "127.0.0.1", "::1")

    async def _resolve(self, host: str, port: int) -> list[str]:
        try:
            ipaddress.ip_address(host)
            return [host]
        except ValueError:
            pass
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), self.timeout)
        except (TimeoutError, OSError) as exc:
            raise FetchFailed(f"cannot resolve {host!r}: {exc}") from None
        return [str(info[4][0]) for info in infos]

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send a request after checking the URL; reads at most max_bytes."""
        address = await self.check_url(url)
        target: Any = url
        if address is not None:
            # Connect to the address just checked; keep the name for Host and TLS.
            original = httpx.URL(url)
            target = original.copy_with(host=address)
            kwargs["headers"] = {**dict(kwargs.get("headers") or {}), "Host": original.netloc.decode()}
            kwargs["extensions"] = {**kwargs.get("extensions", {}), "sni_hostname": original.host}
        try:
            # One deadline for the whole exchange: a server dripping bytes
            # cannot hold the request open past it.
            async with asyncio.timeout(self.timeout):
                async with self.client.stream(method, target, **kwargs) as response:
                    chunks, size = [], 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise FetchFailed(
                                f"response from {url!r} is larger than {self.max_bytes} bytes")
                        chunks.append(chunk)
                    return httpx.Response(response.status_code, headers=response.headers,
                                          content=b"".join(chunks), request=response.request)
        except (httpx.TimeoutException, TimeoutError):
            raise FetchFailed(f"{url!r} did not answer within {self.timeout} s") from None
        except httpx.HTTPError as exc:
            raise FetchFailed(f"request to {url!r} failed: {exc}") from None

    async def get_json(self, url: str, **kwargs: Any) -> Any:
        response = await self.request("GET", url, **kwargs)
        try:
            return json.loads(response.content)
        except ValueError:
            raise FetchFailed(f"{url!r} did not answer with JSON (HTTP {response.status_code})") from None
