"""Team member changes (flows.md F20) through the real wharf-sandbox and the dashboard:
marketplace.member.changed with a role takes effect on the member's next request, NONE ends
their sessions at once, and a change without a role is confirmed with Get Member
Information. Other members' and other installations' sessions are untouched."""
import re

import requests

import pytest

from lib import api
from lib.billing import wait_until
from lib.sandbox import start_pair
from test_resources import provision


@pytest.fixture(scope="module")
def pair(wharf_bin, tmp_path_factory):
    sb, w = start_pair(tmp_path_factory.mktemp("members"), wharf_bin)
    yield sb, w
    w.stop()
    sb.stop()


def sign_in(sb, iid, **who):
    out = sb.run("sso", installationId=iid, **who)
    r = requests.get(out["redirectUrl"], allow_redirects=False, timeout=30)
    assert r.status_code == 303, r.text
    return r.headers["Set-Cookie"].partition("=")[2].split(";")[0]


def page(w, session, path):
    return requests.get(w.url(path), cookies={"wharf_session": session}, allow_redirects=False,
                        timeout=30)


def can_rotate(w, session, rid):
    r = page(w, session, f"/dashboard/resources/{rid}")
    assert r.status_code == 200, r.status_code
    assert ('id="rotate"' in r.text) != ('id="read-only"' in r.text), r.text
    return 'id="rotate"' in r.text


def member_changed(sb, iid, member, role=None):
    payload = {"installationId": iid, "configuration": {"id": iid}, "memberId": member}
    if role is not None:
        payload["role"] = role
    res = sb.run("webhook", type="marketplace.member.changed", installationId=iid,
                 payload=payload)
    assert res["ok"], res


def users(sb, iid):
    return sb.state()["installations"][iid]["users"]


def test_role_changes_apply_on_the_next_request_and_none_ends_sessions(pair):
    sb, w = pair
    iid, other = api.new_installation_id(), api.new_installation_id()
    sb.run("install", installationId=iid)
    sb.run("install", installationId=other)
    rid = provision(sb, iid, name="members")["id"]
    orid = provision(sb, other, name="other")["id"]
    admin = sign_in(sb, iid)
    viewer = sign_in(sb, iid, role="USER")
    admin_id = sb.state()["installations"][iid]["installedBy"]
    viewer_id = next(k for k, u in users(sb, iid).items() if u["role"] == "USER")
    other_admin = sign_in(sb, other)
    assert can_rotate(w, admin, rid) and not can_rotate(w, viewer, rid)
    html = page(w, admin, f"/dashboard/resources/{rid}").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)

    # Promoted and demoted without signing in again.
    member_changed(sb, iid, viewer_id, "ADMIN")
    member_changed(sb, iid, admin_id, "USER")
    assert can_rotate(w, viewer, rid)
    assert not can_rotate(w, admin, rid)
    # The demoted member's writes are refused server-side too.
    r = requests.post(w.url(f"/dashboard/resources/{rid}/rotate"),
                      cookies={"wharf_session": admin}, data={"csrf": csrf},
                      allow_redirects=False, timeout=30)
    assert r.status_code == 403, r.status_code
    # The same member on another installation is untouched (the installer ids differ anyway,
    # so check that installation's admin still can).
    assert can_rotate(w, other_admin, orid)

    # NONE: the member's sessions end at once; the other member stays signed in.
    member_changed(sb, iid, viewer_id, "NONE")
    r = page(w, viewer, "/dashboard")
    assert r.status_code != 200, r.status_code
    assert page(w, admin, "/dashboard").status_code == 200


def test_a_change_without_a_role_is_confirmed_with_get_member(pair):
    sb, w = pair
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    rid = provision(sb, iid, name="confirm")["id"]
    admin = sign_in(sb, iid)
    admin_id = sb.state()["installations"][iid]["installedBy"]
    member_changed(sb, iid, admin_id, "USER")
    assert not can_rotate(w, admin, rid)
    # Vercel (the sandbox) still has them as ADMIN: a change without a role asks it.
    member_changed(sb, iid, admin_id)
    wait_until(lambda: any(e.get("url", "").endswith(f"/installations/{iid}/member/{admin_id}")
                           and e["status"] == 200 for e in sb.log()),
               timeout=30, what="Get Member Information")
    wait_until(lambda: can_rotate(w, admin, rid), timeout=30, what="the ADMIN role back")
