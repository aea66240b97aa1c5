"""Checks for request-body fields that several plugins take (LNbits's link
bodies): optional text, JSON given as a string or as JSON (including
webhook headers that must not reframe the request the host sends), and a
URL the host will call later.

Each raises `BadRequest` naming the field, so a plugin's API answers 400
with a message the client can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .contract import Http

import json
import re
from typing import TYPE_CHECKING, Any

from .errors import BadRequest

if TYPE_CHECKING:
    from .net import SafeHttp

#: Headers a webhook's own headers may not set: the request's framing and target.
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection",
                              "te", "upgrade", "keep-alive"})
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,100}$")
MAX_JSON = 10_000


def text_field(data: dict[str, Any], name: str, limit: int) -> str | None:
    """`data[name]`: a string of at most `limit` characters, or None when
    missing or empty."""
    value = data.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    if len(value) > limit:
        raise BadRequest(f"{name} is longer than {limit} characters")
    return value


def json_field(data: dict[str, Any], name: str, headers: bool = False) -> str | None:
    """`data[name]`: a JSON document given as a string (as LNbits takes it) or
    as JSON, returned as its text; None when missing or empty. With
    `headers`, it must be an object of HTTP header names to string values
    that cannot change the request's framing or target."""
    value = data.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        value = json.dumps(value)
    if len(value) > MAX_JSON:
        raise BadRequest(f"{name} is longer than {MAX_JSON} characters")
    try:
        parsed = json.loads(value)
    except ValueError:
        raise BadRequest(f"{name} must be a JSON document") from None
    if headers:
        if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
            raise BadRequest(f"{name} must be a JSON object of header names to string values")
        for key, val in parsed.items():
            if not HEADER_NAME.match(key) or key.lower() in RESERVED_HEADERS:
                raise BadRequest(f"{name}: {key!r} cannot be set (a header name other than "
                                 f"{', '.join(sorted(RESERVED_HEADERS))})")
            if "\r" in val or "\n" in val or "\0" in val:
                raise BadRequest(f"{name}: the value of {key!r} holds a line break")
    return value


def outbound_url_field(http: SafeHttp | Http, url: str | None, name: str) -> None:
    """Refuse, when it is saved, a URL that `http` (the host's outbound HTTP,
    `host.http`) would refuse when calling it, instead of storing a webhook
    that never arrives. A host name is resolved and checked again on each call."""
    if url:
        try:
            http.check_url_now(url)
        except BadRequest as exc:
            raise BadRequest(f"{name}: {exc.detail}") from None


async def checked_outbound_url(http: SafeHttp | Http, url: str | None, name: str) -> None:
    """`outbound_url_field` with the checks of sending itself: the host name
    normalised as the HTTP client will send it (so `①②⑦.0.0.1` is 127.0.0.1)
    and resolved, and every address it resolves to checked. A `.onion` host is
    refused: the host has no Tor proxy to reach it. Refused with a 400 naming
    the field. A name that does not resolve (yet) is accepted: sending
    resolves and checks it again."""
    if not url:
        return
    import unicodedata
    from urllib.parse import urlparse

    host = (urlparse(url).hostname or "").lower()
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise BadRequest(f"{name}: the host name is not valid") from None
    normalised = url.replace(urlparse(url).hostname or "", host, 1) if host else url
    if unicodedata.normalize("NFKC", host).endswith(".onion"):
        raise BadRequest(f"{name}: .onion hosts cannot be reached from this server")
    from .net import FetchFailed

    try:
        await http.check_url(normalised)
    except FetchFailed:
        pass  # the name does not resolve now: harmless, and checked again on each call
    except BadRequest as exc:  # UnsafeURL
        raise BadRequest(f"{name}: {exc.detail}") from None
