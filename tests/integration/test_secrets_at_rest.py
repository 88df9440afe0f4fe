"""credentials.access_token is encrypted at rest and never logged; bearer tokens and
Authorization headers never reach the logs."""
import base64
import os

from lib import api
from lib.api import assert_installation_state, upsert_body


def encodings(secret):
    raw = secret.encode()
    return {
        "raw": raw,
        "hex": raw.hex().encode(),
        "base64": base64.b64encode(raw),
        "base64url": base64.urlsafe_b64encode(raw).rstrip(b"="),
        "utf16": secret.encode("utf-16-le"),
    }


def scan(paths, secrets_):
    """Return [(path, secret, encoding)] for every occurrence."""
    hits = []
    for p in paths:
        try:
            with open(p, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        for s in secrets_:
            for name, enc in encodings(s).items():
                if enc in data:
                    hits.append((p, s, name))
    return hits


def data_files(w):
    out = []
    for root, _dirs, files in os.walk(w.data_dir):
        out += [os.path.join(root, f) for f in files]
    if w.state_url:  # WHARF_TEST_STATE=postgres: the state is the database, dumped
        out.append(w.state_dump())
    return out


def test_access_token_not_in_database_or_logs(make_wharf, tokens, iid):
    w = make_wharf()
    tok1 = api.new_access_token()
    r = w.request("PUT", f"/v1/installations/{iid}", tokens.user(iid), json_body=upsert_body(tok1),
                  idem="idem-secret-1")
    assert_installation_state(r)
    assert tok1 not in r.text
    files = data_files(w)
    state = "state.pgdump.sql" if w.state_url else "state.db"
    assert any(os.path.basename(f) == state for f in files), files
    assert scan(files + [w.stderr_path, w.stdout_path], [tok1]) == []

    # Re-upsert with a new token (also through the idempotency path) and restart (WAL checkpoint).
    tok2 = api.new_access_token()
    assert_installation_state(w.request("PUT", f"/v1/installations/{iid}", tokens.user(iid),
                                        json_body=upsert_body(tok2), idem="idem-secret-2"))
    assert scan(data_files(w) + [w.stderr_path, w.stdout_path], [tok1, tok2]) == []
    assert w.stop() == 0
    files = data_files(w)
    assert scan(files + [w.stderr_path, w.stdout_path], [tok1, tok2]) == []
    w.start()
    assert_installation_state(w.request("GET", f"/v1/installations/{iid}", tokens.system(iid)))
    assert scan(data_files(w) + [w.stderr_path, w.stdout_path], [tok1, tok2]) == []


def test_bearer_tokens_and_authorization_never_logged(make_wharf, tokens, iid):
    w = make_wharf()
    used = []

    def t(x):
        used.append(x)
        return x

    w.request("PUT", f"/v1/installations/{iid}", t(tokens.user(iid)), json_body=upsert_body())
    w.request("GET", f"/v1/installations/{iid}", t(tokens.system(iid)))
    w.request("GET", f"/v1/installations/{iid}", t(tokens.user(iid)))               # 403
    w.request("GET", f"/v1/installations/{iid}", t(tokens.system(iid, exp=1)))      # 401 expired
    w.request("GET", f"/v1/installations/{iid}", t(tokens.system(iid, sign={"tamper": True})))
    w.request("GET", f"/v1/installations/{iid}", headers={"Authorization": "Basic c2VjcmV0OnBhc3N3b3Jk"})
    w.request("GET", f"/v1/installations/{iid}", headers={"Authorization": "Bearer not-a-jwt-secret-value"})
    w.request("PUT", f"/v1/installations/{iid}", t(tokens.user(iid)), data=b"{broken",
              headers={"Content-Type": "application/json"})
    w.stop()
    log = w.log_text() + open(w.stdout_path, errors="replace").read()
    for tok in used:
        for part in [tok] + tok.split(".")[1:]:   # neither the token nor its payload/signature
            assert part not in log, f"token material logged: {part[:40]}..."
    assert "c2VjcmV0OnBhc3N3b3Jk" not in log
    assert "not-a-jwt-secret-value" not in log
