"""The plugin's settings (environment variables) and the server's Nostr key."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from coincurve import PrivateKey
from fulmen import PluginHost, read_or_create_secret

HEX_KEY = re.compile(r"^[0-9a-fA-F]{64}$")
KEY_FILE_NAME = "nostrzaps_key"


@dataclass(frozen=True)
class Config:
    #: hex private key given directly (FULMEN_NOSTRZAPS_PRIVATE_KEY)
    private_key: str
    #: a file holding the hex private key (FULMEN_NOSTRZAPS_KEY_FILE)
    key_file: str
    #: relays the API suggests to clients (FULMEN_NOSTRZAPS_RELAYS, comma-separated)
    relays: tuple[str, ...]
    #: at most this many relays of a zap request get the receipt
    max_relays: int
    #: ws:// relays are allowed (FULMEN_NOSTRZAPS_ALLOW_PLAIN_WS); wss:// only otherwise
    allow_plain_ws: bool
    #: seconds to wait for a relay's answer
    relay_timeout: float

    @classmethod
    def from_env(cls) -> Config:
        env = os.environ
        relays = tuple(r.strip() for r in env.get("FULMEN_NOSTRZAPS_RELAYS", "").split(",")
                       if r.strip())
        return cls(
            private_key=env.get("FULMEN_NOSTRZAPS_PRIVATE_KEY", "").strip(),
            key_file=env.get("FULMEN_NOSTRZAPS_KEY_FILE", "").strip(),
            relays=relays,
            max_relays=max(1, int(env.get("FULMEN_NOSTRZAPS_MAX_RELAYS", "10"))),
            allow_plain_ws=env.get("FULMEN_NOSTRZAPS_ALLOW_PLAIN_WS", "").lower()
            in ("1", "true", "yes"),
            relay_timeout=float(env.get("FULMEN_NOSTRZAPS_RELAY_TIMEOUT", "10")),
        )


def parse_key(value: str, source: str) -> PrivateKey:
    if not HEX_KEY.match(value):
        raise ValueError(f"{source}: the Nostr private key must be 64 hex characters")
    return PrivateKey(bytes.fromhex(value))


def load_key(host: PluginHost, config: Config) -> PrivateKey:
    """The server's Nostr key: the setting, else the key file named by the
    setting, else `<data dir>/nostrzaps_key`, created (0600) on first start."""
    if config.private_key:
        return parse_key(config.private_key, "FULMEN_NOSTRZAPS_PRIVATE_KEY")
    if config.key_file:
        return parse_key(Path(config.key_file).read_text().strip(), config.key_file)
    path = Path(host.settings.data_dir) / KEY_FILE_NAME
    value, _ = read_or_create_secret(path, lambda: secrets.token_bytes(32).hex())
    return parse_key(value, str(path))


class State:
    """What the plugin keeps per running host (tests run several in one process)."""

    def __init__(self, host: PluginHost) -> None:
        self.config = Config.from_env()
        self.key = load_key(host, self.config)
        self.pubkey = self.key.public_key_xonly.format().hex()


_states: dict[int, State] = {}


def state(host: PluginHost) -> State:
    found = _states.get(id(host))
    if found is None:
        found = _states[id(host)] = State(host)
    return found


def forget(host: PluginHost) -> None:
    _states.pop(id(host), None)
