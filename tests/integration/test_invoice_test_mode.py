"""WHARF_INVOICE_TEST_MODE: invoices go to Vercel in test mode (validated in full, never
charged) with the chosen outcome — a provider's pre-launch check of its billing."""
import pytest

from lib import api
from lib.billing import (DAY, HOUR, advance, billing_show, next_month_start, sandbox_invoices,
                         set_both, start_billing_pair, wait_until)
from lib.sandbox import sandbox_clock
from test_resources import provision


@pytest.fixture(scope="module")
def tpair(tmp_path_factory, wharf_bin):
    sb, w = start_billing_pair(tmp_path_factory.mktemp("testmode"), wharf_bin,
                               WHARF_INVOICE_TEST_MODE="overdue")
    yield sb, w
    w.stop()
    sb.stop()


def test_test_mode_invoice_takes_the_chosen_outcome(tpair):
    sb, w = tpair
    t0 = next_month_start(sandbox_clock(sb)["nowMs"] + DAY)
    set_both(sb, w, t0)
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    pro = provision(sb, iid, name="pro", plan="sqlite-pro")
    advance(sb, w, next_month_start(t0) - t0 + HOUR)
    inv = list(sandbox_invoices(sb, iid).values())
    assert len(inv) == 1 and inv[0]["test"] is True and inv[0]["state"] == "overdue", inv
    # The simulated outcome reaches us through the webhooks like a live one: suspension.
    wait_until(lambda: billing_show(w, iid)["invoices"][0]["state"] == "overdue")
    ours = billing_show(w, iid)["invoices"][0]
    assert ours["test"] is True and ours["invoiceId"] == inv[0]["invoiceId"]
    wait_until(lambda: billing_show(w, iid)["invoices"][0].get("suspendedResources"))
    assert pro["id"] in str(ours["items"])
