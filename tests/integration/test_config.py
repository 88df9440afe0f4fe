"""Start-up configuration: invalid settings stop wharf with exit status 2 and one stderr line
naming the variable (and the JSON path for a bad catalog); the generated encryption key."""
import base64
import copy
import os
import stat
import subprocess

import pytest

from lib import catalog
from lib.api import assert_installation_state, upsert_body
from lib.wharf import Wharf

EXIT_TIMEOUT = 20  # "quickly", with room for a loaded machine


def run_bad(wharf_bin, jwks, tmp_path, env):
    w = Wharf(wharf_bin, tmp_path / "w", jwks.url, "https://marketplace.vercel.com", env=env)
    full_env = w.build_env()
    p = subprocess.run([wharf_bin, "serve"], env=full_env, cwd=w.workdir, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=EXIT_TIMEOUT)
    lines = [l for l in p.stderr.decode(errors="replace").splitlines() if l.strip()]
    return p.returncode, lines


def bad_catalog(mutate):
    c = copy.deepcopy(catalog.CUSTOM)
    mutate(c)
    return c


def _set(obj, path, value):
    cur = obj
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value


CASES = [
    # (id, env, [strings the single line must contain])
    ("missing-client-id", {"INTEGRATION_CLIENT_ID": None}, ["INTEGRATION_CLIENT_ID"]),
    ("empty-client-id", {"INTEGRATION_CLIENT_ID": ""}, ["INTEGRATION_CLIENT_ID"]),
    ("listen-nonsense", {"WHARF_LISTEN": "nonsense"}, ["WHARF_LISTEN"]),
    ("listen-bad-port", {"WHARF_LISTEN": "127.0.0.1:99999"}, ["WHARF_LISTEN"]),
    ("encryption-key-not-base64", {"WHARF_ENCRYPTION_KEY": "not-base64!!"}, ["WHARF_ENCRYPTION_KEY"]),
    ("encryption-key-16-bytes", {"WHARF_ENCRYPTION_KEY": base64.b64encode(b"k" * 16).decode()},
     ["WHARF_ENCRYPTION_KEY"]),
    ("encryption-key-33-bytes", {"WHARF_ENCRYPTION_KEY": base64.b64encode(b"k" * 33).decode()},
     ["WHARF_ENCRYPTION_KEY"]),
    ("max-body-not-number", {"WHARF_MAX_BODY_BYTES": "lots"}, ["WHARF_MAX_BODY_BYTES"]),
    ("read-timeout-not-number", {"WHARF_READ_TIMEOUT_MS": "soon"}, ["WHARF_READ_TIMEOUT_MS"]),
    ("idle-timeout-negative", {"WHARF_IDLE_TIMEOUT_MS": "-5"}, ["WHARF_IDLE_TIMEOUT_MS"]),
    ("threads-not-number", {"WHARF_THREADS": "many"}, ["WHARF_THREADS"]),
    ("jwks-url-not-url", {"WHARF_JWKS_URL": "not a url"}, ["WHARF_JWKS_URL"]),
    ("catalog-missing-file", {"WHARF_CATALOG": "/nonexistent/catalog.json"}, ["WHARF_CATALOG"]),
    ("postgres-url-not-postgres", {"WHARF_POSTGRES_URL": "mysql://x"}, ["WHARF_POSTGRES_URL"]),
    # Replicas on a shared (PostgreSQL) state store cannot share a sqlite product's local disk.
    ("sqlite-product-on-shared-store", {"WHARF_STATE_URL": "postgres://127.0.0.1:9/wharf"},
     ["WHARF_STATE_URL", "product 'sqlite-db' (kind sqlite)", "WHARF_SINGLE_REPLICA=1"]),
    ("single-replica-not-boolean", {"WHARF_SINGLE_REPLICA": "yes"}, ["WHARF_SINGLE_REPLICA"]),
    ("notice-url-without-secret", {"WHARF_NOTICE_URL": "http://127.0.0.1:9/n"},
     ["WHARF_NOTICE_SECRET"]),
    ("reconcile-negative", {"WHARF_RECONCILE_S": "-1"}, ["WHARF_RECONCILE_S"]),
]

CATALOG_CASES = [
    ("not-json", "{not json", ["WHARF_CATALOG"]),
    ("plan-bad-type", bad_catalog(lambda c: _set(c, ["plans", 1, "type"], "invoice")),
     ["WHARF_CATALOG", "plans[1].type"]),
    ("plan-missing-id", bad_catalog(lambda c: c["plans"][0].pop("id")), ["WHARF_CATALOG", "plans[0].id"]),
    ("plan-bad-scope", bad_catalog(lambda c: _set(c, ["plans", 2, "scope"], "team")),
     ["WHARF_CATALOG", "plans[2].scope"]),
    ("product-unknown-plan", bad_catalog(lambda c: _set(c, ["products", 0, "plans", 1], "ghost")),
     ["WHARF_CATALOG", "products[0].plans[1]"]),
    ("product-bad-kind", bad_catalog(lambda c: _set(c, ["products", 1, "kind"], "mysql")),
     ["WHARF_CATALOG", "products[1].kind", "'mysql'", "available: flags, http, postgres, sqlite"]),
    # An http product needs its backend, and the backend's secret in the environment.
    ("http-without-backend", bad_catalog(lambda c: _set(c, ["products", 1, "kind"], "http")),
     ["WHARF_CATALOG", "product 'team-db' (kind http)", "backend"]),
    ("http-secret-unset",
     bad_catalog(lambda c: _set(c, ["products", 1], dict(c["products"][1], kind="http", backend={
         "url": "http://127.0.0.1:9/wharf/v1", "secretEnv": "NO_SUCH_BACKEND_SECRET"}))),
     ["WHARF_CATALOG", "product 'team-db' (kind http)", "NO_SUCH_BACKEND_SECRET"]),
    ("price-of-unknown-metric",
     bad_catalog(lambda c: _set(c, ["plans", 1, "pricing", "metrics"],
                                {"tx": {"unit": "tx", "unitPrice": "1.00", "metric": "transactions"}})),
     ["WHARF_CATALOG", "plans[1].pricing.metrics.tx", "'transactions'", "kind sqlite"]),
    ("plans-not-array", bad_catalog(lambda c: _set(c, ["plans"], {})), ["WHARF_CATALOG", "plans"]),
    ("max-resources-zero", bad_catalog(lambda c: _set(c, ["plans", 1, "maxResources"], 0)),
     ["WHARF_CATALOG", "plans[1].maxResources", "positive integer"]),
    ("max-resources-not-integer", bad_catalog(lambda c: _set(c, ["plans", 1, "maxResources"], "3")),
     ["WHARF_CATALOG", "plans[1].maxResources"]),
    ("max-products-old-name", bad_catalog(lambda c: _set(c, ["plans", 1, "maxProducts"], 3)),
     ["WHARF_CATALOG", "plans[1].maxProducts", "renamed maxResources"]),
]


@pytest.mark.parametrize("env,needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_configuration_exits_2_with_one_line(wharf_bin, jwks, tmp_path, env, needles):
    code, lines = run_bad(wharf_bin, jwks, tmp_path, env)
    assert code == 2, f"exit status {code}; stderr: {lines}"
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}: {lines}"
    for n in needles:
        assert n in lines[0], f"{n!r} not named in: {lines[0]}"


@pytest.mark.parametrize("content,needles", [c[1:] for c in CATALOG_CASES], ids=[c[0] for c in CATALOG_CASES])
def test_bad_catalog_exits_2_naming_path(wharf_bin, jwks, tmp_path, content, needles):
    path = catalog.write(tmp_path, content)
    code, lines = run_bad(wharf_bin, jwks, tmp_path, {"WHARF_CATALOG": path})
    assert code == 2, f"exit status {code}; stderr: {lines}"
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}: {lines}"
    for n in needles:
        assert n in lines[0], f"{n!r} not named in: {lines[0]}"


def test_custom_catalog_is_served(make_wharf, tokens, tmp_path):
    w = make_wharf(env={"WHARF_CATALOG": catalog.write(tmp_path, catalog.CUSTOM)})
    r = w.request("GET", "/v1/products/kv-store/plans", tokens.system(None))
    assert r.status_code == 200, r.text
    r = w.request("GET", "/v1/products/sqlite-db/plans", tokens.system(None))
    assert r.status_code == 404, "a custom catalog replaces the built-in one"


def test_generated_encryption_key_file_mode_and_reuse(make_wharf, tokens, iid):
    w = make_wharf()  # no WHARF_ENCRYPTION_KEY
    key_path = os.path.join(w.data_dir, "encryption.key")
    assert os.path.isfile(key_path), os.listdir(w.data_dir)
    mode = stat.S_IMODE(os.stat(key_path).st_mode)
    assert mode == 0o600, oct(mode)
    with open(key_path, "rb") as f:
        key1 = f.read()
    assert key1.strip(), "empty key file"
    assert_installation_state(w.request("PUT", f"/v1/installations/{iid}", tokens.user(iid), json_body=upsert_body()))
    assert w.stop() == 0
    w.start()
    with open(key_path, "rb") as f:
        assert f.read() == key1, "the key file was rewritten on restart"
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert_installation_state(w.request("GET", f"/v1/installations/{iid}", tokens.system(iid)))
    # And the installation is still writable (the stored credentials decrypt fine).
    assert_installation_state(w.request("PUT", f"/v1/installations/{iid}", tokens.user(iid), json_body=upsert_body()))


def test_explicit_encryption_key_survives_restart(make_wharf, tokens, iid):
    key = base64.b64encode(os.urandom(32)).decode()
    w = make_wharf(env={"WHARF_ENCRYPTION_KEY": key})
    assert_installation_state(w.request("PUT", f"/v1/installations/{iid}", tokens.user(iid), json_body=upsert_body()))
    assert w.stop() == 0
    w.start()
    assert_installation_state(w.request("GET", f"/v1/installations/{iid}", tokens.system(iid)))


def test_unknown_subcommand_fails(wharf_bin, tmp_path):
    p = subprocess.run([wharf_bin, "no-such-command"], capture_output=True, timeout=EXIT_TIMEOUT,
                       cwd=str(tmp_path), stdin=subprocess.DEVNULL)
    assert p.returncode != 0
