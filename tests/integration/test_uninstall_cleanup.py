"""Uninstall cleanup never stalls (docs/decisions.md): an uninstall whose finalization cannot
complete (the final invoice stays unpaid, or Vercel reports the installation gone) has the
resources it left behind suspended, then deleted after WHARF_UNINSTALL_GRACE_DAYS, against the
real sandbox with both clocks moved together."""
import pytest

from lib import api
from lib.billing import (DAY, HOUR, advance, billing_show, next_month_start, sandbox_invoices,
                         set_both, start_billing_pair, wait_until)
from lib.sandbox import add_faults, clear_faults, sandbox_clock
from test_resources import db_files, provision, q, secrets_of

GRACE_DAYS = 3


@pytest.fixture(scope="module")
def gpair(tmp_path_factory, wharf_bin):
    sb, w = start_billing_pair(tmp_path_factory.mktemp("cleanup"), wharf_bin,
                               WHARF_UNINSTALL_GRACE_DAYS=GRACE_DAYS)
    yield sb, w
    w.stop()
    sb.stop()


def fresh_month(sb, w):
    t = next_month_start(sandbox_clock(sb)["nowMs"] + DAY) + 30 * 60 * 1000
    set_both(sb, w, t)
    return t


def select_one(res):
    return q(secrets_of(res), {"sql": "select 1"})


def uninstall_with_a_paid_database(sb, w):
    fresh_month(sb, w)
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    pro = provision(sb, iid, name="pro", plan="sqlite-pro")
    advance(sb, w, 10 * DAY)
    return iid, pro


def test_an_unpaid_final_invoice_suspends_then_deletes_the_leftovers(gpair):
    sb, w = gpair
    iid, pro = uninstall_with_a_paid_database(sb, w)
    out = sb.run("uninstall", installationId=iid, cascadeResourceDeletion=False, webhook=False)
    assert out["response"] == {"finalized": False}, out
    advance(sb, w, HOUR)
    invoices = list(sandbox_invoices(sb, iid).values())
    assert len(invoices) == 1 and invoices[0]["final"] is True, invoices
    # The invoice is never paid. Within the grace period the database keeps serving.
    advance(sb, w, (GRACE_DAYS - 1) * DAY)
    assert select_one(pro).status_code == 200
    assert billing_show(w, iid)["billing"]["leftoversSuspendedAt"] is None
    # The grace period ended without finalization: suspended, its data kept.
    advance(sb, w, DAY)
    state = billing_show(w, iid)
    assert state["finalized"] is False
    assert state["billing"]["leftoversSuspendedAt"], state
    r = select_one(pro)
    assert r.status_code == 403 and "suspended" in r.text, r.text
    assert db_files(w, pro["id"])
    # A grace period after the suspension: deprovisioned, the invoice record kept.
    advance(sb, w, (GRACE_DAYS - 1) * DAY)
    assert db_files(w, pro["id"])
    advance(sb, w, DAY + HOUR)
    wait_until(lambda: not db_files(w, pro["id"]), what="leftover database deprovisioned")
    assert select_one(pro).status_code in (401, 404)
    state = billing_show(w, iid)
    assert state["billing"]["leftoversDeletedAt"], state
    assert [i["id"] for i in state["invoices"]] == [invoices[0]["externalId"]]


def test_an_installation_gone_at_vercel_suspends_at_once(gpair):
    sb, w = gpair
    iid, pro = uninstall_with_a_paid_database(sb, w)
    # Vercel refuses the final invoice: the installation is gone there.
    add_faults(sb, {"status": 410, "method": "POST",
                    "pathContains": f"/installations/{iid}/billing/invoices"})
    try:
        out = sb.run("uninstall", installationId=iid, cascadeResourceDeletion=False,
                     webhook=False)
        assert out["response"] == {"finalized": False}, out
        advance(sb, w, HOUR)
        wait_until(lambda: billing_show(w, iid)["billing"]["gone"], what="gone recorded")
    finally:
        clear_faults(sb)
    state = billing_show(w, iid)
    assert state["billing"]["leftoversSuspendedAt"], state
    r = select_one(pro)
    assert r.status_code == 403 and "suspended" in r.text, r.text
    assert db_files(w, pro["id"])
    advance(sb, w, (GRACE_DAYS - 1) * DAY)
    assert db_files(w, pro["id"])
    advance(sb, w, DAY + HOUR)
    wait_until(lambda: not db_files(w, pro["id"]), what="leftover database deprovisioned")
    assert select_one(pro).status_code in (401, 404)
    assert billing_show(w, iid)["billing"]["leftoversDeletedAt"]
