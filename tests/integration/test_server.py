"""HTTP server behaviour: health/readiness, metrics, request logs and ids, the error
envelope on 404/405, body and header limits, read and idle timeouts, keep-alive, SIGTERM."""
import json
import re
import signal
import socket
import subprocess
import time

import pytest
import requests

from lib import api
from lib.api import assert_error, assert_installation_state, assert_status, upsert_body
from lib.vercel import JwksServer
from lib.wharf import connect, read_http_response, send_all_ignoring_reset, wait_closed


# --- health, readiness, metrics ----------------------------------------------------------------

def test_healthz_and_readyz(wharf):
    for p in ("/healthz", "/readyz"):
        r = requests.get(wharf.url(p), timeout=30)
        assert r.status_code == 200, (p, r.status_code, r.text)


def test_readyz_503_until_jwks_loaded(make_wharf, keyset):
    srv = JwksServer(keyset)
    srv.status = 503
    try:
        w = make_wharf(start=False, jwks_url=srv.url, env={"WHARF_JWKS_MIN_REFRESH_MS": "300"})
        w.start(wait_ready=False)
        w.wait_ready(path="/healthz")  # listening
        r = requests.get(w.url("/readyz"), timeout=30)
        assert r.status_code == 503, (r.status_code, r.text)
        assert requests.get(w.url("/healthz"), timeout=30).status_code == 200
        # Once the JWKS host answers, wharf becomes ready on its own (background retry).
        srv.status = 200
        w.wait_ready(timeout=60)
    finally:
        srv.close()


# A label block; label values may contain braces (route="/v1/installations/{installationId}").
LABELS = r'(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})'


def metric_value(text, name, **labels):
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    found = False
    for m in re.finditer(r"^" + re.escape(name) + LABELS + r"?\s+([0-9.eE+\-]+|NaN|\+Inf)\s*$", text, re.M):
        lab = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1) or ""))
        if all(lab.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
            found = True
    return total if found else None


def test_metrics_exposition(wharf, tokens, installed):
    wharf.request("GET", f"/v1/installations/{installed}", tokens.system(installed))
    wharf.request("GET", f"/v1/installations/{installed}")  # 401
    r = requests.get(wharf.url("/metrics"), timeout=30)
    assert r.status_code == 200
    assert r.headers.get("Content-Type", "").startswith("text/plain"), r.headers
    text = r.text
    assert metric_value(text, "wharf_http_requests_total", method="GET", status="200") is not None, text[:2000]
    assert metric_value(text, "wharf_http_requests_total", method="GET", status="401") is not None, text[:2000]
    assert re.search(r'^wharf_http_requests_total\{[^\n]*route="[^"]+"', text, re.M), text[:2000]
    assert re.search(r"^wharf_http_request_duration_seconds_bucket\{[^}]*le=\"\+Inf\"[^}]*\}", text, re.M)
    assert re.search(r"^wharf_http_request_duration_seconds_count", text, re.M)
    assert re.search(r"^wharf_http_request_duration_seconds_sum", text, re.M)
    assert re.search(r'^wharf_auth_failures_total\{[^}]*reason="', text, re.M), text[:2000]
    assert re.search(r"^wharf_jwks_refreshes_total(\{[^}]*\})?\s", text, re.M)
    # The route label is the route template: raw ids must not blow up label cardinality.
    assert installed not in text, "a raw installation id appears in /metrics"
    # Every sample line parses.
    for line in text.splitlines():
        if line and not line.startswith("#"):
            assert re.match(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})?\s+\S+(\s+\d+)?$", line), line


def test_request_counter_increments(wharf, tokens, installed):
    path = f"/v1/installations/{installed}"

    def count():
        text = wharf.metrics()
        lines = [l for l in text.splitlines() if l.startswith("wharf_http_requests_total{")
                 and 'method="GET"' in l and 'status="404"' in l and "readyz" not in l]
        return sum(float(l.rsplit(None, 1)[1]) for l in lines)

    other = api.new_installation_id()
    before = count()
    for _ in range(3):
        assert_error(wharf.request("GET", f"/v1/installations/{other}", tokens.system(other)), 404)
    # The counter may be bumped just after the response is written: poll (no timing assertion).
    deadline = time.monotonic() + 15
    while count() < before + 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert count() == before + 3
    assert_installation_state(wharf.request("GET", path, tokens.system(installed)))


# --- logs and request ids ---------------------------------------------------------------------

def test_request_log_line_and_request_id(wharf, tokens, installed):
    r = wharf.request("GET", f"/v1/installations/{installed}", tokens.system(installed))
    assert_status(r, 200)
    rid = r.headers.get("X-Request-Id")
    assert rid, dict(r.headers)
    rec = wharf.wait_for_log(lambda x: x.get("msg") == "request" and x.get("rid") == rid)
    assert rec is not None, f"no request log line with rid {rid}; tail:\n{wharf.stderr_tail()}"
    assert rec.get("method") == "GET"
    assert rec.get("status") == 200
    assert isinstance(rec.get("route"), str) and rec["route"], rec
    assert installed not in rec["route"], f"route should be the template: {rec}"
    assert isinstance(rec.get("ms"), (int, float)) and rec["ms"] >= 0, rec
    # Errors carry ids too, and ids are unique.
    r2 = wharf.request("GET", f"/v1/installations/{installed}")
    rid2 = r2.headers.get("X-Request-Id")
    assert rid2 and rid2 != rid
    rec2 = wharf.wait_for_log(lambda x: x.get("msg") == "request" and x.get("rid") == rid2)
    assert rec2 is not None and rec2.get("status") == 401, rec2


def test_every_log_line_is_json(make_wharf, tokens, iid):
    w = make_wharf()
    w.request("PUT", f"/v1/installations/{iid}", tokens.user(iid), json_body=upsert_body())
    w.request("GET", "/nope")
    w.request("GET", f"/v1/installations/{iid}", headers={"Authorization": "Bearer x.y.z"})
    assert w.stop() == 0
    lines = w.log_lines()
    assert lines, "no log output at all"
    bad = []
    for l in lines:
        try:
            if not isinstance(json.loads(l), dict):
                bad.append(l)
        except ValueError:
            bad.append(l)
    assert not bad, f"non-JSON log lines: {bad[:5]}"
    reqs = [json.loads(l) for l in lines if json.loads(l).get("msg") == "request"]
    assert len(reqs) >= 3
    for rec in reqs:
        for k in ("rid", "method", "route", "status", "ms"):
            assert k in rec, rec


# --- routing and the envelope -----------------------------------------------------------------

def test_unknown_route_404_envelope(wharf, tokens, iid):
    assert_error(wharf.request("GET", "/nope"), 404, "not_found")
    assert_error(wharf.request("GET", "/v1/nothing-here", tokens.system(iid)), 404, "not_found")
    assert_error(wharf.request("GET", f"/v1/installations/{iid}/bogus", tokens.system(iid)), 404, "not_found")
    assert_error(wharf.request("GET", "/v1/products/sqlite-db/plans/extra", tokens.system(None)), 404, "not_found")


def test_wrong_method_405_envelope(wharf, tokens, installed):
    r = wharf.request("POST", f"/v1/installations/{installed}", tokens.user(installed), json_body={})
    assert_error(r, 405)
    r = wharf.request("DELETE", "/v1/products/sqlite-db/plans", tokens.system(None))
    assert_error(r, 405)
    r = wharf.request("PUT", f"/v1/installations/{installed}/plans", tokens.user(installed), json_body={})
    assert_error(r, 405)
    assert_error(requests.post(wharf.url("/healthz"), timeout=30), 405)
    assert_installation_state(wharf.request("GET", f"/v1/installations/{installed}", tokens.system(installed)))


# --- limits -----------------------------------------------------------------------------------

def raw_put(port, path, token, body, extra_headers=b""):
    head = (f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n").encode()
    return head + extra_headers + b"\r\n" + body


def padded_upsert(size):
    b = upsert_body()
    b["padding"] = ""
    base = len(json.dumps(b).encode())
    b["padding"] = "x" * max(0, size - base)
    data = json.dumps(b).encode()
    assert len(data) == size or size < base
    return data


def test_body_over_default_limit_413(wharf, tokens, iid):
    data = padded_upsert(1048576 + 4096)
    s = connect(wharf.port)
    try:
        send_all_ignoring_reset(s, raw_put(wharf.port, f"/v1/installations/{iid}", tokens.user(iid), data))
        resp = read_http_response(s)
    finally:
        s.close()
    assert resp is not None, "connection closed without a response"
    status, headers, body, _ = resp
    assert status == 413, (status, body[:300])
    err = json.loads(body)["error"]
    assert err["code"] == "payload_too_large", body
    assert_error(wharf.request("GET", f"/v1/installations/{iid}", tokens.system(iid)), 404)


def test_body_limit_configurable_and_exact(make_wharf, tokens, iid):
    w = make_wharf(env={"WHARF_MAX_BODY_BYTES": "2048"})
    ok = padded_upsert(2048)
    r = w.request("PUT", f"/v1/installations/{iid}", tokens.user(iid), data=ok,
                  headers={"Content-Type": "application/json"})
    assert_installation_state(r)
    too_big = padded_upsert(2049)
    r = w.request("PUT", f"/v1/installations/{iid}", tokens.user(iid), data=too_big,
                  headers={"Content-Type": "application/json"})
    assert_error(r, 413, "payload_too_large")


def test_chunked_body_over_limit_413(make_wharf, tokens, iid):
    w = make_wharf(env={"WHARF_MAX_BODY_BYTES": "4096"})
    tok = tokens.user(iid)
    head = (f"PUT /v1/installations/{iid} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n"
            f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    chunk = b"x" * 1000
    body = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(10)) + b"0\r\n\r\n"
    s = connect(w.port)
    try:
        send_all_ignoring_reset(s, head + body)
        resp = read_http_response(s)
    finally:
        s.close()
    assert resp is not None and resp[0] == 413, resp
    assert json.loads(resp[2])["error"]["code"] == "payload_too_large"


def test_huge_header_rejected(wharf):
    req = (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    s = connect(wharf.port)
    try:
        send_all_ignoring_reset(s, req)
        resp = read_http_response(s)
    except ConnectionError:
        resp = None
    finally:
        s.close()
    assert resp is not None, "connection closed without a response"
    assert resp[0] in (431, 400), resp[:2]
    assert requests.get(wharf.url("/healthz"), timeout=30).status_code == 200


def test_many_headers_total_over_limit_rejected(wharf):
    hdrs = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(200))  # ~21 KiB
    s = connect(wharf.port)
    try:
        send_all_ignoring_reset(s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + hdrs + b"\r\n")
        resp = read_http_response(s)
    except ConnectionError:
        resp = None
    finally:
        s.close()
    assert resp is not None and resp[0] in (431, 400), resp and resp[:2]


# --- timeouts and keep-alive ------------------------------------------------------------------

def test_slow_client_disconnected_and_server_stays_responsive(make_wharf):
    w = make_wharf(env={"WHARF_READ_TIMEOUT_MS": "1500", "WHARF_THREADS": "2"})
    slow = []
    try:
        for _ in range(50):
            s = connect(w.port)
            s.sendall(b"GET /heal")   # half a request line, then silence
            slow.append(s)
        # While 50 slow sockets are open, health checks answer promptly.
        for _ in range(5):
            r = requests.get(w.url("/healthz"), timeout=10)
            assert r.status_code == 200
        # Each slow socket is dropped after the read timeout (408 or plain close).
        for s in slow:
            got = wait_closed(s, timeout=30)
            assert got == b"" or got.startswith(b"HTTP/1.1 408") or got.startswith(b"HTTP/1.1 400"), got[:100]
    finally:
        for s in slow:
            s.close()
    assert requests.get(w.url("/healthz"), timeout=10).status_code == 200


def test_trickling_client_cut_off_by_total_read_timeout(make_wharf):
    """A client that sends one byte every 200 ms never stays idle long, but the whole
    request must still arrive within WHARF_READ_TIMEOUT_MS."""
    w = make_wharf(env={"WHARF_READ_TIMEOUT_MS": "1500"})
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"y" * 150 + b"\r\n\r\n"
    s = connect(w.port)
    closed = False
    start = time.monotonic()
    try:
        for i in range(len(request)):
            try:
                s.sendall(request[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            # A response or EOF means the server gave up on us (or answered).
            s.settimeout(0.2)
            try:
                data = s.recv(4096)
                if data == b"" or data.startswith(b"HTTP/1.1 408") or data.startswith(b"HTTP/1.1 400"):
                    closed = True
                    break
                if data.startswith(b"HTTP/1.1 200"):
                    pytest.fail("the trickled request was served; it took "
                                f"{time.monotonic() - start:.1f}s, over the 1.5 s read timeout")
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed = True
                break
    finally:
        s.close()
    assert closed, f"trickling client never cut off ({time.monotonic() - start:.1f}s)"


def test_idle_keepalive_connection_closed(make_wharf):
    w = make_wharf(env={"WHARF_IDLE_TIMEOUT_MS": "1000"})
    s = connect(w.port)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        resp = read_http_response(s)
        assert resp and resp[0] == 200
        assert wait_closed(s, timeout=30) == b""
    finally:
        s.close()


def test_keep_alive_many_requests_one_connection(wharf, tokens, installed):
    s = connect(wharf.port)
    try:
        for i in range(5):
            tok = tokens.system(installed)
            s.sendall((f"GET /v1/installations/{installed} HTTP/1.1\r\nHost: x\r\n"
                       f"Authorization: Bearer {tok}\r\n\r\n").encode())
            resp = read_http_response(s)
            assert resp is not None, f"connection closed after {i} requests"
            assert resp[0] == 200, resp[:3]
            assert resp[1].get("connection", "").lower() != "close"
        # Errors don't break the connection either.
        s.sendall(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        resp = read_http_response(s)
        assert resp[0] == 404
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_http_response(s)[0] == 200
    finally:
        s.close()


def test_keep_alive_with_requests_session(wharf, tokens, installed):
    with requests.Session() as sess:
        for _ in range(10):
            r = sess.get(wharf.url(f"/v1/installations/{installed}"),
                         headers={"Authorization": "Bearer " + tokens.system(installed)}, timeout=30)
            assert_installation_state(r)
        r = sess.put(wharf.url(f"/v1/installations/{installed}"), json=upsert_body(),
                     headers={"Authorization": "Bearer " + tokens.user(installed)}, timeout=30)
        assert_installation_state(r)


def test_bad_request_line_answered_400(wharf):
    s = connect(wharf.port)
    try:
        s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        try:
            resp = read_http_response(s)
        except ConnectionError:
            resp = None
    finally:
        s.close()
    assert resp is None or resp[0] == 400, resp
    assert requests.get(wharf.url("/healthz"), timeout=30).status_code == 200


# --- SIGTERM ----------------------------------------------------------------------------------

def test_sigterm_exits_zero_and_stops_accepting(make_wharf):
    w = make_wharf()
    idle = connect(w.port)  # an idle keep-alive client must not hold up shutdown
    idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_http_response(idle)[0] == 200
    w.proc.send_signal(signal.SIGTERM)
    try:
        code = w.proc.wait(20)
    except subprocess.TimeoutExpired:
        pytest.fail("wharf did not exit within 20 s of SIGTERM")
    finally:
        idle.close()
    assert code == 0, f"exit status {code}"
    with pytest.raises(requests.ConnectionError):
        requests.get(w.url("/healthz"), timeout=5)


def test_sigterm_lets_in_flight_request_finish(make_wharf, tokens, iid):
    """A request whose body is still arriving when SIGTERM comes is completed (drain)."""
    w = make_wharf()
    body = json.dumps(upsert_body()).encode()
    tok = tokens.user(iid)
    s = connect(w.port)
    try:
        head = (f"PUT /v1/installations/{iid} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        s.sendall(head + body[:10])
        time.sleep(0.3)
        w.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        s.sendall(body[10:])
        resp = read_http_response(s)
    finally:
        s.close()
    assert resp is not None and resp[0] == 200, resp and resp[:3]
    assert w.proc.wait(20) == 0
