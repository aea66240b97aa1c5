"""Publishing one event to one relay (NIP-01 `EVENT`, answered by `OK`).

The relay's address goes through the host's outbound rules (`host.http`):
private and loopback addresses are refused unless the operator allows
them, and the connection goes to the address that was checked.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from fulmen import BadRequest, PluginHost
from websockets.asyncio.client import connect

from .config import Config

#: answers of a relay that are worth trying again later (NIP-01 OK prefixes)
RETRYABLE_PREFIXES = ("rate-limited:", "error:")


@dataclass
class Outcome:
    #: ok | refused | pending (try again later) | skipped (never tried: refused by our rules)
    status: str
    message: str


def relay_rule_problem(url: str, config: Config) -> str | None:
    """Why this relay URL is not allowed by the plugin's own rules, or None."""
    parsed = urlparse(url)
    if parsed.scheme == "wss" or (parsed.scheme == "ws" and config.allow_plain_ws):
        return None if parsed.hostname else f"relay {url!r} has no host"
    if parsed.scheme == "ws":
        return f"relay {url!r} is plain ws://; only wss:// relays are allowed on this host"
    return f"relay {url!r} is not a ws:// or wss:// URL"


async def check_address(host: PluginHost, url: str) -> str | None:
    """The host's outbound rules for the relay's address (the scheme is
    checked by `relay_rule_problem`). Returns the checked address to connect
    to, or None to connect by name."""
    parsed = urlparse(url)
    as_http = "https://" + parsed.netloc + (parsed.path or "/")
    return await host.http.check_url(as_http)


async def publish(host: PluginHost, url: str, event: dict[str, Any], config: Config) -> Outcome:
    """Send `event` to the relay at `url` and wait for its `OK`."""
    problem = relay_rule_problem(url, config)
    if problem:
        return Outcome("skipped", problem)
    try:
        address = await check_address(host, url)
    except BadRequest as exc:
        return Outcome("skipped", str(exc.detail))
    parsed = urlparse(url)
    options: dict[str, Any] = {}
    if address is not None:
        options["host"] = address
        options["port"] = parsed.port or (443 if parsed.scheme == "wss" else 80)
        if parsed.scheme == "wss":
            options["server_hostname"] = parsed.hostname
    notices: list[str] = []
    try:
        async with asyncio.timeout(config.relay_timeout):
            async with connect(url, open_timeout=config.relay_timeout, close_timeout=2,
                               proxy=None, max_size=1_000_000, **options) as ws:
                await ws.send(json.dumps(["EVENT", event]))
                while True:
                    message = json.loads(await ws.recv())
                    if not isinstance(message, list) or not message:
                        continue
                    if message[0] == "NOTICE" and len(message) > 1:
                        notices.append(str(message[1])[:500])
                    elif message[0] == "OK" and len(message) > 2 and message[1] == event["id"]:
                        reason = str(message[3])[:500] if len(message) > 3 else ""
                        said = "".join(f"; NOTICE: {n}" for n in notices)
                        if message[2] is True or reason.startswith("duplicate:"):
                            return Outcome("ok", reason + said)
                        if reason.startswith(RETRYABLE_PREFIXES):
                            return Outcome("pending", f"OK false: {reason}{said}")
                        return Outcome("refused", f"OK false: {reason}{said}")
    except TimeoutError:
        detail = f"no OK within {config.relay_timeout} s"
    except (OSError, ValueError) as exc:  # refused connections, handshake and frame errors
        detail = f"{type(exc).__name__}: {exc}"[:500]
    except Exception as exc:  # noqa: BLE001 - websockets' own errors: try again later
        detail = f"{type(exc).__name__}: {exc}"[:500]
    if notices:
        detail += "; NOTICE: " + " | ".join(notices)
    return Outcome("pending", detail)
