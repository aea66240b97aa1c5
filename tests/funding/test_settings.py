"""Choosing a backend by name, and clear errors for missing credentials."""

from __future__ import annotations

import os

import pytest
from fulmen.funding import FundingError, make_funding_source
from fulmen.settings import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in list(os.environ):
        if name.startswith(("FULMEN_LND_", "FULMEN_CLN_", "FULMEN_ECLAIR_", "FULMEN_LNBITS_")):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("source", "needs"),
    [
        ("lnd", "FULMEN_LND_MACAROON"),
        ("cln", "FULMEN_CLN_RUNE"),
        ("eclair", "FULMEN_ECLAIR_PASSWORD"),
        ("lnbits", "FULMEN_LNBITS_ADMIN_KEY"),
    ],
)
def test_missing_credentials_are_named(monkeypatch, source, needs):
    monkeypatch.setenv("FULMEN_FUNDING_SOURCE", source)
    with pytest.raises(FundingError, match=needs):
        make_funding_source(Settings())


def test_missing_credential_file_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("FULMEN_FUNDING_SOURCE", "lnd")
    monkeypatch.setenv("FULMEN_LND_MACAROON_FILE", str(tmp_path / "nope.macaroon"))
    with pytest.raises(FundingError, match="cannot read macaroon file"):
        make_funding_source(Settings())


def test_bad_pinned_certificate_is_a_clear_error(monkeypatch, tmp_path):
    bad = tmp_path / "tls.cert"
    bad.write_text("not a certificate")
    monkeypatch.setenv("FULMEN_FUNDING_SOURCE", "lnd")
    monkeypatch.setenv("FULMEN_LND_MACAROON", "ab" * 20)
    monkeypatch.setenv("FULMEN_LND_CERT_FILE", str(bad))
    with pytest.raises(FundingError, match="not a PEM certificate"):
        make_funding_source(Settings())


def test_cln_socket_needs_no_rune(monkeypatch, tmp_path):
    monkeypatch.setenv("FULMEN_FUNDING_SOURCE", "cln")
    monkeypatch.setenv("FULMEN_CLN_RPC_SOCKET", str(tmp_path / "lightning-rpc"))
    fs = make_funding_source(Settings())
    assert fs.rpc_socket == tmp_path / "lightning-rpc"
