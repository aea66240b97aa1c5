"""The signature checks printed in the docs work on real Fulmen signatures."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from fulmen.webhooks import signature_header

DOCS = Path(__file__).resolve().parents[2] / "docs"
BODY = '{"id":"evt_1","type":"payment.received","data":{"memo":"caf\\u00e9 \u2615"}}'.encode()


def blocks(name: str, lang: str, start: str) -> list[str]:
    text = (DOCS / name).read_text()
    found = [b for b in re.findall(rf"```{lang}\n(.*?)```", text, re.S) if start in b]
    assert found, f"no {lang} block with {start!r} in {name}"
    return found


def python_verify(block: str):
    source = block[block.index("def verify"):]
    source = source[: source.find("\n\n\n")] if "\n\n\n" in source else source
    namespace: dict = {}
    exec("import hashlib, hmac, time\n" + source, namespace)
    return namespace["verify"]


@pytest.mark.parametrize("doc", ["events.md", "integrations.md"])
def test_python_snippet_verifies(doc):
    for block in blocks(doc, "python", "def verify"):
        verify = python_verify(block)
        header = signature_header("whsec_doc", BODY)
        assert verify("whsec_doc", header, BODY)
        assert not verify("whsec_doc", header, BODY + b" ")
        assert not verify("whsec_other", header, BODY)
        stale = signature_header("whsec_doc", BODY, int(time.time()) - 3600)
        assert not verify("whsec_doc", stale, BODY)
        # a forged header with non-ASCII characters is refused, not an exception
        t = header.split(",")[0]
        assert verify("whsec_doc", f"{t},v1=\u00e9", BODY) is False


@pytest.mark.parametrize("doc", ["events.md", "integrations.md"])
def test_javascript_snippet_verifies(doc, tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the JavaScript snippets cannot be run here")
    for block in blocks(doc, "js", "function verify"):
        fn = block[block.index("function verify"):]
        fn = fn[: fn.index("\n}\n") + 3]
        script = tmp_path / "check.js"
        script.write_text(
            'const crypto = require("crypto");\n' + fn +
            "const [secret, header, hex] = process.argv.slice(2);\n"
            "const body = Buffer.from(hex, 'hex');\n"
            "console.log(JSON.stringify([verify(secret, header, body),"
            " verify(secret, header, Buffer.concat([body, Buffer.from(' ')])),"
            " verify('whsec_other', header, body)]));\n"
        )
        header = signature_header("whsec_doc", BODY)
        out = subprocess.run([node, str(script), "whsec_doc", header, BODY.hex()],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "[true,false,false]"
