"""Authentication end to end (spec §2): every 401 and 403 case, X-Vercel-Auth handling, the
per-route mode table, role and installation binding, JWKS rotation and the refresh throttle."""
import re
import secrets
import threading
import time

import pytest

from lib import api
from lib.api import assert_error, assert_installation_state, upsert_body
from lib.vercel import ISSUER, REMOVE, JwksServer, KeySet, Tokens, new_rsa_key
from lib.wharf import CLIENT_ID


def inst(iid):
    return f"/v1/installations/{iid}"


def get_inst(wharf, iid, token, **kw):
    return wharf.request("GET", inst(iid), token, **kw)


# --- positive controls -------------------------------------------------------------------------

def test_valid_system_token_reads(wharf, tokens, installed):
    assert_installation_state(get_inst(wharf, installed, tokens.system(installed)))


def test_bearer_scheme_is_case_insensitive(wharf, tokens, installed):
    r = wharf.request("GET", inst(installed), headers={"Authorization": "bearer " + tokens.system(installed)})
    assert_installation_state(r)


@pytest.mark.parametrize("claims", [
    {"sub": None},                              # system sub documented as possibly null
    {"account_id": REMOVE},                     # account_id optional for system tokens
    {"type": REMOVE},
    {"nbf": REMOVE, "iat": REMOVE},             # only exp is required
    {"extra_claim": "tolerated", "jti": "abc"},
], ids=["sub-null", "no-account_id", "no-type", "no-nbf-iat", "extra-claims"])
def test_system_claim_variants_accepted(wharf, tokens, installed, claims):
    assert_installation_state(get_inst(wharf, installed, tokens.system(installed, **claims)))


def test_clock_skew_within_leeway_accepted(wharf, tokens, installed):
    now = int(time.time())
    assert_installation_state(get_inst(wharf, installed, tokens.system(installed, exp=now - 3)))
    assert_installation_state(get_inst(wharf, installed, tokens.system(installed, nbf=now + 3, iat=now + 3)))


# --- 401: missing / malformed / invalid tokens ------------------------------------------------

@pytest.mark.parametrize("header", [
    None,
    "",
    "Bearer",
    "Bearer ",
    "Basic dXNlcjpwYXNz",
    "Token abc",
    "Bearer abc",
    "Bearer a.b",
    "Bearer a.b.c",
    "Bearer ...",
    "Bearer eyJhbGciOiJSUzI1NiJ9.e30.",
], ids=["missing", "empty", "scheme-only", "scheme-space", "basic", "other-scheme", "one-part",
        "two-parts", "garbage-three-parts", "empty-parts", "empty-signature"])
def test_malformed_authorization_401(wharf, installed, header):
    r = wharf.request("GET", inst(installed), headers={"Authorization": header})
    assert_error(r, 401, "unauthorized")


def _now():
    return int(time.time())


# Each case: (id, function(tokens, iid) -> token)
BAD_TOKENS = [
    ("expired", lambda t, i: t.system(i, exp=_now() - 60)),
    ("expired-long-ago", lambda t, i: t.system(i, iat=_now() - 7200, nbf=_now() - 7200, exp=_now() - 3600)),
    ("no-exp", lambda t, i: t.system(i, exp=REMOVE)),
    ("exp-string", lambda t, i: t.system(i, exp=str(_now() + 300))),
    ("nbf-future", lambda t, i: t.system(i, nbf=_now() + 120)),
    ("iat-future", lambda t, i: t.system(i, iat=_now() + 120, nbf=REMOVE)),
    ("wrong-iss", lambda t, i: t.system(i, issuer="https://evil.example.com")),
    ("iss-trailing-slash", lambda t, i: t.system(i, issuer=ISSUER + "/")),
    ("no-iss", lambda t, i: t.system(i, iss=REMOVE)),
    ("wrong-aud", lambda t, i: t.system(i, aud="oac_someoneelse")),
    ("no-aud", lambda t, i: t.system(i, aud=REMOVE)),
    ("bad-signature", lambda t, i: t.system(i, sign={"tamper": True})),
    ("signed-by-other-key", lambda t, i: t.system(i, sign={"signing_key": new_rsa_key()})),
    ("unknown-kid", lambda t, i: t.system(i, sign={"header": {"kid": "kid_" + secrets.token_hex(6)}})),
    ("no-kid", lambda t, i: t.system(i, sign={"header": {"kid": REMOVE}})),
    ("alg-none", lambda t, i: t.system(i, sign={"alg": "none"})),
    ("alg-None", lambda t, i: t.system(i, sign={"alg": "none", "header": {"alg": "None"}})),
    ("alg-none-with-rs256-signature", lambda t, i: t.system(i, sign={"header": {"alg": "none"}})),
    ("hs256-with-public-key", lambda t, i: t.system(i, sign={"alg": "HS256"})),
    ("rs512-not-pinned-alg", lambda t, i: t.system(i, sign={"alg": "RS512"})),
    ("ps256-not-pinned-alg", lambda t, i: t.system(i, sign={"alg": "PS256"})),
    ("header-not-json", lambda t, i: t.system(i, sign={"raw_header": b"not json"})),
    ("payload-not-json", lambda t, i: t.raw({}, raw_payload=b"not json")),
    ("payload-array", lambda t, i: t.raw({}, raw_payload=b"[1,2]")),
    ("empty-signature", lambda t, i: t.system(i, sign={"signature": b""})),
    # claim-set validation (§2.3/§2.4)
    ("user-bad-sub", lambda t, i: t.user(i, sub="user:d4e5f6")),
    ("user-sub-non-hex", lambda t, i: t.user(i, sub="account:xyz:user:d4e5f6")),
    ("user-bad-role", lambda t, i: t.user(i, role="OWNER")),
    ("user-no-account_id", lambda t, i: t.user(i, account_id=REMOVE)),
    ("user-no-installation_id", lambda t, i: t.user(i, installation_id=REMOVE)),
    ("system-sub-non-hex", lambda t, i: t.system(i, sub="account:not-hex!")),
    ("system-sub-user-shape", lambda t, i: t.system(i, sub="account:a1b2:team:c3")),
    ("installation_id-number", lambda t, i: t.system(i, installation_id=12345)),
]


@pytest.mark.parametrize("make", [c[1] for c in BAD_TOKENS], ids=[c[0] for c in BAD_TOKENS])
def test_invalid_token_401(wharf, tokens, installed, make):
    tok = make(tokens, installed)
    r = get_inst(wharf, installed, tok)
    assert_error(r, 401, "unauthorized")


def test_invalid_user_token_on_write_401(wharf, tokens, installed):
    for tok in (tokens.user(installed, exp=_now() - 60), tokens.user(installed, sign={"tamper": True}),
                tokens.user(installed, sign={"alg": "none"})):
        r = wharf.request("PUT", inst(installed), tok, json_body=upsert_body())
        assert_error(r, 401, "unauthorized")


def test_auth_before_validation(wharf, iid):
    # No token and a broken body: authentication is decided first.
    r = wharf.request("PUT", inst(iid), data=b"{oops", headers={"Content-Type": "application/json"})
    assert_error(r, 401, "unauthorized")


def test_jku_and_x5u_headers_ignored(wharf, tokens, installed):
    attacker = KeySet(1)
    evil = JwksServer(attacker)
    try:
        claims = tokens.system_claims(installed)
        tok = attacker.sign(claims, header={"jku": evil.url, "x5u": evil.url})
        assert_error(get_inst(wharf, installed, tok), 401, "unauthorized")
        assert evil.fetches == 0, "wharf fetched keys from a URL named in the token header"
    finally:
        evil.close()


# --- 403: mode, role, installation binding ----------------------------------------------------

def test_user_token_on_system_read_accepted_and_still_bound(wharf, tokens, installed):
    # Lenient reads (§2.6 robustness note, §10 q13): Get Installation is documented System-only,
    # but a user token of either role reads it too, for its own installation only.
    for role in ("ADMIN", "USER"):
        assert_installation_state(get_inst(wharf, installed, tokens.user(installed, role=role)))
        assert_installation_state(get_inst(wharf, installed, tokens.user(installed, role=role),
                                           auth_mode="user"))
        other = api.new_installation_id()
        assert_error(get_inst(wharf, installed, tokens.user(other, role=role)), 403, "forbidden")


def test_system_token_on_user_routes_403(wharf, tokens, installed):
    r = wharf.request("PUT", inst(installed), tokens.system(installed), json_body=upsert_body())
    assert_error(r, 403, "forbidden")
    r = wharf.request("PATCH", inst(installed), tokens.system(installed), json_body={})
    assert_error(r, 403, "forbidden")


def test_user_role_cannot_write(wharf, tokens, installed):
    user = tokens.user(installed, role="USER")
    assert_error(wharf.request("PUT", inst(installed), user, json_body=upsert_body()), 403, "forbidden")
    assert_error(wharf.request("PATCH", inst(installed), tokens.user(installed, role="USER"), json_body={}),
                 403, "forbidden")
    assert_error(wharf.request("DELETE", inst(installed), tokens.user(installed, role="USER")), 403, "forbidden")
    assert_installation_state(get_inst(wharf, installed, tokens.system(installed)))  # not deleted


def test_installation_mismatch_403(wharf, tokens, installed):
    other = api.new_installation_id()
    assert_error(get_inst(wharf, installed, tokens.system(other)), 403, "forbidden")
    assert_error(wharf.request("PATCH", inst(installed), tokens.user(other), json_body={}), 403, "forbidden")
    assert_error(wharf.request("DELETE", inst(installed), tokens.user(other)), 403, "forbidden")
    assert_error(wharf.request("DELETE", inst(installed), tokens.system(other)), 403, "forbidden")
    assert_error(wharf.request("GET", inst(installed) + "/plans", tokens.system(other)), 403, "forbidden")
    assert_error(wharf.request("GET", inst(installed) + "/resources/res_x/plans", tokens.system(other)),
                 403, "forbidden")
    assert_installation_state(get_inst(wharf, installed, tokens.system(installed)))


def test_system_token_without_installation_on_installation_route_403(wharf, tokens, installed):
    assert_error(get_inst(wharf, installed, tokens.system(None)), 403, "forbidden")


def test_user_token_on_product_plans_accepted(wharf, tokens, iid):
    r = wharf.request("GET", "/v1/products/sqlite-db/plans", tokens.user(iid, role="USER"))
    assert r.status_code == 200 and r.json()["plans"], api.describe(r)


def test_x_vercel_auth_contradicting_claims_403(wharf, tokens, installed):
    # DELETE allows both modes, so only the contradiction can make these fail.
    r = wharf.request("DELETE", inst(installed), tokens.system(installed), auth_mode="user")
    assert_error(r, 403, "forbidden")
    r = wharf.request("DELETE", inst(installed), tokens.user(installed), auth_mode="system")
    assert_error(r, 403, "forbidden")
    assert_installation_state(get_inst(wharf, installed, tokens.system(installed)))


def test_x_vercel_auth_matching_and_case_insensitive(wharf, tokens, installed):
    for mode in ("system", "System", "SYSTEM"):
        assert_installation_state(get_inst(wharf, installed, tokens.system(installed), auth_mode=mode))
    r = wharf.request("PATCH", inst(installed), tokens.user(installed), auth_mode="User", json_body={})
    assert_installation_state(r)


def test_x_vercel_auth_unknown_value_grants_nothing(wharf, tokens, installed):
    # §1 allows further values of the header; whatever wharf does with one, it must not let a
    # token act outside the modes its claims allow.
    r = wharf.request("PATCH", inst(installed), tokens.system(installed), auth_mode="robot", json_body={})
    assert_error(r, r.status_code)
    assert r.status_code in (400, 401, 403), api.describe(r)
    r = wharf.request("PUT", inst(installed), tokens.system(installed), auth_mode="robot", json_body=upsert_body())
    assert_error(r, r.status_code)
    assert r.status_code in (400, 401, 403), api.describe(r)
    r = wharf.request("PUT", inst(installed), tokens.user(installed, role="USER"), auth_mode="robot",
                      json_body=upsert_body())
    assert r.status_code in (400, 401, 403), api.describe(r)


def test_auth_failures_counted_in_metrics(wharf, installed):
    def total(text):
        return sum(float(m.group(1)) for m in
                   re.finditer(r'^wharf_auth_failures_total\{[^}]*reason="[^"]+"[^}]*\}\s+([0-9.eE+]+)',
                               text, re.M))

    before = total(wharf.metrics())
    assert_error(wharf.request("GET", inst(installed)), 401)
    assert_error(wharf.request("GET", inst(installed), headers={"Authorization": "Bearer a.b.c"}), 401)
    deadline = time.monotonic() + 15
    after = total(wharf.metrics())
    while after < before + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        after = total(wharf.metrics())
    assert after >= before + 2, (before, after)


# --- JWKS rotation and refresh throttling -----------------------------------------------------

@pytest.fixture
def own_jwks():
    servers = []

    def make(n_keys=1):
        ks = KeySet(n_keys)
        srv = JwksServer(ks)
        servers.append(srv)
        return ks, srv, Tokens(ks, CLIENT_ID, ISSUER)

    yield make
    for s in servers:
        s.close()


def _upsert(w, tk, iid):
    assert_installation_state(w.request("PUT", inst(iid), tk.user(iid), json_body=upsert_body()))


def test_jwks_rotation_new_kid_refetched_and_removed_key_dropped(make_wharf, own_jwks, iid):
    ks, srv, tk = own_jwks()
    w = make_wharf(env={"WHARF_JWKS_MIN_REFRESH_MS": "500"}, jwks_url=srv.url)
    old_kid = ks.kid
    _upsert(w, tk, iid)
    time.sleep(1.2)  # past the refresh throttle

    # Rotation 1: Vercel publishes a second key and starts signing with it.
    new_kid = ks.add_key()
    before = srv.fetches
    r = get_inst(w, iid, tk.system(iid, sign={"kid": new_kid}))
    assert_installation_state(r)
    assert 1 <= srv.fetches - before <= 2, f"JWKS fetched {srv.fetches - before} times for one new kid"
    assert_installation_state(get_inst(w, iid, tk.system(iid, sign={"kid": old_kid})))

    # Rotation 2: a third key appears and the first two are withdrawn.
    time.sleep(1.2)
    old_key = ks.entry(old_kid)["key"]
    third = ks.add_key()
    ks.remove_key(old_kid)
    ks.remove_key(new_kid)
    assert_installation_state(get_inst(w, iid, tk.system(iid, sign={"kid": third})))
    # The refreshed set replaced the cached one: a token from a withdrawn key is refused.
    withdrawn = KeySet(0)
    withdrawn.add_key(kid=old_kid, key=old_key)
    r = get_inst(w, iid, withdrawn.sign(tk.system_claims(iid)))
    assert_error(r, 401, "unauthorized")


def test_unknown_kid_flood_is_throttled(make_wharf, own_jwks, iid):
    ks, srv, tk = own_jwks()
    w = make_wharf(jwks_url=srv.url)  # default WHARF_JWKS_MIN_REFRESH_MS (30 s)
    _upsert(w, tk, iid)
    stranger = KeySet(1)
    before = srv.fetches
    statuses = []
    lock = threading.Lock()

    def flood(n):
        for _ in range(n):
            claims = tk.system_claims(iid)
            tok = stranger.sign(claims, header={"kid": "kid_" + secrets.token_hex(8)})
            st = w.request("GET", inst(iid), tok).status_code
            with lock:
                statuses.append(st)

    threads = [threading.Thread(target=flood, args=(10,)) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert statuses == [401] * 50, statuses
    fetched = srv.fetches - before
    assert fetched <= 2, f"50 unknown kids caused {fetched} JWKS fetches"
    # Valid tokens keep working during/after the flood.
    assert_installation_state(get_inst(w, iid, tk.system(iid)))
