import json
import os
import subprocess
import sys


def run(args, env):
    return subprocess.run([sys.executable, "-m", "fulmen", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


def test_cli_version_create_account_migrate_and_audit(tmp_path):
    env = {"FULMEN_DATA_DIR": str(tmp_path / "data"), "FULMEN_ADMIN_KEY": "k", "FULMEN_PLUGINS": "none"}
    assert run(["version"], env).stdout.strip()
    r = run(["create-account", "--name", "shell"], env)
    assert r.returncode == 0, r.stderr
    wallet = json.loads(r.stdout)
    assert wallet["name"] == "shell" and wallet["adminkey"]
    assert run(["migrate"], env).returncode == 0
    r = run(["audit"], env)
    assert r.returncode == 0 and "audit ok" in r.stdout
    # break the books behind the host's back: audit must notice
    import sqlite3

    db = sqlite3.connect(tmp_path / "data" / "fulmen.sqlite3")
    db.execute("UPDATE fulmen_wallet SET balance_msat = 5000 WHERE id = ?", (wallet["id"],))
    db.commit()
    r = run(["audit"], env)
    assert r.returncode == 1 and "MISMATCH" in r.stdout and wallet["id"] in r.stdout
