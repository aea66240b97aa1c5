"""The public base URL put into LNURLs and links.

With `FULMEN_BASE_URL` set, that is the base URL, whatever the request says.
Without it, the URL is built from the request's `Host` header, which the
client chooses: `FULMEN_ALLOWED_HOSTS` (enforced by Litestar's allowed-hosts
check, 400 for any other host) then limits it to names the operator owns.
A `Host` that is not a host name or address with a valid port is refused
with a 400 in every case."""

from __future__ import annotations

import ipaddress
import re

from litestar import Request

from .errors import BadRequest

_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_-]{1,63})*\.?$")


def valid_host_header(value: str) -> bool:
    """`name`, `name:port`, `1.2.3.4:port` or `[v6]:port`, port 1-65535."""
    host, port = value, ""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return False
        host, rest = value[1:end], value[end + 1:]
        if rest and not rest.startswith(":"):
            return False
        port = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
    else:
        if value.count(":") > 1:
            return False
        if ":" in value:
            host, port = value.split(":")
        if not _NAME.match(host):
            return False
    if port or value.endswith(":"):
        return port.isdigit() and 0 < int(port) < 65536
    return True


def request_base_url(request: Request) -> str:
    host_header = request.headers.get("host", "")
    if not valid_host_header(host_header):
        raise BadRequest("the Host header is not a valid host name and port")
    return str(request.base_url).rstrip("/")
