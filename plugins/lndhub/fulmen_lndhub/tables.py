"""Tables of the lndhub plugin (the schema is created by `migrations/`)."""

from __future__ import annotations

from piccolo.columns import BigInt, Varchar
from piccolo.table import Table


class LndhubToken(Table, tablename="lndhub_token"):
    """An access or refresh token, stored as the sha256 of the token."""

    token_hash = Varchar(length=64, primary_key=True)
    #: access | refresh
    kind = Varchar(length=8)
    #: admin | invoice: what the token may do
    login = Varchar(length=8)
    wallet_id = Varchar(length=32)
    #: the host's digest of the wallet key it was issued from: rotating the
    #: key ends the token
    key_digest = Varchar(length=64)
    #: Unix ms
    expires_at = BigInt(index=True)
    created_at = BigInt()
