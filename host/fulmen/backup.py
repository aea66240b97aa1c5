"""Backups and restores: one portable file for SQLite and PostgreSQL.

A backup is a consistent snapshot (one read transaction: REPEATABLE READ on
PostgreSQL, a WAL read transaction on SQLite) of the host's tables and every
installed plugin's tables, taken while the server keeps working. The file is
gzip'd JSON lines:

- a header: format name and version, host version, source database, each
  plugin's version, the migrations applied per app, and every table with its
  columns and their portable types (int, bool, text, json, float, bytes);
- one line per row: `[table, [values...]]`;
- optional secret files (node key, admin key) as `{"secret": name, "value": ...}`;
- a trailer with each table's row count and checksum.

A table's checksum is the sum (mod 2**256) of the sha256 of each row's
normalised values, so it does not depend on row order (SQLite and
PostgreSQL sort text differently) or on how a database spells a value
(booleans as 0/1, JSON with other spacing).

With a passphrase the gzip stream is encrypted with AES-256-GCM in framed
chunks (`cryptography`, the Python Cryptographic Authority's library), under
a key from scrypt (salt and cost in the file header). Each chunk's nonce is
its number and a "last chunk" flag, so reordered, altered or cut-off files
fail; a check value derived with the key tells a wrong passphrase apart from
a damaged file.

A restore reads the header, refuses what it cannot restore whole, migrates
the (empty) database, then inserts every row in ONE transaction, checks row
counts and checksums against the trailer and against what it reads back,
and only then commits. Any failure rolls the transaction back: no partial
data is left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .db import now_ms, postgres_config
from .version import __version__

FORMAT = "fulmen-backup"
FORMAT_VERSION = 1
BATCH = 1000
#: the data folder's keys (`--include-secrets`); the withdraw plugin's key
#: derives its links' secrets, which the database holds only as hashes
SECRET_FILES = ("node_key", "admin_key", "withdraw_link_key")
#: tables never copied: Piccolo's migration record (the restore migrates itself)
#: and the process heartbeats (they describe the processes running now)
SKIPPED_TABLES = {"migration", "fulmen_process"}
#: tables the host fills in on start; an otherwise empty database may have them
BOOKKEEPING_TABLES = {"migration", "fulmen_plugin_state", "fulmen_process"}

ENC_MAGIC = b"FULMENBK-AESGCM1"
SCRYPT_N_LOG2, SCRYPT_R, SCRYPT_P = 15, 8, 1
CHUNK = 64 * 1024

Transform = Callable[[dict[str, Any]], "dict[str, Any] | None"]


class BackupError(Exception):
    """A backup or restore that cannot go ahead; the message says why."""


# --- values, types and checksums -----------------------------------------------------


def portable_type(declared: str) -> str:
    """A column's portable type from its SQLite or PostgreSQL declared type."""
    t = declared.lower()
    if "bool" in t:
        return "bool"
    if "json" in t:
        return "json"
    if "int" in t or t in ("bigserial", "serial"):
        return "int"
    if any(x in t for x in ("real", "floa", "doub", "numeric", "decimal")):
        return "float"
    if "blob" in t or "bytea" in t:
        return "bytes"
    return "text"


def _canonical_json(value: Any) -> Any:
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def normalise(value: Any, kind: str) -> Any:
    """A value as the checksum sees it, whichever database it came from."""
    if value is None:
        return None
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "json":
        return _canonical_json(value)
    if kind == "bytes":
        return bytes(value).hex() if not isinstance(value, str) else value
    return str(value)


def to_file(value: Any, kind: str) -> Any:
    """A value as written to the file (JSON-able)."""
    if value is None:
        return None
    if kind == "bool":
        return bool(value)
    if kind == "bytes":
        return bytes(value).hex()
    if kind in ("int", "float") or isinstance(value, (int, float, str)):
        return value
    return str(value)


def to_database(value: Any, kind: str, postgres: bool) -> Any:
    """A value from the file as the target database's driver wants it."""
    if value is None:
        return None
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "bytes":
        return bytes.fromhex(value) if isinstance(value, str) else value
    if kind == "json":
        return value if isinstance(value, str) else json.dumps(value)
    return str(value)


class Checksum:
    """Order-independent: the sum of the rows' sha256, mod 2**256."""

    def __init__(self, kinds: list[str]) -> None:
        self.kinds = kinds
        self.total = 0
        self.rows = 0

    def add(self, values: list[Any] | tuple[Any, ...]) -> None:
        line = json.dumps([normalise(v, k) for v, k in zip(values, self.kinds)],
                          separators=(",", ":"), ensure_ascii=True)
        self.total = (self.total + int.from_bytes(hashlib.sha256(line.encode()).digest(), "big")) \
            % (1 << 256)
        self.rows += 1

    @property
    def hex(self) -> str:
        return f"{self.total:064x}"


# --- encryption -----------------------------------------------------------------------


def _derive(passphrase: str, salt: bytes, n_log2: int, r: int, p: int) -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    out = Scrypt(salt=salt, length=64, n=1 << n_log2, r=r, p=p).derive(passphrase.encode())
    return out[:32], hashlib.sha256(b"fulmen-backup-check" + out[32:]).digest()[:16]


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class Encryptor:
    def __init__(self, passphrase: str) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        salt = os.urandom(16)
        key, check = _derive(passphrase, salt, SCRYPT_N_LOG2, SCRYPT_R, SCRYPT_P)
        self.aead = AESGCM(key)
        self.header = ENC_MAGIC + salt + bytes([SCRYPT_N_LOG2, SCRYPT_R, SCRYPT_P]) + check
        self.counter = 0
        self.pending = b""

    def _frame(self, data: bytes, last: bool) -> bytes:
        sealed = self.aead.encrypt(_nonce(self.counter, last), data, self.header)
        self.counter += 1
        return struct.pack(">I", len(sealed)) + sealed

    def feed(self, data: bytes) -> bytes:
        self.pending += data
        out = []
        while len(self.pending) > CHUNK:
            out.append(self._frame(self.pending[:CHUNK], False))
            self.pending = self.pending[CHUNK:]
        return b"".join(out)

    def finish(self) -> bytes:
        return self._frame(self.pending, True)


def _decrypted(stream: BinaryIO, passphrase: str | None) -> Iterator[bytes]:
    """The gzip bytes of a backup file, decrypting if it is encrypted."""
    head = stream.read(len(ENC_MAGIC))
    if head != ENC_MAGIC:
        if passphrase:
            raise BackupError("this backup file is not encrypted; leave out the passphrase")
        yield head
        while chunk := stream.read(CHUNK):
            yield chunk
        return
    if not passphrase:
        raise BackupError("this backup file is encrypted: give its passphrase")
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    rest = stream.read(16 + 3 + 16)
    if len(rest) < 35:
        raise BackupError("the backup file is truncated (incomplete encryption header)")
    salt, (n_log2, r, p), check = rest[:16], rest[16:19], rest[19:]
    if not (10 <= n_log2 <= 22 and 1 <= r <= 32 and 1 <= p <= 16):
        raise BackupError("the backup file is corrupted (bad encryption parameters)")
    key, expected = _derive(passphrase, salt, n_log2, r, p)
    if expected != check:
        raise BackupError("wrong passphrase for this backup file")
    aead, header, counter = AESGCM(key), head + rest, 0
    while True:
        size_bytes = stream.read(4)
        if len(size_bytes) < 4:
            raise BackupError("the backup file is truncated (its last encrypted chunk is missing)")
        (size,) = struct.unpack(">I", size_bytes)
        if size > CHUNK + 16:
            raise BackupError("the backup file is corrupted (bad chunk size)")
        sealed = stream.read(size)
        if len(sealed) < size:
            raise BackupError("the backup file is truncated (an encrypted chunk is cut off)")
        for last in (False, True):
            try:
                data = aead.decrypt(_nonce(counter, last), sealed, header)
                break
            except InvalidTag:
                continue
        else:
            raise BackupError(f"the backup file is corrupted (encrypted chunk {counter} fails "
                              "its authentication)")
        counter += 1
        yield data
        if last:
            if stream.read(1):
                raise BackupError("the backup file is corrupted (data after its last chunk)")
            return


def read_lines(path: Path, passphrase: str | None) -> Iterator[dict[str, Any] | list[Any]]:
    """The parsed lines of a backup file; raises BackupError on damage."""
    with open(path, "rb") as stream:
        inflate = zlib.decompressobj(wbits=31)
        buffer = b""
        for chunk in _decrypted(stream, passphrase):
            if inflate.eof:
                if chunk:
                    raise BackupError("the backup file is corrupted (data after its end)")
                continue
            try:
                buffer += inflate.decompress(chunk)
            except zlib.error as exc:
                raise BackupError(f"the backup file is corrupted (gzip: {exc})") from None
            if inflate.unused_data:
                raise BackupError("the backup file is corrupted (data after its end)")
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                yield _parse(line)
        if not inflate.eof:
            raise BackupError("the backup file is truncated (the compressed stream ends early)")
        if buffer.strip():
            yield _parse(buffer)


def _parse(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        raise BackupError("the backup file is corrupted (a line is not JSON)") from None


# --- database access ---------------------------------------------------------------------


@dataclass
class Table:
    name: str
    owner: str  # "fulmen" or a plugin id
    columns: list[str]
    kinds: list[str]
    serial: list[str] = field(default_factory=list)


class Database:
    """A dedicated connection to the host's database (not the pool)."""

    def __init__(self, url: str, sqlite_path: Path | None) -> None:
        self.postgres = url.startswith(("postgres://", "postgresql://"))
        self.url = url
        self.sqlite_path = sqlite_path
        self.conn: Any = None

    async def open(self) -> Database:
        try:
            if self.postgres:
                import asyncpg

                self.conn = await asyncpg.connect(**postgres_config(self.url))
            else:
                import aiosqlite

                self.conn = await aiosqlite.connect(str(self.sqlite_path), isolation_level=None,
                                                    timeout=30)
        except Exception as exc:  # no database, refused, bad credentials: say which
            if self.postgres:  # never the password
                c = postgres_config(self.url)
                where: Any = f"{c['host']}:{c['port']}/{c['database']}"
            else:
                where = self.sqlite_path
            raise BackupError(f"cannot open the database {where}: {exc}") from None
        return self

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        if self.postgres:
            return [tuple(r) for r in await self.conn.fetch(sql, *args)]
        async with self.conn.execute(sql.replace("$1", "?"), args) as cursor:
            return [tuple(r) for r in await cursor.fetchall()]

    async def execute(self, sql: str) -> None:
        if self.postgres:
            await self.conn.execute(sql)
        else:
            await self.conn.execute(sql)

    async def table_names(self) -> list[str]:
        if self.postgres:
            rows = await self.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = "
                "current_schema() AND table_type = 'BASE TABLE'")
        else:
            rows = await self.fetch("SELECT name FROM sqlite_master WHERE type = 'table' "
                                    "AND name NOT LIKE 'sqlite_%'")
        return sorted(r[0] for r in rows)

    async def columns(self, table: str) -> tuple[list[str], list[str], list[str]]:
        """Column names, portable types and auto-increment columns."""
        if self.postgres:
            rows = await self.fetch(
                "SELECT column_name, data_type, column_default FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = $1 "
                "ORDER BY ordinal_position", table)
            serial = [r[0] for r in rows if str(r[2] or "").startswith("nextval(")]
            return [r[0] for r in rows], [portable_type(r[1]) for r in rows], serial
        rows = await self.fetch(f'PRAGMA table_info("{table}")')
        return [r[1] for r in rows], [portable_type(r[2] or "") for r in rows], []

    async def references(self) -> dict[str, set[str]]:
        """Table -> the tables its foreign keys point at."""
        refs: dict[str, set[str]] = {}
        if self.postgres:
            for child, parent in await self.fetch(
                    "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint "
                    "WHERE contype = 'f'"):
                refs.setdefault(child.strip('"'), set()).add(parent.strip('"'))
            return refs
        for name in await self.table_names():
            for row in await self.fetch(f'PRAGMA foreign_key_list("{name}")'):
                refs.setdefault(name, set()).add(row[2])
        return refs

    async def count(self, table: str) -> int:
        return int((await self.fetch(f'SELECT COUNT(*) FROM "{table}"'))[0][0])

    async def rows(self, table: str, columns: list[str]) -> AsyncIterator[list[tuple[Any, ...]]]:
        cols = ", ".join(f'"{c}"' for c in columns)
        sql = f'SELECT {cols} FROM "{table}"'
        if self.postgres:
            batch: list[tuple[Any, ...]] = []
            async for record in self.conn.cursor(sql, prefetch=BATCH):
                batch.append(tuple(record))
                if len(batch) >= BATCH:
                    yield batch
                    batch = []
            if batch:
                yield batch
            return
        async with self.conn.execute(sql) as cursor:
            while rows := await cursor.fetchmany(BATCH):
                yield [tuple(r) for r in rows]

    async def insert(self, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self.postgres:
            await self.conn.copy_records_to_table(table, records=rows, columns=columns)
            return
        cols = ", ".join(f'"{c}"' for c in columns)
        marks = ", ".join("?" for _ in columns)
        await self.conn.executemany(f'INSERT INTO "{table}" ({cols}) VALUES ({marks})', rows)


def database_of(host: Any) -> Database:
    settings = host.settings
    if settings.uses_postgres:
        return Database(settings.database_url, None)
    if settings.database_url.startswith("sqlite:///"):
        return Database(settings.database_url, Path(settings.database_url.removeprefix("sqlite:///")))
    return Database("sqlite", settings.sqlite_path)


def owner_of(table: str, plugin_ids: list[str]) -> str | None:
    """"fulmen" for the host's tables, the plugin id for a plugin's, else None."""
    if table.startswith("fulmen_"):
        return "fulmen"
    matches = [p for p in plugin_ids if table.startswith(f"{p}_")]
    return max(matches, key=len) if matches else None


def dependency_order(names: list[str], refs: dict[str, set[str]]) -> list[str]:
    """Parents before children (foreign keys), otherwise by name."""
    ordered: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for parent in sorted(refs.get(name, ())):
            if parent in names and parent != name:
                visit(parent)
        ordered.append(name)

    for name in sorted(names):
        visit(name)
    return ordered


async def plugin_backup_rules(host: Any, plugin_id: str) -> dict[str, Any]:
    """What the plugin's `backup_tables` hook says about its own tables."""
    results: list[Any] = []
    for _, call in host.hooks.implementations("backup_tables", plugin_id, serving_only=False):
        results.append(await call())
    rules: dict[str, Any] = {}
    for result in results:
        if not result:
            continue
        if not isinstance(result, dict):
            raise BackupError(f"plugin {plugin_id}: backup_tables must return a dict")
        for table, rule in result.items():
            if not str(table).startswith(f"{plugin_id}_"):
                raise BackupError(f"plugin {plugin_id}: backup_tables names {table!r}, "
                                  f"which is not one of its tables")
            if rule != "skip" and not callable(rule):
                raise BackupError(f"plugin {plugin_id}: backup_tables rule for {table!r} must be "
                                  "\"skip\" or a function of the row")
            rules[table] = rule
    return rules


async def _migration_heads() -> dict[str, list[str]]:
    from .db import applied_migrations

    heads: dict[str, list[str]] = {}
    for row in await applied_migrations():
        heads.setdefault(row["app_name"], []).append(row["name"])
    return heads


# --- backup ----------------------------------------------------------------------------


@dataclass
class BackupSummary:
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    bytes: int = 0


async def backup_chunks(host: Any, passphrase: str | None = None, include_secrets: bool = False,
                        summary: BackupSummary | None = None) -> AsyncIterator[bytes]:
    """The backup file, as chunks of bytes; the host's engine must be open
    (for the migration record) and the host need not serve."""
    summary = summary if summary is not None else BackupSummary()
    plugin_ids = sorted(host.plugins)
    rules: dict[str, Any] = {}
    for pid in plugin_ids:
        if host.plugins[pid].usable:
            rules.update(await plugin_backup_rules(host, pid))
    heads = await _migration_heads()
    source = await database_of(host).open()
    snapshot: Any = None
    deflate = zlib.compressobj(6, zlib.DEFLATED, 31)
    encryptor = Encryptor(passphrase) if passphrase else None
    if encryptor is not None:
        summary.bytes += len(encryptor.header)
        yield encryptor.header

    def emit(obj: Any) -> bytes:
        data = deflate.compress(json.dumps(obj, separators=(",", ":")).encode() + b"\n")
        if encryptor is not None:
            data = encryptor.feed(data)
        summary.bytes += len(data)
        return data

    try:
        if source.postgres:
            snapshot = source.conn.transaction(isolation="repeatable_read", readonly=True)
            await snapshot.start()
        else:
            await source.execute("BEGIN")
            await source.fetch("SELECT COUNT(*) FROM sqlite_master")  # the snapshot starts here
        names = [n for n in await source.table_names()
                 if n not in SKIPPED_TABLES and owner_of(n, plugin_ids)]
        order = dependency_order(names, await source.references())
        tables: list[Table] = []
        for name in order:
            columns, kinds, serial = await source.columns(name)
            tables.append(Table(name, owner_of(name, plugin_ids) or "", columns, kinds, serial))
        header = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": now_ms(),
            "host_version": __version__,
            "source_database": "postgresql" if source.postgres else "sqlite",
            "migrations": heads,
            "plugins": {pid: {"version": host.plugins[pid].version,
                              "apps": [a.app_name for a in host.plugins[pid].apps]}
                        for pid in plugin_ids if any(t.owner == pid for t in tables)},
            "tables": [{"name": t.name, "owner": t.owner, "columns": t.columns, "kinds": t.kinds,
                        "skipped": rules.get(t.name) == "skip"} for t in tables],
            "secrets": include_secrets,
        }
        if chunk := emit(header):
            yield chunk
        for table in tables:
            rule = rules.get(table.name)
            check = Checksum(table.kinds)
            if rule != "skip":
                async for batch in source.rows(table.name, table.columns):
                    lines = []
                    for raw in batch:
                        values = [to_file(v, k) for v, k in zip(raw, table.kinds)]
                        if callable(rule):
                            changed = rule(dict(zip(table.columns, values)))
                            if changed is None:
                                continue
                            values = [changed.get(c) for c in table.columns]
                        check.add(values)
                        lines.append(json.dumps([table.name, values], separators=(",", ":")))
                    data = deflate.compress(("\n".join(lines) + "\n").encode()) if lines else b""
                    if encryptor is not None:
                        data = encryptor.feed(data)
                    summary.bytes += len(data)
                    if data:
                        yield data
            summary.tables[table.name] = {"rows": check.rows, "checksum": check.hex}
        secrets: list[str] = []
        if include_secrets:
            for name in SECRET_FILES:
                path = host.settings.data_dir / name
                if path.exists():
                    secrets.append(name)
                    if chunk := emit({"secret": name, "value": path.read_text().strip()}):
                        yield chunk
        if chunk := emit({"end": True, "tables": summary.tables, "secrets": secrets}):
            yield chunk
        tail = deflate.flush()
        if encryptor is not None:
            tail = encryptor.feed(tail) + encryptor.finish()
        summary.bytes += len(tail)
        yield tail
    finally:
        await source.close()  # ends the read transaction


async def write_backup(host: Any, path: Path, passphrase: str | None = None,
                       include_secrets: bool = False) -> BackupSummary:
    """Write the backup to `path` (via a temporary file, renamed at the end)."""
    summary = BackupSummary()
    tmp = path.with_name(f".{path.name}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in backup_chunks(host, passphrase, include_secrets, summary):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return summary


# --- restore ----------------------------------------------------------------------------


@dataclass
class RestoreReport:
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped_plugins: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    audit_mismatches: list[dict[str, Any]] = field(default_factory=list)
    header: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [(f"backup of {self.header.get('source_database')} by fulmen "
                f"{self.header.get('host_version')}, format {self.header.get('format_version')}")]
        for name, info in self.tables.items():
            out.append(f"  {name}: {info['rows']} rows, checksum ok (file and database)")
        for pid in self.skipped_plugins:
            out.append(f"  plugin {pid}: skipped (not installed)")
        for name in self.secrets:
            out.append(f"  secret file {name}: restored")
        out.append("audit ok: every balance equals its ledger" if not self.audit_mismatches
                   else f"AUDIT FAILED: {len(self.audit_mismatches)} wallets mismatch")
        return out


def read_header(path: Path, passphrase: str | None) -> dict[str, Any]:
    if not path.is_file():
        raise BackupError(f"no backup file at {path}")
    for line in read_lines(path, passphrase):
        return check_header(line)
    raise BackupError("the backup file is empty")


def check_header(header: Any) -> dict[str, Any]:
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BackupError("this is not a Fulmen backup file")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BackupError(f"the backup file has format version {version}; this Fulmen "
                          f"{__version__} reads up to {FORMAT_VERSION}: upgrade Fulmen first")
    if not _header_is_sound(header):
        raise BackupError("the backup file is corrupted (its header is malformed)")
    return header


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _header_is_sound(header: dict[str, Any]) -> bool:
    tables, migrations, plugins = header.get("tables"), header.get("migrations"), header.get("plugins")
    if not isinstance(tables, list) or not isinstance(migrations, dict) \
            or not isinstance(plugins, dict):
        return False
    if not all(isinstance(k, str) and _strings(v) for k, v in migrations.items()):
        return False
    for t in tables:
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) \
                or not isinstance(t.get("owner"), str) or not _strings(t.get("columns")) \
                or not _strings(t.get("kinds")) or len(t["columns"]) != len(t["kinds"]):
            return False
    return True


async def database_is_empty(db: Database) -> list[str]:
    """The tables (other than bookkeeping) that hold rows."""
    full = []
    for name in await db.table_names():
        if name not in BOOKKEEPING_TABLES and await db.count(name):
            full.append(name)
    return full


async def restore(host: Any, path: Path, passphrase: str | None = None,
                  skip_plugins: set[str] | None = None, skip_missing_plugins: bool = False,
                  restore_secrets: bool = False) -> RestoreReport:
    """Restore `path` into the host's database, which must be empty. The
    host's engine must be open; the host must not be serving."""
    report = RestoreReport()
    header = read_header(path, passphrase)  # wrong passphrase, foreign or newer file
    report.header = header
    installed = {pid for pid, info in host.plugins.items() if info.usable}
    in_file = set(header.get("plugins", {}))
    missing = sorted(in_file - installed)
    skip = set(skip_plugins or ())
    if skip_missing_plugins:
        skip |= set(missing)
    not_skipped = [p for p in missing if p not in skip]
    if not_skipped:
        raise BackupError(f"the backup has data of plugin(s) {', '.join(not_skipped)}, which "
                          "are not installed here: install them, or skip them with "
                          + " ".join(f"--skip-plugin {p}" for p in not_skipped))
    report.skipped_plugins = sorted(skip & in_file)
    if restore_secrets and not header.get("secrets"):
        raise BackupError("the backup file holds no secret files (it was made without "
                          "--include-secrets)")

    target = await database_of(host).open()
    try:
        if full := await database_is_empty(target):
            raise BackupError("the database is not empty (rows in "
                              + ", ".join(full[:5]) + (", ..." if len(full) > 5 else "")
                              + "): restore only into a new, empty database")
    finally:
        await target.close()

    await host.migrate()
    failed = [pid for pid in in_file - skip if not host.plugins[pid].usable]
    if failed:
        raise BackupError(f"plugin(s) {', '.join(sorted(failed))} could not be migrated here: "
                          + "; ".join(str(host.plugins[p].error) for p in sorted(failed)))
    heads = await _migration_heads()
    for app, ids in header.get("migrations", {}).items():
        owner = "fulmen" if app == "fulmen" else owner_of(f"{app}_", sorted(in_file | installed))
        if owner is None or owner in skip:
            continue
        unknown = sorted(set(ids) - set(heads.get(app, [])))
        if unknown:
            raise BackupError(f"the backup comes from a newer schema of {app} (migrations "
                              f"{', '.join(unknown)} are unknown here): upgrade first")

    target = await database_of(host).open()
    secrets: dict[str, str] = {}
    try:
        await _restore_rows(target, path, passphrase, header, skip, report, secrets)
    finally:
        await target.close()
    if restore_secrets:
        report.secrets = _write_secrets(host.settings.data_dir, secrets)
    report.audit_mismatches = await host.wallets.audit()
    return report


async def _restore_rows(target: Database, path: Path, passphrase: str | None,
                        header: dict[str, Any], skip: set[str], report: RestoreReport,
                        secrets: dict[str, str]) -> None:
    postgres = target.postgres
    tables: dict[str, Table] = {}
    target_kinds: dict[str, list[str]] = {}
    existing = set(await target.table_names())
    for entry in header["tables"]:
        if entry["owner"] in skip:
            continue
        name = entry["name"]
        if name not in existing:
            raise BackupError(f"table {name} of the backup does not exist here after migrating")
        columns, kinds, serial = await target.columns(name)
        here = dict(zip(columns, kinds))
        extra = [c for c in entry["columns"] if c not in here]
        if extra:
            raise BackupError(f"table {name}: columns {extra} of the backup do not exist here")
        tables[name] = Table(name, entry["owner"], entry["columns"], entry["kinds"], serial)
        target_kinds[name] = [here[c] for c in entry["columns"]]

    def effective(file_kind: str, db_kind: str) -> str:
        for kind in ("json", "bool", "bytes"):
            if kind in (file_kind, db_kind):
                return kind
        return db_kind

    file_checks = {n: Checksum(t.kinds) for n, t in tables.items()}
    stored_checks = {n: Checksum([effective(a, b) for a, b in zip(t.kinds, target_kinds[n])])
                     for n, t in tables.items()}
    trailer: dict[str, Any] | None = None
    skipped_names = {e["name"] for e in header["tables"] if e["owner"] in skip}

    if postgres:
        transaction = target.conn.transaction()
        await transaction.start()
    else:
        await target.execute("BEGIN IMMEDIATE")
    try:
        if "fulmen_plugin_state" in tables:
            await target.execute("DELETE FROM fulmen_plugin_state")
        pending: dict[str, list[tuple[Any, ...]]] = {}

        async def flush(name: str) -> None:
            rows = pending.pop(name, [])
            if rows:
                await target.insert(name, tables[name].columns, rows)

        lines = read_lines(path, passphrase)
        first = True
        current = ""
        for line in lines:
            if first:
                first = False
                continue
            if isinstance(line, list) and len(line) == 2:
                name, values = line
                if name in skipped_names:
                    continue
                table = tables.get(name)
                if table is None or not isinstance(values, list) \
                        or len(values) != len(table.columns):
                    raise BackupError(f"the backup file is corrupted (a row of {name!r} does "
                                      "not match the header)")
                file_checks[name].add(values)
                kinds = stored_checks[name].kinds
                converted = tuple(to_database(v, k, postgres) for v, k in zip(values, kinds))
                if kinds != file_checks[name].kinds:  # else both sums are the same
                    stored_checks[name].add(converted)
                if name != current:  # tables come parents first: finish the last one
                    if current:
                        await flush(current)
                    current = name
                bucket = pending.setdefault(name, [])
                bucket.append(converted)
                if len(bucket) >= BATCH:
                    await flush(name)
            elif isinstance(line, dict) and "secret" in line:
                if line["secret"] in SECRET_FILES and isinstance(line.get("value"), str):
                    secrets[line["secret"]] = line["value"]
            elif isinstance(line, dict) and line.get("end"):
                trailer = line
            else:
                raise BackupError("the backup file is corrupted (an unknown line)")
        if trailer is None:
            raise BackupError("the backup file is truncated (no end record)")
        if not isinstance(trailer.get("tables"), dict) \
                or not all(isinstance(v, dict) for v in trailer["tables"].values()):
            raise BackupError("the backup file is corrupted (its end record is malformed)")
        for name in tables:
            await flush(name)
        for name, table in tables.items():
            expected = trailer["tables"].get(name)
            got = file_checks[name]
            if expected is None or expected.get("rows") != got.rows \
                    or expected.get("checksum") != got.hex:
                raise BackupError(f"the backup file is corrupted: table {name} does not match "
                                  f"its recorded row count and checksum")
            back = Checksum(stored_checks[name].kinds)
            async for batch in target.rows(name, table.columns):
                for row in batch:
                    back.add(row)
            stored = stored_checks[name] if back.kinds != got.kinds else got
            if back.rows != got.rows or back.hex != stored.hex:
                raise BackupError(f"table {name}: the rows read back from the database differ "
                                  "from the backup")
            report.tables[name] = {"rows": got.rows, "checksum": got.hex}
        if postgres:
            await _reset_sequences(target, tables)
    except BaseException:
        if postgres:
            await transaction.rollback()
        else:
            await target.execute("ROLLBACK")
        raise
    if postgres:
        await transaction.commit()
    else:
        await target.execute("COMMIT")


async def _reset_sequences(target: Database, tables: dict[str, Table]) -> None:
    for name, table in tables.items():
        for column in table.serial:
            await target.conn.execute(
                f"SELECT setval(pg_get_serial_sequence('\"{name}\"', '{column}'), "
                f"COALESCE((SELECT MAX(\"{column}\") FROM \"{name}\"), 0) + 1, false)")


def _write_secrets(data_dir: Path, secrets: dict[str, str]) -> list[str]:
    """Write the backup's secret files; a different file already there
    (a new host makes its own keys on first start) is kept as
    `<name>.before-restore`."""
    written = []
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, value in secrets.items():
        path = data_dir / name
        if path.exists():
            if path.read_text().strip() == value:
                written.append(name)
                continue
            os.replace(path, path.with_name(f"{name}.before-restore"))
        tmp = path.with_name(f".{name}.restore")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value)
        os.replace(tmp, path)
        written.append(name)
    return written


__all__ = ["BackupError", "BackupSummary", "RestoreReport", "backup_chunks", "read_header",
           "restore", "write_backup"]
