"""Installation credential rotation (flows.md F18, vercel-api.md §4.4) through the real
wharf-sandbox: `wharf credentials rotate` against a running server, the calls Wharf sends
afterwards carrying the new token, the rotation schedule (WHARF_CREDENTIAL_ROTATION_DAYS and a
token's known expiry) on the test clock, and refusals that change nothing."""
import json
import subprocess

import pytest

from lib import api
from lib.billing import DAY, HOUR, advance, start_billing_pair
from test_resources import provision

ROTATE = "/credentials/rotate"


@pytest.fixture(scope="module")
def pair(tmp_path_factory, wharf_bin):
    sb, w = start_billing_pair(tmp_path_factory.mktemp("credentials"), wharf_bin,
                               WHARF_CREDENTIAL_ROTATION_DAYS="30")
    yield sb, w
    w.stop()
    sb.stop()


def cli(w, *args, secret=None):
    """`wharf <args>` with the running server's own configuration (its store, its Vercel)."""
    env = w.build_env()
    if secret is not None:
        env["INTEGRATION_CLIENT_SECRET"] = secret
    return subprocess.run([w.binary, *args], env=env, capture_output=True, text=True, timeout=60)


def tokens_of(sb, iid):
    inst = sb.state()["installations"][iid]
    return inst["accessTokens"], inst.get("tokenRotations", [])


def bearer_tails(sb, iid, after, path_part):
    """The redacted Authorization tails of Wharf's calls to Vercel for an installation."""
    out = []
    for e in sb.log(after):
        if f"/installations/{iid}" in e.get("url", "") and path_part in e.get("url", ""):
            auth = e.get("requestHeaders", {}).get("authorization") or \
                e.get("requestHeaders", {}).get("Authorization", "")
            out.append(auth[-6:])
    return out


def last_exchange_id(sb):
    log = sb.log()
    return log[-1]["id"] if log else 0


def test_cli_rotation_is_used_by_the_next_calls(pair):
    sb, w = pair
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    provision(sb, iid, name="rot", plan="sqlite-pro")
    before, _ = tokens_of(sb, iid)
    assert len(before) == 1

    r = cli(w, "credentials", "rotate", iid)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out[0]["installation"] == iid and out[0]["rotated"] is True, out
    assert "expiresAt" in out[0], out

    after, rotations = tokens_of(sb, iid)
    assert len(after) == 2 and after[0] == before[0], "the old token stays valid at Vercel"
    assert len(rotations) == 1
    new = after[-1]
    # The rotation call itself carried the old token and the client secret.
    rot = [e for e in sb.log() if e.get("url", "").endswith(f"/installations/{iid}{ROTATE}")]
    assert rot and rot[-1]["status"] == 200, rot

    # The running server's next calls to Vercel carry the new token, read at send time.
    mark = last_exchange_id(sb)
    advance(sb, w, 2 * HOUR)
    tails = bearer_tails(sb, iid, mark, "/billing")
    assert tails, "no billing call was sent after the rotation"
    assert set(tails) == {new[-6:]}, (tails, new[-6:])


def test_refused_rotation_changes_nothing(pair):
    sb, w = pair
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    r = cli(w, "credentials", "rotate", iid, secret="not-the-client-secret")
    assert r.returncode == 1, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out[0]["rotated"] is False and out[0]["status"] == 403, out
    assert "client_secret" in out[0]["error"], out
    tokens, rotations = tokens_of(sb, iid)
    assert len(tokens) == 1 and rotations == []
    # Still the original token on the next call.
    mark = last_exchange_id(sb)
    provision(sb, iid, name="after-refusal", plan="sqlite-pro")
    advance(sb, w, 2 * HOUR)
    tails = bearer_tails(sb, iid, mark, "/billing")
    assert tails and set(tails) == {tokens[0][-6:]}, tails


def test_unknown_installation_and_bad_usage(pair):
    sb, w = pair
    r = cli(w, "credentials", "rotate", "icfg_doesnotexist00000000000")
    assert r.returncode == 1
    assert "not an active installation" in json.loads(r.stdout)[0]["error"]
    r = cli(w, "credentials", "rotate")
    assert r.returncode == 2 and "usage: wharf credentials rotate" in r.stderr
    r = cli(w, "credentials", "retire", "icfg_x")
    assert r.returncode == 2


def test_schedule_rotates_old_tokens_then_before_expiry(pair):
    sb, w = pair
    iid = api.new_installation_id()
    sb.run("install", installationId=iid)
    provision(sb, iid, name="sched", plan="sqlite-pro")
    # Younger than 30 days: nothing to do (other installations of this module may rotate).
    advance(sb, w, 10 * DAY)
    assert tokens_of(sb, iid)[1] == []
    # Older than WHARF_CREDENTIAL_ROTATION_DAYS=30: rotated by the next check.
    out = advance(sb, w, 21 * DAY)
    assert out["credentialsRotated"] >= 1, out
    tokens, rotations = tokens_of(sb, iid)
    assert len(rotations) == 1 and len(tokens) == 2
    # `--due` finds nothing more for it right after.
    r = cli(w, "credentials", "rotate", "--due")
    assert r.returncode == 0, r.stdout + r.stderr
    assert iid not in [x["installation"] for x in json.loads(r.stdout)]
    # 30 days on, the age rule rotates it again; calls use the newest token throughout.
    advance(sb, w, 30 * DAY)
    tokens, rotations = tokens_of(sb, iid)
    assert len(rotations) == 2 and len(tokens) == 3
    mark = last_exchange_id(sb)
    advance(sb, w, 2 * HOUR)
    tails = bearer_tails(sb, iid, mark, "/billing")
    assert tails and set(tails) == {tokens[-1][-6:]}, tails
