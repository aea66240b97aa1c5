"""The data folder and the SQLite files are readable by their owner only,
whatever the umask."""

import os
import stat
from pathlib import Path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_data_folder_0700_and_database_files_0600(fulmen, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        client = await fulmen.start(database_url="")
        alice = await fulmen.wallet("alice", sats=3)
        r = await client.post("/api/v1/payments", headers=alice.invoice_headers,
                              json={"out": False, "amount": 1})
        assert r.status_code == 201
    finally:
        os.umask(old)
    data = tmp_path / "data"
    assert mode(data) == 0o700
    files = [p for p in data.iterdir() if p.name.startswith("fulmen.sqlite3")]
    assert {p.name for p in files} >= {"fulmen.sqlite3", "fulmen.sqlite3-wal"}
    for p in data.iterdir():
        assert mode(p) & 0o077 == 0, (p, oct(mode(p)))


async def test_existing_loose_modes_are_tightened(fulmen, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    db = data / "fulmen.sqlite3"
    db.touch()
    os.chmod(db, 0o644)
    await fulmen.start(database_url="")
    assert mode(data) == 0o700 and mode(db) == 0o600
