"""The sandbox's movable clock (/_sandbox/clock) and fault injection for its Vercel API
(/_sandbox/faults), against a real `wharf-sandbox serve` process. The Vercel API is called
directly with an installation seeded into the sandbox's state file (no partner needed)."""
import base64
import http.client
import json
import math
import os
import threading
import time

import pytest

from lib.sandbox import (Sandbox, add_faults, advance_sandbox_clock, clear_faults,
                         faulted_exchanges, list_faults, move_sandbox_clock, sandbox_bin,
                         sandbox_clock)
from lib.wharf import free_port

ICFG = "icfg_faults0000000000000001"
TOKEN = "tok_faults_access_token_0123456789"
INSTALLATION = f"/v1/installations/{ICFG}"


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    work = tmp_path_factory.mktemp("sandbox-faults")
    s = Sandbox(sandbox_bin(), work, f"http://127.0.0.1:{free_port()}")  # no partner listens
    os.makedirs(s.data_dir, exist_ok=True)
    state = {"installations": {ICFG: {
        "id": ICFG, "accountHex": "a1b2c3", "accountId": "team_a1b2c3", "status": "active",
        "accessTokens": [TOKEN], "users": {},
        "account": {"name": "Team", "url": "https://vercel.com/team", "contact": None}}}}
    with open(os.path.join(s.data_dir, "sandbox-state.json"), "w") as f:
        json.dump(state, f)
    s.start()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def no_rules(sb):
    clear_faults(sb)
    yield
    clear_faults(sb)


def patch_installation(sb, **body):
    return sb.vercel("PATCH", INSTALLATION, token=TOKEN, json_body=body)


def installation(sb):
    return sb.state()["installations"][ICFG]


def last_id(sb):
    log = sb.log()
    return log[-1]["id"] if log else 0


def jwt_claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_clock_moves_forward_only_and_tokens_follow_it(sb):
    before = sandbox_clock(sb)
    assert set(before) == {"nowMs", "now", "offsetMs"}
    assert before["now"].endswith("Z")

    day = 86_400_000
    after = advance_sandbox_clock(sb, day)
    assert after["offsetMs"] >= before["offsetMs"] + day
    assert after["nowMs"] >= before["nowMs"] + day

    # Tokens the sandbox mints carry the moved time.
    r = sb.cli("token", "--kind", "system")
    assert r.returncode == 0, r.stderr
    iat = jwt_claims(json.loads(r.stdout)["token"])["iat"]
    assert after["nowMs"] // 1000 - 1 <= iat <= sandbox_clock(sb)["nowMs"] // 1000 + 1

    target = after["nowMs"] + 3_600_000
    status, body = move_sandbox_clock(sb, set_ms=target)
    assert status == 200, body
    assert body["nowMs"] >= target
    status, body = move_sandbox_clock(sb, set_iso="2040-01-01T00:00:00.000Z")
    assert status == 200, body
    assert body["now"] >= "2040-01-01T00:00:00"

    offset = sandbox_clock(sb)["offsetMs"]
    for kwargs, field in [({"advance_ms": -1}, "advanceMs"), ({"set_ms": target}, "setMs"),
                          ({"set_iso": "2030-01-01T00:00:00Z"}, "set")]:
        status, body = move_sandbox_clock(sb, **kwargs)
        assert status == 400, body
        assert body["error"]["fields"][0]["key"] == field, body
        assert "only moves forward" in body["error"]["message"]
    assert sandbox_clock(sb)["offsetMs"] == offset

    # The CLI reads and moves the same clock.
    r = sb.cli("clock", "--advanceMs", "1000")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["offsetMs"] == offset + 1000
    r = sb.cli("clock", "--advanceMs", "-5")
    assert r.returncode == 1
    assert json.loads(r.stdout)["error"]["fields"][0]["key"] == "advanceMs"


def test_503_rule_with_count_two_then_passes_through(sb):
    start = last_id(sb)
    [rule] = add_faults(sb, {"status": 503, "method": "PATCH", "pathContains": ICFG, "count": 2})
    # Another method or path is not affected.
    assert sb.vercel("GET", INSTALLATION + "/account", token=TOKEN).status_code == 200

    r1 = patch_installation(sb, externalId="first")
    r2 = patch_installation(sb, externalId="second")
    assert (r1.status_code, r2.status_code) == (503, 503)
    assert r1.json()["error"]["code"] == "service_unavailable"
    assert "externalId" not in installation(sb)  # nothing was handled

    r3 = patch_installation(sb, externalId="third")
    assert r3.status_code == 204, r3.text
    assert installation(sb)["externalId"] == "third"

    [listed] = list_faults(sb)
    assert listed["id"] == rule
    assert (listed["hits"], listed["remaining"], listed["active"]) == (2, 0, False)
    faulted = faulted_exchanges(sb, after=start)
    assert [(e["status"], e["fault"]["rule"], e["fault"]["mode"]) for e in faulted] == \
        [(503, rule, "respond")] * 2
    assert faulted[0]["at"] <= faulted[1]["at"]


def test_after_mode_commits_the_change_but_answers_the_fault(sb):
    start = last_id(sb)
    add_faults(sb, {"status": 502, "mode": "after", "method": "PATCH", "count": 1})
    r = patch_installation(sb, externalId="committed-but-lost")
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "bad_gateway"
    assert installation(sb)["externalId"] == "committed-but-lost"
    [e] = faulted_exchanges(sb, after=start)
    assert e["fault"]["mode"] == "after"
    assert e["fault"]["handledStatus"] == 204
    assert e["status"] == 502


def test_429_carries_retry_after_and_the_limit_body(sb):
    add_faults(sb, {"status": 429, "pathContains": "/account", "count": 1, "retryAfterS": 3,
                    "limitResetMs": 1500})
    before = sandbox_clock(sb)["nowMs"]
    r = sb.vercel("GET", INSTALLATION + "/account", token=TOKEN)
    after = sandbox_clock(sb)["nowMs"]
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "3"
    err = r.json()["error"]
    assert err["code"] == "rate_limited"
    limit = err["limit"]
    assert before + 1500 <= limit["resetMs"] <= after + 1500
    assert limit["reset"] == math.ceil(limit["resetMs"] / 1000)
    assert limit["remaining"] == 0
    assert sb.vercel("GET", INSTALLATION + "/account", token=TOKEN).status_code == 200


def test_rule_validation_names_the_field(sb):
    import requests
    r = requests.post(sb.base + "/_sandbox/faults",
                      json={"rules": [{"status": 503}, {"status": 418, "count": 0}]}, timeout=10)
    assert r.status_code == 400
    keys = [f["key"] for f in r.json()["error"]["fields"]]
    assert keys == ["rules[1].status", "rules[1].count"]
    assert list_faults(sb) == []  # nothing added


def test_delay_rule_delays_while_other_requests_are_served(sb):
    delay_ms = 1500
    # Keep-alive connections opened one after another, and each used once, so the sandbox
    # has accepted them all (on different I/O threads) before the delay starts.
    conns = [http.client.HTTPConnection("127.0.0.1", sb.port, timeout=30) for _ in range(4)]
    for c in conns:
        c.request("GET", "/_sandbox/config")
        resp = c.getresponse()
        resp.read()
        assert resp.status == 200
    start = last_id(sb)
    add_faults(sb, {"mode": "delay", "delayMs": delay_ms, "method": "PATCH", "count": 1})

    result = {}

    def delayed():
        t0 = time.monotonic()
        conns[0].request("PATCH", INSTALLATION, body=json.dumps({"externalId": "late"}),
                         headers={"Authorization": f"Bearer {TOKEN}",
                                  "Content-Type": "application/json"})
        resp = conns[0].getresponse()
        resp.read()
        result["status"] = resp.status
        result["elapsed"] = time.monotonic() - t0

    t = threading.Thread(target=delayed)
    t.start()
    time.sleep(0.2)  # the delayed call is in
    served = []
    for c in conns[1:]:
        t0 = time.monotonic()
        c.request("GET", INSTALLATION + "/account", headers={"Authorization": f"Bearer {TOKEN}"})
        resp = c.getresponse()
        resp.read()
        served.append((resp.status, time.monotonic() - t0, t.is_alive()))
    t.join(30)
    for c in conns:
        c.close()

    assert all(status == 200 for status, _, _ in served), served
    assert all(elapsed < 0.5 for _, elapsed, _ in served), served
    assert all(alive for _, _, alive in served), served  # answered while the delay ran
    assert result["status"] == 204
    assert result["elapsed"] >= delay_ms / 1000
    assert installation(sb)["externalId"] == "late"  # handled after the delay
    [e] = faulted_exchanges(sb, after=start)
    assert e["fault"]["mode"] == "delay"
    assert e["fault"]["delayMs"] == delay_ms
    assert e["durationMs"] >= delay_ms
