"""A throwaway plugin built as a wheel, and a throwaway environment to install
it into, for the live install/upgrade/uninstall tests (and bench/plugin_churn.py).

The environment is a fresh venv whose site-packages adds the workspace's
(a `.pth` line), so the host and its dependencies are there without being
installed again (a fraction of a second instead of minutes), while whatever a test installs
lands in the throwaway venv only.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

PLUGIN_ID = "livetest"
DISTRIBUTION = "fulmen-livetest"

MIGRATION = '''
from fulmen import ddl_migration

ID = "{mid}"
forwards = ddl_migration("livetest", ID, "{description}", """{ddl}""")
'''

PICCOLO_APP = '''
from pathlib import Path

from piccolo.columns import Text
from piccolo.conf.apps import AppConfig
from piccolo.table import Table


class Note(Table, tablename="livetest_note"):
    id = Text(primary_key=True)
    note = Text()


APP_CONFIG = AppConfig(app_name="livetest",
                       migrations_folder_path=str(Path(__file__).parent / "migrations"),
                       table_classes=[Note], migration_dependencies=["fulmen"])
'''

PLUGIN = '''
import fulmen
from fulmen import hookimpl
from litestar import get, post

from .piccolo_app import APP_CONFIG

VERSION = "{version}"


@get("/hello")
async def hello() -> dict:
    rows = await fulmen.query("SELECT COUNT(*) AS n FROM livetest_note")
    return {{"version": VERSION, "notes": int(rows[0]["n"])}}


@post("/notes", status_code=201)
async def add_note(data: dict) -> dict:
    await fulmen.query("INSERT INTO livetest_note (id, note) VALUES ({{}}, {{}})",
                       str(data["id"]), str(data["note"]))
    return {{"id": data["id"]}}


@hookimpl
def register_apps():
    return APP_CONFIG


@hookimpl
def register_routes():
    return [hello, add_note]
'''

MIGRATIONS = [
    ("2026-12-01T00:00:00:000000", "notes",
     "CREATE TABLE livetest_note (id VARCHAR(32) PRIMARY KEY, note TEXT NOT NULL)"),
    ("2026-12-02T00:00:00:000000", "note colours",
     "ALTER TABLE livetest_note ADD COLUMN colour TEXT"),
]


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(folder: Path, version: str, migrations: int = 1, broken: bool = False) -> Path:
    """fulmen_livetest-{version}-py3-none-any.whl in `folder`, with the first
    `migrations` migrations of MIGRATIONS (`broken`: its import fails)."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"fulmen_livetest-{version}.dist-info"
    files: dict[str, bytes] = {
        "fulmen_livetest/__init__.py": (b"raise RuntimeError('broken on purpose')\n" if broken
                                        else PLUGIN.format(version=version).encode()),
        "fulmen_livetest/piccolo_app.py": PICCOLO_APP.encode(),
        "fulmen_livetest/migrations/__init__.py": b"",
    }
    for mid, description, ddl in MIGRATIONS[:migrations]:
        stem = "livetest_" + mid.replace("-", "_").replace(":", "_").lower()
        files[f"fulmen_livetest/migrations/{stem}.py"] = MIGRATION.format(
            mid=mid, description=description, ddl=ddl).encode()
    files[f"{info}/METADATA"] = (f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\n"
                                 f"Version: {version}\nSummary: live install test\n").encode()
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: fulmen-tests\n"
                              b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    files[f"{info}/entry_points.txt"] = b"[fulmen.plugins]\nlivetest = fulmen_livetest\n"
    record = [_record_line(name, data) for name, data in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = folder / f"fulmen_livetest-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
    return path


def make_venv(folder: Path) -> Path:
    """A venv that sees the workspace's packages; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip()
    workspace = sysconfig.get_paths()["purelib"]
    Path(purelib, "_workspace.pth").write_text(f"import site; site.addsitedir({workspace!r})\n")
    return python
