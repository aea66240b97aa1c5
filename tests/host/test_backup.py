"""Backups and restores: SQLite <-> PostgreSQL round trips while payments run,
plugins' objects after a restore, and every refusal leaving no data behind."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fulmen import backup as backups
from fulmen import db, hookimpl
from fulmen.host import Host
from fulmen.plugins import discover
from fulmen.settings import Settings
from fulmen.testing import ADMIN_KEY, Fulmen, fresh_postgres_database, plugin

PLUGINS = ["lnurlp", "withdraw", "tpos", "splitpayments"]
PASS = "correct horse battery staple"
pytestmark = pytest.mark.timeout(300)


def settings_for(tmp: Path, url: str) -> Settings:
    return Settings(data_dir=tmp / "data", database_url=url, admin_key=ADMIN_KEY,
                    allow_private_addresses=True, reconcile_interval=3600.0, db_pool_min_size=1)


async def restore_into(tmp: Path, url: str, path: Path, plugins: list[str] | None = None,
                       **options: Any) -> backups.RestoreReport:
    """Restore with a host that does not serve, as `fulmen restore` does."""
    host = Host(settings_for(tmp, url), plugins=discover(set(plugins if plugins is not None
                                                             else PLUGINS)))
    await db.open_engine(host.engine, 2, 1)
    try:
        return await backups.restore(host, path, **options)
    finally:
        await db.close_engine(host.engine)


async def data_rows(tmp: Path, url: str) -> dict[str, int]:
    """Row counts of the tables a restore fills (0 everywhere = nothing left behind)."""
    host = Host(settings_for(tmp, url), plugins=[])
    target = await backups.database_of(host).open()
    try:
        return {n: await target.count(n) for n in await target.table_names()
                if n not in backups.BOOKKEEPING_TABLES}
    finally:
        await target.close()


async def download(client: Any, path: Path, **body: Any) -> Path:
    r = await client.post("/admin/api/v1/backup", json=body,
                          headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/octet-stream")
    path.write_bytes(r.content)
    return path


async def populate(f: Fulmen) -> dict[str, Any]:
    """Wallets, payments and one object of every first-party plugin."""
    client = f.client
    alice = await f.wallet("alice", sats=5000)
    bob = await f.wallet("bob")
    carol = await f.wallet("carol")
    for sats in (100, 250, 40):
        inv = await f.invoice(bob, sats, memo=f"coffee {sats}")
        assert (await f.pay(alice, inv["bolt11"])).status_code == 201
    ext = await f.invoice(carol, 77, memo="from outside")
    assert (await f.settle_from_outside(ext["payment_hash"])).status_code == 200
    open_invoice = await f.invoice(carol, 12, memo="still open")
    r = await client.post("/lnurlp/api/v1/links", headers=alice.admin_headers,
                          json={"description": "Tips", "min": 1, "max": 1000, "username": "alice"})
    assert r.status_code == 201, r.text
    pay_link = r.json()
    r = await client.post("/withdraw/api/v1/links", headers=alice.admin_headers,
                          json={"title": "voucher", "min_withdrawable": 1, "max_withdrawable": 10,
                                "uses": 2})
    assert r.status_code == 201, r.text
    withdraw_link = r.json()
    r = await client.post("/tpos/api/v1/tposs", headers=bob.admin_headers, json={"name": "Bar"})
    assert r.status_code == 201, r.text
    tpos = r.json()
    r = await client.put("/splitpayments/api/v1/targets", headers=bob.admin_headers,
                         json={"targets": [{"wallet": carol.id, "alias": "carol", "percent": 10}]})
    assert r.status_code == 200, r.text
    r = await client.post("/api/v1/webhooks", headers=alice.admin_headers,
                          json={"url": "http://127.0.0.1:9/hook", "events": ["payment.received"]})
    assert r.status_code == 201, r.text
    await f.drain()
    return {"alice": alice, "bob": bob, "carol": carol, "pay_link": pay_link,
            "withdraw_link": withdraw_link, "tpos": tpos, "open_invoice": open_invoice}


async def snapshot_of(f: Fulmen, objs: dict[str, Any]) -> dict[str, Any]:
    """What the API says about the populated objects, for before/after comparison."""
    client, out = f.client, {}
    for name in ("alice", "bob", "carol"):
        w = objs[name]
        out[f"{name}.balance"] = await f.balance(w)
        r = await client.get("/api/v1/payments?limit=100", headers=w.read_headers)
        assert r.status_code == 200, r.text
        out[f"{name}.history"] = sorted((p["payment_hash"], p["amount"], p["status"], p["memo"])
                                        for p in r.json())
    alice, bob = objs["alice"], objs["bob"]
    r = await client.get(f"/lnurlp/api/v1/links/{objs['pay_link']['id']}",
                         headers=alice.invoice_headers)
    out["pay_link"] = {k: r.json()[k] for k in ("id", "username", "description", "min", "max")}
    r = await client.get(f"/withdraw/api/v1/links/{objs['withdraw_link']['id']}",
                         headers=alice.invoice_headers)
    out["withdraw_link"] = {k: r.json()[k] for k in ("id", "title", "uses", "max_withdrawable")}
    r = await client.get("/tpos/api/v1/tposs", headers=bob.invoice_headers)
    out["tpos"] = sorted((t["id"], t["name"]) for t in r.json())
    r = await client.get("/splitpayments/api/v1/targets", headers=bob.admin_headers)
    out["targets"] = sorted((t["wallet"], t["percent"]) for t in r.json())
    r = await client.get("/api/v1/webhooks", headers=alice.invoice_headers)
    out["webhooks"] = sorted((w["id"], w["url"]) for w in r.json())
    return out


@pytest.mark.postgres
@pytest.mark.parametrize("source_kind", ["sqlite", "postgres"])
async def test_move_between_databases_keeps_keys_balances_history_and_plugin_objects(
        tmp_path: Path, source_kind: str) -> None:
    async with fresh_postgres_database() as pg_url:
        sqlite_url = f"sqlite:///{tmp_path / 'fulmen.sqlite3'}"
        src_url, dst_url = (sqlite_url, pg_url) if source_kind == "sqlite" else (pg_url, sqlite_url)
        src = Fulmen(tmp_path / "src", src_url)
        (tmp_path / "src").mkdir()
        try:
            await src.start(plugins=PLUGINS)
            objs = await populate(src)
            before = await snapshot_of(src, objs)
            file = await download(src.client, tmp_path / "b.fulmen", passphrase=PASS)
        finally:
            await src.stop()
        assert file.read_bytes().startswith(backups.ENC_MAGIC)

        report = await restore_into(tmp_path / "dst", dst_url, file, passphrase=PASS)
        assert report.audit_mismatches == []
        assert report.tables["fulmen_payment"]["rows"] >= 8
        assert report.tables["lnurlp_pay_link"]["rows"] == 1
        assert "fulmen_plugin_state" in report.tables
        dst = Fulmen(tmp_path / "dst", dst_url)
        try:
            client = await dst.start(plugins=PLUGINS)
            assert await snapshot_of(dst, objs) == before
            alice, bob, carol = objs["alice"], objs["bob"], objs["carol"]
            # keys and the account token work; money still moves both ways
            inv = await dst.invoice(carol, 30, memo="after the move")
            assert (await dst.pay(alice, inv["bolt11"])).status_code == 201
            r = await client.get("/api/v1/wallets", headers={
                "Authorization": f"Bearer {alice.account_token}"})
            assert r.status_code == 200, r.text
            # the invoice left open before the backup can still be paid
            assert (await dst.pay(bob, objs["open_invoice"]["bolt11"])).status_code == 201
            # plugins: lightning address, LNURL-pay, a terminal invoice, the split on bob's income
            r = await client.get("/.well-known/lnurlp/alice")
            assert r.status_code == 200 and r.json()["tag"] == "payRequest", r.text
            r = await client.get(f"/lnurlp/api/v1/lnurl/cb/{objs['pay_link']['id']}?amount=5000")
            assert r.status_code == 200 and r.json()["pr"].startswith("lnbc"), r.text
            r = await client.post(f"/tpos/api/v1/tposs/{objs['tpos']['id']}/invoices",
                                  json={"amount": 50})
            assert r.status_code == 201, r.text
            assert (await dst.pay(alice, r.json()["payment_request"])).status_code == 201
            await dst.drain()
            assert await dst.balance(bob) == before["bob.balance"] - 12_000 + 45_000
            assert await dst.balance(carol) == before["carol.balance"] + 30_000 + 12_000 + 5_000
            r = await client.get(f"/withdraw/api/v1/lnurl/{objs['withdraw_link']['unique_hash']}")
            assert r.status_code == 200 and r.json()["tag"] == "withdrawRequest", r.text
            assert await dst.host.wallets.audit() == []
        finally:
            await dst.stop()


async def pay_forever(f: Fulmen, payer: Any, payee: Any, done: list[str],
                      stop: asyncio.Event) -> None:
    while not stop.is_set():
        inv = await f.invoice(payee, 1, memo="load")
        r = await f.pay(payer, inv["bolt11"])
        assert r.status_code == 201, r.text
        done.append(inv["payment_hash"])


@pytest.mark.postgres
async def test_backup_while_payments_run_is_consistent(tmp_path: Path, database: str) -> None:
    """Every payment committed before the snapshot is in the restore, and
    none after it is half there: the restored books are exact."""
    src = Fulmen(tmp_path / "src", database)
    (tmp_path / "src").mkdir()
    try:
        await src.start(plugins=PLUGINS)
        payers = [await src.wallet(f"payer{i}", sats=10_000) for i in range(3)]
        payee = await src.wallet("payee")
        stop, done = asyncio.Event(), []
        tasks = [asyncio.create_task(pay_forever(src, p, payee, done, stop)) for p in payers]
        while len(done) < 20:
            await asyncio.sleep(0.05)
        committed_before = list(done)
        file = tmp_path / "live.fulmen"
        summary = await backups.write_backup(src.host, file)
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*tasks)
        assert len(done) > len(committed_before)  # payments really ran around the backup
    finally:
        await src.stop()
    other = "postgres" if database.startswith("sqlite") else "sqlite"
    async with fresh_postgres_database() as pg_url:
        dst_url = pg_url if other == "postgres" else f"sqlite:///{tmp_path / 'dst.sqlite3'}"
        report = await restore_into(tmp_path / "dst", dst_url, file)
        assert report.audit_mismatches == []
        assert report.tables == summary.tables
        host = Host(settings_for(tmp_path / "dst", dst_url), plugins=[])
        await db.open_engine(host.engine, 2, 1)
        try:
            rows = await db.query("SELECT payment_hash, status, out FROM fulmen_payment "
                                  "WHERE memo = 'load'")
            paid = {r["payment_hash"] for r in rows if r["out"]}
            received = {r["payment_hash"] for r in rows if not r["out"] and r["status"] == "success"}
            assert set(committed_before) <= paid
            assert paid == received  # no payment half present
            ledger = await db.query("SELECT COUNT(*) AS n FROM fulmen_ledger WHERE payment_id IN "
                                    "(SELECT id FROM fulmen_payment WHERE memo = 'load')")
            assert int(ledger[0]["n"]) == 2 * len(paid)
        finally:
            await db.close_engine(host.engine)


# --- refusals: each leaves the target database without data -------------------------------


@pytest.fixture
async def small_backup(tmp_path: Path) -> Path:
    src = Fulmen(tmp_path / "src", f"sqlite:///{tmp_path / 'src.sqlite3'}")
    (tmp_path / "src").mkdir()
    try:
        await src.start(plugins=PLUGINS)
        await populate(src)
        return await download(src.client, tmp_path / "plain.fulmen")
    finally:
        await src.stop()


async def refused(tmp_path: Path, url: str, file: Path, message: str, **options: Any) -> None:
    with pytest.raises(backups.BackupError, match=message):
        await restore_into(tmp_path / "dst", url, file, **options)
    assert not any((await data_rows(tmp_path / "dst", url)).values())


async def test_refuses_damaged_files_wrong_passphrase_and_newer_format(
        tmp_path: Path, small_backup: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dst.sqlite3'}"
    data = small_backup.read_bytes()
    truncated = tmp_path / "truncated.fulmen"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    await refused(tmp_path, url, truncated, "truncated")
    corrupted = tmp_path / "corrupted.fulmen"
    middle = len(data) // 2
    corrupted.write_bytes(data[:middle] + bytes([data[middle] ^ 0x55]) + data[middle + 1:])
    await refused(tmp_path, url, corrupted, "corrupted")
    await refused(tmp_path, url, small_backup, "not encrypted", passphrase=PASS)

    # an encrypted copy: wrong passphrase, a flipped byte, a missing last chunk
    encrypted = tmp_path / "enc.fulmen"
    enc = backups.Encryptor(PASS)
    encrypted.write_bytes(enc.header + enc.feed(data) + enc.finish())
    await refused(tmp_path, url, encrypted, "wrong passphrase", passphrase="not it")
    await refused(tmp_path, url, encrypted, "encrypted: give its passphrase")
    blob = encrypted.read_bytes()
    flipped = tmp_path / "enc-flipped.fulmen"
    flipped.write_bytes(blob[:-20] + bytes([blob[-20] ^ 1]) + blob[-19:])
    await refused(tmp_path, url, flipped, "corrupted", passphrase=PASS)
    cut = tmp_path / "enc-cut.fulmen"
    cut.write_bytes(blob[:-10])
    await refused(tmp_path, url, cut, "truncated", passphrase=PASS)

    # rows whose checksum no longer matches the trailer (re-compressed, so gzip is happy)
    lines = gzip.decompress(data).decode().splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith('["fulmen_wallet"'))
    row = json.loads(lines[i])
    [wallets] = [t for t in json.loads(lines[0])["tables"] if t["name"] == "fulmen_wallet"]
    row[1][wallets["columns"].index("balance_msat")] += 1000
    lines[i] = json.dumps(row)
    tampered = tmp_path / "tampered.fulmen"
    tampered.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    await refused(tmp_path, url, tampered, "fulmen_wallet does not match")

    header = json.loads(lines[0])
    header["format_version"] = backups.FORMAT_VERSION + 1
    newer = tmp_path / "newer.fulmen"
    newer.write_bytes(gzip.compress((json.dumps(header) + "\n").encode()))
    await refused(tmp_path, url, newer, "format version 2")
    header["format_version"] = backups.FORMAT_VERSION
    malformed = tmp_path / "malformed.fulmen"
    malformed.write_bytes(gzip.compress((json.dumps({**header, "tables": "x"}) + "\n").encode()))
    await refused(tmp_path, url, malformed, "header is malformed")
    header["migrations"]["fulmen"].append("2099-01-01T00:00:00:000000")
    newer.write_bytes(gzip.compress(("\n".join([json.dumps(header), *lines[1:]]) + "\n").encode()))
    await refused(tmp_path, url, newer, "newer schema")

    # and the intact file restores into the same database afterwards
    report = await restore_into(tmp_path / "dst", url, small_backup)
    assert report.audit_mismatches == [] and report.tables["fulmen_wallet"]["rows"] == 3


@pytest.mark.postgres
async def test_refuses_non_empty_database_and_missing_plugin(
        tmp_path: Path, small_backup: Path) -> None:
    async with fresh_postgres_database() as url:
        await refused(tmp_path, url, small_backup, "lnurlp, splitpayments.*not installed",
                      plugins=["withdraw", "tpos"])
        report = await restore_into(tmp_path / "dst", url, small_backup,
                                    plugins=["withdraw", "tpos", "splitpayments"],
                                    skip_plugins={"lnurlp"})
        assert report.skipped_plugins == ["lnurlp"]
        assert "lnurlp_pay_link" not in report.tables and report.tables["withdraw_link"]["rows"]
        before = await data_rows(tmp_path / "dst", url)
        with pytest.raises(backups.BackupError, match="not empty"):
            await restore_into(tmp_path / "dst", url, small_backup)
        assert await data_rows(tmp_path / "dst", url) == before


async def test_hook_backup_tables(tmp_path: Path) -> None:
    """A plugin leaves one table out and rewrites the rows of another."""
    from plugins_contract.helpers import make_app

    ddl = ("CREATE TABLE notes_entry (id VARCHAR(32) PRIMARY KEY, note TEXT NOT NULL);"
           "CREATE TABLE notes_cache (id VARCHAR(32) PRIMARY KEY, note TEXT NOT NULL)")

    class Notes:
        @hookimpl
        def register_apps(self) -> Any:
            return make_app(tmp_path / "notes", "notes", "notes_entry", ddl=ddl)

        @hookimpl
        def backup_tables(self) -> dict[str, Any]:
            def redact(row: dict[str, Any]) -> dict[str, Any] | None:
                if row["id"] == "drop-me":
                    return None
                return {**row, "note": row["note"].upper()}

            return {"notes_cache": "skip", "notes_entry": redact}

    src = Fulmen(tmp_path / "src", f"sqlite:///{tmp_path / 'src.sqlite3'}")
    (tmp_path / "src").mkdir()
    try:
        await src.start(plugins=[plugin("notes", Notes())])
        for table in ("notes_entry", "notes_cache"):
            for key in ("a", "drop-me"):
                await db.query(f"INSERT INTO {table} (id, note) VALUES ({{}}, {{}})", key, "hi")
        file = await download(src.client, tmp_path / "notes.fulmen")
    finally:
        await src.stop()
    url = f"sqlite:///{tmp_path / 'dst.sqlite3'}"
    host = Host(settings_for(tmp_path / "dst", url), plugins=[plugin("notes", Notes())])
    await db.open_engine(host.engine, 2, 1)
    try:
        report = await backups.restore(host, file)
        assert report.tables["notes_entry"]["rows"] == 1
        assert await db.query("SELECT id, note FROM notes_entry") == [{"id": "a", "note": "HI"}]
        assert await db.query("SELECT id FROM notes_cache") == []
    finally:
        await db.close_engine(host.engine)

    class Greedy:  # may not touch another plugin's (or the host's) tables
        @hookimpl
        def backup_tables(self) -> dict[str, Any]:
            return {"fulmen_wallet": "skip"}

    src = Fulmen(tmp_path / "src2", f"sqlite:///{tmp_path / 'src2.sqlite3'}")
    (tmp_path / "src2").mkdir()
    try:
        await src.start(plugins=[plugin("greedy", Greedy())])
        with pytest.raises(backups.BackupError, match="greedy.*fulmen_wallet"):
            await backups.write_backup(src.host, tmp_path / "greedy.fulmen")
        assert not (tmp_path / "greedy.fulmen").exists()
    finally:
        await src.stop()


async def test_admin_backup_endpoint_checks_its_input(fulmen: Fulmen) -> None:
    client = await fulmen.start()
    r = await client.post("/admin/api/v1/backup", json={"passphrase": 5},
                          headers=fulmen.admin_headers)
    assert r.status_code == 400 and "passphrase" in r.json()["detail"]
    r = await client.post("/admin/api/v1/backup", json={"include_secrets": "yes"},
                          headers=fulmen.admin_headers)
    assert r.status_code == 400 and "include_secrets" in r.json()["detail"]
    r = await client.post("/admin/api/v1/backup")
    assert r.status_code == 401


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fulmen", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120, check=False)


def test_cli_backup_and_restore_with_secrets(tmp_path: Path) -> None:
    src = {"FULMEN_DATA_DIR": str(tmp_path / "a"), "FULMEN_PLUGINS": "lnurlp"}
    r = run_cli(["create-account", "--name", "shell"], src)
    assert r.returncode == 0, r.stderr
    wallet = json.loads(r.stdout)
    (tmp_path / "a" / "node_key").write_text("11" * 32)
    (tmp_path / "pass").write_text(PASS + "\n")
    r = run_cli(["backup", str(tmp_path / "cli.fulmen"), "--passphrase-file",
                 str(tmp_path / "pass"), "--include-secrets"], src)
    assert r.returncode == 0, r.stderr
    assert "encrypted" in r.stdout
    dst = {"FULMEN_DATA_DIR": str(tmp_path / "b"), "FULMEN_PLUGINS": "lnurlp"}
    r = run_cli(["restore", str(tmp_path / "cli.fulmen")], {**dst, "FULMEN_BACKUP_PASSPHRASE": "x"})
    assert r.returncode == 1 and "wrong passphrase" in r.stderr, r.stderr
    r = run_cli(["restore", str(tmp_path / "cli.fulmen"), "--passphrase-file",
                 str(tmp_path / "pass"), "--restore-secrets"], dst)
    assert r.returncode == 0, r.stderr
    assert "fulmen_wallet: 1 rows, checksum ok" in r.stdout and "audit ok" in r.stdout
    assert (tmp_path / "b" / "node_key").read_text() == "11" * 32
    assert (tmp_path / "b" / "admin_key").read_text() == (tmp_path / "a" / "admin_key").read_text()
    assert oct((tmp_path / "b" / "admin_key").stat().st_mode & 0o777) == "0o600"
    r = run_cli(["restore", str(tmp_path / "cli.fulmen"), "--passphrase-file",
                 str(tmp_path / "pass")], dst)
    assert r.returncode == 1 and "not empty" in r.stderr
    import sqlite3

    rows = sqlite3.connect(tmp_path / "b" / "fulmen.sqlite3").execute(
        "SELECT id FROM fulmen_wallet").fetchall()
    assert rows == [(wallet["id"],)]


@pytest.mark.postgres
async def test_pending_outgoing_payment_stays_pending_and_is_reconciled_after_restore(
        tmp_path: Path, database: str) -> None:
    from fulmen.funding import PaymentState, PaymentStatus
    from fulmen.funding.fake import FakeWallet

    class Node(FakeWallet):
        """Leaves external payments pending until told otherwise."""

        def __init__(self, status: PaymentStatus) -> None:
            super().__init__("22" * 32)
            self.status = status

        async def pay_invoice(self, bolt11: str, fee_limit_msat: int) -> PaymentStatus:
            return PaymentStatus(PaymentState.PENDING)

        async def get_payment_status(self, payment_hash: str) -> PaymentStatus:
            return self.status

    elsewhere = (await FakeWallet("33" * 32).create_invoice(300_000, "elsewhere", None, 600)).bolt11
    src = Fulmen(tmp_path / "src", database)
    (tmp_path / "src").mkdir()
    try:
        await src.start(funding=Node(PaymentStatus(PaymentState.PENDING)))
        alice = await src.wallet("alice", sats=1000)
        r = await src.pay(alice, elsewhere)
        assert r.status_code == 201 and r.json()["status"] == "pending", r.text
        file = await download(src.client, tmp_path / "pending.fulmen")
    finally:
        await src.stop()
    async with fresh_postgres_database() as pg_url:
        dst_url = pg_url if database.startswith("sqlite") else f"sqlite:///{tmp_path / 'd.sqlite3'}"
        await restore_into(tmp_path / "dst", dst_url, file, plugins=[])
        dst = Fulmen(tmp_path / "dst", dst_url)
        try:
            node = Node(PaymentStatus(PaymentState.PENDING))
            client = await dst.start(funding=node)
            r = await client.get("/admin/api/v1/payments/pending", headers=dst.admin_headers)
            [pending] = r.json()
            assert pending["status"] == "pending" and pending["amount"] == -300_000
            assert await dst.balance(alice) == 1000_000 - 300_000 - 3000  # amount + reserve
            node.status = PaymentStatus(PaymentState.SUCCESS, fee_msat=1000, preimage="bb" * 32)
            assert await dst.host.payments.reconcile() == 1
            assert await dst.balance(alice) == 1000_000 - 301_000
            assert await dst.host.wallets.audit() == []
        finally:
            await dst.stop()
