"""docs/sandbox.md followed step by step: its quick-start blocks (each preceded by
`<!-- doc-test -->`) run as written in one shell, with Wharf as "your server", the repository's
build directory as `build/`, and free ports instead of 3000 and 4000. If the documented
commands, variables or exit codes drift from what the programs do, this fails."""
import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET

from lib.wharf import base_env, free_port

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOC = os.path.join(REPO, "docs", "sandbox.md")


def doc_blocks():
    text = open(DOC, encoding="utf-8").read()
    return re.findall(r"<!-- doc-test -->\s*```sh\n(.*?)```", text, re.S)


def test_the_documented_variables_are_the_ones_the_sandbox_reads():
    text = open(DOC, encoding="utf-8").read()
    helped = subprocess.run([os.environ.get("SANDBOX_BIN") or os.path.join(REPO, "build",
                                                                           "wharf-sandbox"),
                             "help"], capture_output=True, text=True).stdout
    documented = re.findall(r"`((?:SANDBOX|INTEGRATION)_[A-Z_]+)` / `--([a-z-]+)`", text)
    assert len(documented) >= 7, documented
    for var, flag in documented:
        assert re.search(rf"{var}\s+--{flag}\s", helped), f"{var} / --{flag} not in `help`"


def test_quick_start_runs_as_written(tmp_path, wharf_bin):
    blocks = doc_blocks()
    assert len(blocks) == 4, "the quick start has four runnable steps"
    sandbox_port, partner_port = free_port(), free_port()
    script = "set -euo pipefail\n" + "\n".join(blocks)
    script = script.replace("127.0.0.1:4000", f"127.0.0.1:{sandbox_port}")
    script = script.replace("127.0.0.1:3000", f"127.0.0.1:{partner_port}")
    sandbox_bin = os.environ.get("SANDBOX_BIN") or os.path.join(REPO, "build", "wharf-sandbox")
    script = script.replace("build/wharf-sandbox", sandbox_bin)
    script = re.sub(r"build/wharf(?=\s)", wharf_bin, script)
    env = base_env()
    r = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr + (tmp_path / "server.log").read_text()
    assert "conformant" in r.stdout
    report = json.loads((tmp_path / "conformance.json").read_text())
    assert report["ok"] is True and report["summary"]["failed"] == 0
    assert any(c["id"] == "provision" and c["status"] == "passed" for c in report["checks"])
    suite = ET.parse(tmp_path / "conformance.xml").getroot().find("testsuite")
    assert suite.get("failures") == "0"
