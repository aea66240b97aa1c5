"""Vault (HashiCorp Vault, OpenBao) as a source of credentials.

With `FULMEN_VAULT_ADDRESS` set, the host reads one KV v2 secret
(`FULMEN_VAULT_MOUNT`, `FULMEN_VAULT_PATH`) through `hvac` and uses its
entries as settings: an entry named like a setting's environment variable,
with or without the `FULMEN_` prefix and in any case (`LND_MACAROON`,
`fulmen_cln_rune`, `ADMIN_KEY`, `DATABASE_URL`), gives that setting's value.
Vault wins over the environment and `.env` for the settings it holds;
everything else is read as without Vault. Without `FULMEN_VAULT_ADDRESS`
nothing changes.

The secret is kept in memory only (never written to disk, never logged).
It is read at start (Vault unreachable then: the host does not start, and
says why), again when a node refuses a credential (the funding source is
rebuilt with the new one: see `fulmen.funding.vault_renew`), and by
`/ready`. When Vault cannot be reached later, the cached values keep
serving, a warning is logged and `/ready` answers "degraded".
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

log = logging.getLogger("fulmen.vault")


class VaultSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FULMEN_VAULT_", env_file=".env", extra="ignore", populate_by_name=True
    )

    #: e.g. https://vault.example:8200; empty: Vault is not used
    address: str = Field(
        default="", validation_alias=AliasChoices("FULMEN_VAULT_ADDRESS", "FULMEN_VAULT_ADDR")
    )
    #: token auth: the token, or a file holding it
    token: SecretStr = SecretStr("")
    token_file: Path | None = None
    #: AppRole auth (used when no token is given)
    role_id: str = ""
    secret_id: SecretStr = SecretStr("")
    secret_id_file: Path | None = None
    approle_mount: str = "approle"
    #: the KV v2 engine's mount and the secret's path in it
    mount: str = "secret"
    path: str = "fulmen"
    #: CA bundle that signed Vault's certificate (default: the system's)
    ca_cert: Path | None = None
    namespace: str = ""
    timeout: float = 5.0


class VaultUnavailable(Exception):
    """Vault could not be read and there is no earlier copy to use."""


def normalise(name: str) -> str:
    return name.strip().upper().removeprefix("FULMEN_")


def _read_file(path: Path, what: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise VaultUnavailable(f"cannot read {what} from {path}: {exc.strerror}") from None


class VaultStore:
    """One KV v2 secret, cached in memory."""

    def __init__(self, settings: VaultSettings) -> None:
        self.settings = settings
        self._values: dict[str, str] | None = None
        self._client: Any = None
        self._lock = threading.Lock()
        #: why the last read failed (None: it worked); shown by /ready
        self.error: str | None = None
        self.read_at: float | None = None

    @property
    def where(self) -> str:
        s = self.settings
        return f"{s.address} ({s.mount}/{s.path})"

    def _login(self) -> Any:
        import hvac

        s = self.settings
        verify: bool | str = str(s.ca_cert) if s.ca_cert else True
        client = hvac.Client(url=s.address, verify=verify, timeout=s.timeout,
                             namespace=s.namespace or None)
        token = s.token.get_secret_value().strip()
        if not token and s.token_file:
            token = _read_file(s.token_file, "FULMEN_VAULT_TOKEN_FILE")
        if token:
            client.token = token
            return client
        secret_id = s.secret_id.get_secret_value().strip()
        if not secret_id and s.secret_id_file:
            secret_id = _read_file(s.secret_id_file, "FULMEN_VAULT_SECRET_ID_FILE")
        if not (s.role_id and secret_id):
            raise VaultUnavailable(
                "FULMEN_VAULT_ADDRESS is set but no credential for it: set FULMEN_VAULT_TOKEN "
                "(or _TOKEN_FILE), or FULMEN_VAULT_ROLE_ID and FULMEN_VAULT_SECRET_ID (AppRole)"
            )
        client.auth.approle.login(role_id=s.role_id, secret_id=secret_id,
                                  mount_point=s.approle_mount)
        return client

    def _fetch(self) -> dict[str, str]:
        import hvac.exceptions

        for attempt in (1, 2):
            if self._client is None:
                self._client = self._login()
            try:
                answer = self._client.secrets.kv.v2.read_secret_version(
                    path=self.settings.path, mount_point=self.settings.mount,
                    raise_on_deleted_version=True,
                )
                break
            except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized):
                # an AppRole token may have expired: log in again, once
                self._client = None
                if attempt == 2:
                    raise
        data = answer.get("data", {}).get("data") or {}
        return {normalise(k): str(v) for k, v in data.items() if v is not None}

    def read(self, force: bool = False) -> dict[str, str]:
        """The secret's entries (names normalised). Cached; `force` reads Vault again.
        Vault unreachable: the cached copy with a warning, or VaultUnavailable."""
        with self._lock:
            if self._values is not None and not force:
                return self._values
            try:
                values = self._fetch()
            except VaultUnavailable as exc:
                self.error = str(exc)
                if self._values is None:
                    raise
            except Exception as exc:  # noqa: BLE001 - connection, TLS, HTTP and auth errors
                self._client = None
                # the exception names the URL and the HTTP error, never a secret
                reason = f"{type(exc).__name__}: {exc}"[:300]
                self.error = f"Vault at {self.where} could not be read: {reason}"
                if self._values is None:
                    raise VaultUnavailable(
                        f"{self.error}. Start Vault or fix FULMEN_VAULT_* (docs/funding-sources.md)"
                    ) from None
                log.warning("%s; using the credentials read at %s", self.error,
                            time.strftime("%H:%M:%S", time.gmtime(self.read_at or 0)))
            else:
                if self._values is not None and values != self._values:
                    log.info("Vault: the secret at %s changed (new values in use)", self.where)
                self._values, self.error, self.read_at = values, None, time.time()
            return self._values or {}


_store: VaultStore | None = None
_store_lock = threading.Lock()


def vault_store() -> VaultStore | None:
    """The process's store, or None when FULMEN_VAULT_ADDRESS is not set."""
    global _store
    with _store_lock:
        if _store is None:
            settings = VaultSettings()
            if not settings.address:
                return None
            _store = VaultStore(settings)
        return _store


def reset_vault_store() -> None:
    """Forget the store (its settings are read again): for tests."""
    global _store
    with _store_lock:
        _store = None


class VaultSettingsSource(PydanticBaseSettingsSource):
    """Settings values from the Vault secret, for a settings class with an env prefix."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything is done in __call__

    def __call__(self) -> dict[str, Any]:
        store = vault_store()
        if store is None:
            return {}
        values = store.read()
        prefix = normalise(str(self.settings_cls.model_config.get("env_prefix") or ""))
        found: dict[str, Any] = {}
        for name in self.settings_cls.model_fields:
            key = prefix + name.upper()
            if key in values:
                found[name] = values[key]
        return found


def vault_sources(
    settings_cls: type[BaseSettings],
    init_settings: PydanticBaseSettingsSource,
    env_settings: PydanticBaseSettingsSource,
    dotenv_settings: PydanticBaseSettingsSource,
    file_secret_settings: PydanticBaseSettingsSource,
) -> tuple[PydanticBaseSettingsSource, ...]:
    """For `settings_customise_sources`: arguments, then Vault, then the usual."""
    return (init_settings, VaultSettingsSource(settings_cls), env_settings, dotenv_settings,
            file_secret_settings)


class VaultBackedSettings(BaseSettings):
    """Settings that Vault may provide (when FULMEN_VAULT_ADDRESS is set)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return vault_sources(settings_cls, init_settings, env_settings, dotenv_settings,
                             file_secret_settings)


#: at most one re-read of Vault per this many seconds for a refused admin key
ADMIN_REREAD_INTERVAL = 10.0
_admin_reread_at = 0.0


def rotated_admin_key(current: str) -> str | None:
    """When an admin credential is refused and the admin key comes from Vault:
    read Vault again (at most every ADMIN_REREAD_INTERVAL seconds, so bad
    tokens cannot flood it) and return its ADMIN_KEY if it changed."""
    global _admin_reread_at
    store = vault_store()
    if store is None or "ADMIN_KEY" not in store.read():
        return None
    now = time.monotonic()
    if now - _admin_reread_at < ADMIN_REREAD_INTERVAL:
        return None
    _admin_reread_at = now
    key = store.read(force=True).get("ADMIN_KEY")
    return key if key and key != current else None
