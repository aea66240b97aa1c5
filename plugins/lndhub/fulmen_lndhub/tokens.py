"""Access and refresh tokens.

A login (`admin` or `invoice` with that wallet key as password) gets a pair
of random tokens. They are not the key: only their sha256 is stored, with
the wallet, what the login may do, when the token expires and the host's
digest of the key it came from, so rotating the wallet's keys or deleting the
wallet ends every token issued from it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from fulmen import PluginHost, Unauthorized, WalletAuth, now_ms, query, transaction

from .errors import bad_arguments, bad_auth

ACCESS_TTL = 2 * 3600  # seconds; BlueWallet refreshes every 2 hours
REFRESH_TTL = 7 * 24 * 3600
LOGINS = ("admin", "invoice")


@dataclass(frozen=True)
class Session:
    """Who a bearer token speaks for."""

    wallet_id: str
    account_id: str
    login: str  # admin | invoice

    @property
    def can_pay(self) -> bool:
        return self.login == "admin"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _issue(host: PluginHost, login: str, wallet_id: str, key_digest: str) -> dict[str, object]:
    now = now_ms()
    access, refresh = secrets.token_hex(20), secrets.token_hex(20)
    async with transaction():
        # expired tokens go as new ones are issued: the table stays small
        await query("DELETE FROM lndhub_token WHERE expires_at < {}", now)
        for token, kind, ttl in ((access, "access", ACCESS_TTL), (refresh, "refresh", REFRESH_TTL)):
            await query(
                "INSERT INTO lndhub_token (token_hash, kind, login, wallet_id, key_digest, "
                "expires_at, created_at) VALUES ({}, {}, {}, {}, {}, {}, {})",
                digest(token), kind, login, wallet_id, key_digest, now + ttl * 1000, now,
            )
    now_s = now // 1000
    return {
        "refresh_token": refresh,
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ACCESS_TTL,
        "expires_at": now_s + ACCESS_TTL,
        "refresh_expires_in": REFRESH_TTL,
        "refresh_expires_at": now_s + REFRESH_TTL,
    }


def _login_allows(login: str, auth: WalletAuth) -> bool:
    if login == "admin":
        return auth.kind == "admin"
    return auth.kind in ("admin", "invoice")


async def login(host: PluginHost, login_name: object, password: object) -> dict[str, object]:
    if not isinstance(login_name, str) or not isinstance(password, str) or not password:
        raise bad_arguments("send login and password (strings)")
    if login_name not in LOGINS:
        raise bad_auth("bad auth: the login is 'admin' or 'invoice', the password that wallet key")
    try:
        auth = await host.wallets.authenticate_key(password)
    except Unauthorized:
        raise bad_auth() from None
    if not _login_allows(login_name, auth):
        raise bad_auth(f"bad auth: login '{login_name}' needs the wallet's {login_name} key")
    return await _issue(host, login_name, auth.wallet_id, host.wallets.key_digest(password))


async def _valid(token: str, kind: str) -> dict[str, object]:
    rows = await query(
        "SELECT * FROM lndhub_token WHERE token_hash = {} AND kind = {} AND expires_at > {}",
        digest(token), kind, now_ms(),
    )
    if not rows:
        raise bad_auth()
    return rows[0]


async def _still_allowed(host: PluginHost, row: dict[str, object]) -> WalletAuth:
    try:
        auth = await host.wallets.authenticate_key_digest(str(row["key_digest"]))
    except Unauthorized:
        raise bad_auth("bad auth: the wallet key was changed; log in again") from None
    if auth.wallet_id != row["wallet_id"] or not _login_allows(str(row["login"]), auth):
        raise bad_auth()
    return auth


async def refresh(host: PluginHost, refresh_token: object) -> dict[str, object]:
    if not isinstance(refresh_token, str) or not refresh_token:
        raise bad_arguments("send refresh_token")
    # a refresh token is used once: taking it is deleting it, so of two
    # concurrent refreshes with the same token only one gets a new pair
    rows = await query(
        "DELETE FROM lndhub_token WHERE token_hash = {} AND kind = 'refresh' AND expires_at > {} "
        "RETURNING *",
        digest(refresh_token), now_ms(),
    )
    if not rows:
        raise bad_auth()
    row = rows[0]
    await _still_allowed(host, row)
    return await _issue(host, str(row["login"]), str(row["wallet_id"]), str(row["key_digest"]))


async def session(host: PluginHost, authorization: str | None) -> Session:
    """The session of an `Authorization: Bearer <access token>` header."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise bad_auth("bad auth: send Authorization: Bearer <access_token>")
    row = await _valid(token, "access")
    auth = await _still_allowed(host, row)
    return Session(wallet_id=auth.wallet_id, account_id=auth.account_id, login=str(row["login"]))
