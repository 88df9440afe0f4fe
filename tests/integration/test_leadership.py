"""Of several `wharf serve` processes on one state store, exactly one leads the periodic
passes (billing, reconcile, credential rotation, retention), and /readyz says which: on the
SQLite store (one machine) the election is an flock on <state.db>.leader, which the kernel
frees the moment the leader dies, so a survivor takes over within the 2 s leadership tick."""
import os
import time

import requests

from lib.billing import wait_until


def readyz(w):
    r = requests.get(w.url("/readyz"), timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def test_one_replica_leads_and_a_survivor_takes_over(make_wharf, tmp_path):
    first = make_wharf(name="first")
    doc = readyz(first)
    assert doc["role"] == "leader", doc
    assert doc["store"] == "sqlite:" + os.path.join(first.data_dir, "state.db"), doc
    # A second process on the same data dir (same store): it serves, but does not lead.
    second = make_wharf(env={"WHARF_DATA_DIR": first.data_dir}, name="second")
    assert readyz(second)["role"] == "replica"
    time.sleep(2.5)  # a few leadership ticks: still one leader
    assert [readyz(w)["role"] for w in (first, second)] == ["leader", "replica"]
    # The leader dies (SIGKILL: no clean shutdown); the survivor takes over.
    first.kill()
    wait_until(lambda: readyz(second)["role"] == "leader", timeout=10, what="take-over")
    # The role is set before the line is logged: wait for the line too (slow under ASan).
    wait_until(lambda: "now leads the periodic passes" in open(second.stderr_path).read() +
               open(second.stdout_path).read(), timeout=10, what="the take-over logged")
