"""Faults between wharf and Vercel (the real sandbox injecting them): an outage answered
with 503s and 429s loses nothing and is retried with growing, Retry-After-honouring
delays; a timed-out invoice submission that Vercel did process is not billed twice;
wharf killed with -9 in the middle of submitting an invoice, then restarted, delivers it
exactly once; and a night with wharf down is caught up."""
import threading
import time

import pytest
import requests

from lib import api
from lib.billing import (DAY, HOUR, advance, billing_show, calls, iso_of, last_log_id, ms_of,
                         move_wharf_clock, next_month_start, outbox, sandbox_billing_days,
                         sandbox_invoices, set_both, start_billing_pair, wait_until)
from lib.sandbox import add_faults, advance_sandbox_clock, clear_faults, sandbox_clock
from test_resources import provision


@pytest.fixture(scope="module")
def fpair(tmp_path_factory, wharf_bin):
    sb, w = start_billing_pair(tmp_path_factory.mktemp("faults"), wharf_bin,
                               WHARF_VERCEL_TIMEOUT_MS="1000")
    yield sb, w
    w.stop()
    sb.stop()


def fresh_installation(sb, w):
    t0 = next_month_start(sandbox_clock(sb)["nowMs"] + DAY) + 30 * 60 * 1000
    set_both(sb, w, t0)
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    rid = provision(sb, iid, name="pro", plan="sqlite-pro")["id"]
    return iid, rid, t0


def gaps(exchanges):
    at = [e["at"] for e in exchanges]
    return [b - a for a, b in zip(at, at[1:])]


def test_outage_with_503_then_429_loses_nothing_and_backs_off(fpair):
    sb, w = fpair
    iid, rid, t0 = fresh_installation(sb, w)
    before = last_log_id(sb)
    add_faults(sb, {"status": 503, "method": "POST", "pathContains": f"/{iid}/billing", "count": 3})
    advance(sb, w, HOUR)
    # Billing data arrives once the outage is over, after three refused attempts.
    wait_until(lambda: sandbox_billing_days(sb, iid), timeout=30, what="billing data")
    refused = [e for e in calls(sb, before, f"/{iid}/billing") if "fault" in e]
    assert len(refused) == 3, refused
    g = gaps(refused)
    # Exponential backoff with equal jitter from 1 s: [0.5, 1] s, then [1, 2] s.
    assert 400 <= g[0] <= 1500 and 900 <= g[1] <= 2600, g
    clear_faults(sb)

    before = last_log_id(sb)
    add_faults(sb, {"status": 429, "method": "POST", "pathContains": f"/{iid}/billing",
                    "count": 1, "retryAfterS": 3})
    advance(sb, w, HOUR)
    wait_until(lambda: [e for e in calls(sb, before, f"/{iid}/billing") if e["status"] == 201],
               timeout=30, what="retried data")
    mine = calls(sb, before, f"/{iid}/billing")
    assert "fault" in mine[0] and mine[0]["fault"]["status"] == 429
    assert mine[1]["at"] - mine[0]["at"] >= 2900, mine  # Retry-After: 3 honoured
    assert [d for d in outbox(w, "dead") if d["installationId"] == iid] == []
    clear_faults(sb)


def test_timed_out_invoice_that_vercel_processed_is_not_billed_twice(fpair):
    sb, w = fpair
    iid, rid, t0 = fresh_installation(sb, w)
    # Vercel takes 3 s on the first invoice submission (past our 1 s limit) but processes it.
    add_faults(sb, {"mode": "delay", "delayMs": 3000, "method": "POST",
                    "pathContains": f"/{iid}/billing/invoices", "count": 1})
    advance(sb, w, next_month_start(t0) - t0 + HOUR)
    wait_until(lambda: sandbox_invoices(sb, iid), timeout=30, what="invoice")
    time.sleep(3.5)  # the delayed first attempt is processed too — and refused as a duplicate
    invoices = sandbox_invoices(sb, iid)
    assert len(invoices) == 1, invoices
    attempts = [e for e in calls(sb, 0, f"/{iid}/billing/invoices")]
    assert len(attempts) >= 2 and {e["status"] for e in attempts} >= {200, 409}, attempts
    inv = list(invoices.values())[0]
    wait_until(lambda: billing_show(w, iid)["invoices"][0].get("invoiceId") == inv["invoiceId"])
    clear_faults(sb)


def test_kill_9_mid_invoice_delivery_then_restart_delivers_once(fpair):
    sb, w = fpair
    iid, rid, t0 = fresh_installation(sb, w)
    add_faults(sb, {"mode": "delay", "delayMs": 2500, "method": "POST",
                    "pathContains": f"/{iid}/billing/invoices", "count": 1})
    target = next_month_start(t0) + HOUR
    sb_move = requests.post(sb.base + "/_sandbox/clock", json={"setMs": target}, timeout=10)
    assert sb_move.status_code == 200

    def move():
        try:
            requests.post(w.url("/ops/clock"), json={"setMs": target}, timeout=30)
        except requests.RequestException:
            pass  # the process is killed under it
    mover = threading.Thread(target=move)
    mover.start()
    # The pass enqueues the invoice and the outbox sends it at once; Vercel holds it 2.5 s.
    time.sleep(1.0)
    w.kill()
    mover.join()
    time.sleep(3)  # Vercel finishes processing the request whose answer nobody reads
    assert len(sandbox_invoices(sb, iid)) == 1

    w.start()
    move_wharf_clock(w, set_ms=sandbox_clock(sb)["nowMs"])
    wait_until(lambda: [i for i in billing_show(w, iid)["invoices"] if i["state"] != "submitting"],
               timeout=30, what="invoice delivered after restart")
    assert len(sandbox_invoices(sb, iid)) == 1  # no invoice twice
    inv = list(sandbox_invoices(sb, iid).values())[0]
    ours = billing_show(w, iid)["invoices"]
    assert len(ours) == 1 and ours[0]["id"] == inv["externalId"]
    # The created webhook (retried by Vercel while we were down) links Vercel's id.
    wait_until(lambda: billing_show(w, iid)["invoices"][0].get("invoiceId") == inv["invoiceId"],
               timeout=30)
    clear_faults(sb)



def test_a_night_with_wharf_down_is_caught_up(fpair):
    sb, w = fpair
    iid, rid, t0 = fresh_installation(sb, w)  # 00:30 on the 1st
    advance(sb, w, 21 * HOUR)  # 21:30: interim data for day 1 is at Vercel
    day1 = t0 - 30 * 60 * 1000
    w.stop()
    # Down from 21:30 to 03:30 the next day: no data for the end of day 1 was sent.
    advance_sandbox_clock(sb, 6 * HOUR)
    w.start()
    move_wharf_clock(w, set_ms=sandbox_clock(sb)["nowMs"])
    days = {e["day"]: e["body"] for e in sandbox_billing_days(sb, iid)}
    first = iso_of(day1)[:10]
    second = iso_of(day1 + DAY)[:10]
    # Day 1's final figures arrived after its end (timestamp past eod), and day 2's too.
    assert ms_of(days[first]["timestamp"]) >= ms_of(days[first]["eod"]), days[first]
    assert days[first]["eod"] == iso_of(day1 + DAY)
    assert second in days
