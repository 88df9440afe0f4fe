"""Runtime: a call to Vercel that hangs until its timeout runs off the I/O threads, so other
Partner API requests on the same (single) I/O thread keep answering at once (issue 12)."""
import os
import threading
import time

import pytest
import requests

from lib import api
from lib.billing import start_billing_pair
from lib.sandbox import add_faults, clear_faults
from test_prepayment import CATALOG, provision_cred, token

TIME_SCALE = float(os.environ.get("WHARF_TEST_TIME_SCALE", "1"))


@pytest.fixture(scope="module")
def rpair(tmp_path_factory, wharf_bin):
    # One I/O thread: anything that blocked it would hold up every other request.
    sb, w = start_billing_pair(tmp_path_factory.mktemp("runtime"), wharf_bin, catalog=CATALOG,
                               WHARF_THREADS=1, WHARF_VERCEL_TIMEOUT_MS=3000)
    yield sb, w
    w.stop()
    sb.stop()


def test_a_hanging_vercel_call_does_not_delay_other_requests(rpair):
    sb, w = rpair
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    rid = provision_cred(sb, iid)["id"]
    tok = token(sb, iid)
    # Vercel's Get Invoice (what Provision Purchase verifies with) hangs past wharf's timeout.
    add_faults(sb, {"mode": "delay", "delayMs": 6000, "method": "GET",
                    "pathContains": "/billing/invoices/"})
    try:
        purchase = {}

        def buy():
            # The sandbox invoices the purchase, then calls wharf's Provision Purchase, which
            # calls Get Invoice back.
            started = time.monotonic()
            purchase["result"] = sb.run("purchase", installationId=iid, resourceId=rid,
                                        amount="2.00")
            purchase["seconds"] = time.monotonic() - started

        t = threading.Thread(target=buy)
        t.start()
        time.sleep(0.3)  # the purchase is waiting on Vercel now
        latencies = []
        while t.is_alive() and len(latencies) < 40:
            started = time.monotonic()
            r = w.get(f"/v1/installations/{iid}", tok)
            latencies.append(time.monotonic() - started)
            assert r.status_code == 200, r.text
            h = requests.get(w.url("/healthz"), timeout=10)
            assert h.status_code == 200
            time.sleep(0.05)
        t.join(timeout=30)
        assert purchase["seconds"] >= 2.5, purchase  # it really waited for Vercel
        # Vercel did not answer in time: the purchase is not acknowledged.
        assert purchase["result"]["status"] != 200, purchase
        assert len(latencies) >= 10
        assert max(latencies) < 0.5 * TIME_SCALE, \
            f"Get Installation took {max(latencies):.3f}s while a Vercel call hung"
    finally:
        clear_faults(sb)


def test_outbox_operator_commands(rpair):
    sb, w = rpair
    from lib.billing import wharf_cli
    r = wharf_cli(w, "outbox", "retry", "obx_doesnotexist")
    assert r.returncode == 1 and "no dead letter with id obx_doesnotexist" in r.stderr, r
    assert '"retried": 0' in r.stdout.replace(":", ": ") or '"retried":0' in r.stdout
    r = wharf_cli(w, "outbox", "retry", "--all")
    assert r.returncode == 1 and "no dead letter at all" in r.stderr, r
    r = wharf_cli(w, "outbox", "drop")
    assert r.returncode == 2 and "give the id of a dead letter" in r.stderr, r
    r = wharf_cli(w, "outbox", "drop", "--all")
    assert r.returncode == 2, r
    r = wharf_cli(w, "outbox", "--state", "dropped")
    assert r.returncode == 0 and r.stdout.strip() == "[]", r
