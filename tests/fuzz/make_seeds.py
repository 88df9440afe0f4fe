#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

The seeds are committed; run this again only to change them (it rewrites the files it
owns, named seed-*, and leaves any other file alone). Tokens are signed with the fixed
test key below, whose public half is in jwt.cpp; it is a fuzzing fixture, never a real key.
"""
import base64
import json
import os
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import load_pem_private_key

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

FUZZ_KEY_PEM = b"""-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC1CtMGhAuQH+/v
2KS4jzjRKAjhHoWUInnCc3ty6b5mv6yjCovsN13fS/vEAGyd43hRpGcIMDKxcHso
Ns+VoHDcfx74iGggWiPsc9OoUUQIHcgNJruxX4gM1QoT2cDR33cYPtuED6FKLmvT
dWlczWodi8JwU8Mlv3bMVZ/stePPu5sGRT9ChS2KNXjiJym+IVR5LLxAPgZ4FjdJ
St+0qs1zHN0VJNVdC9Nv+GNEzaAKp9Cjxh3DlQ70dbazuvfIXtt3f9bTl/C63sGS
EeEIQczHdq+9bmNqk1G6mqYA5o+PehE8SpU734SN4ez6ujAAJCJsk5JX7o2uCIZj
SWti7nedAgMBAAECggEAJzAioaRvhFEFdNtmPHT0DYIm+ePLcldMF+U7cZJbHo6a
5efghc8uSKl/49tbp4mXf8SgcMtODc6VOg0zPeYux+vUXmPYdjhM0l/4DtUYbtFT
flVGB4zwPCbZOZbHACbo9pyUk692cEJAINOnbOkh8SdRfVMESOV655wZM/njSBGs
L0zmVQeDTRC8DFdaiKmHm5XXNx+oBRTQiRmlO3F02l7rlLjbAeBH8gJb++ZoFLkH
QpzK5ih1bu7RIiw9GkD72fnfcoDNALbRoeTIOZPmFI34bwcSujAYX3/p7w138GZt
SnRr9efmTAyP5A/Yzxl6YHjYojtQEKNisejEzBqxQQKBgQDvisUm8oHLZStB7hxr
7ur1iAnxH2SRnEa9uconee8juv8AA2idxYgZHCQ7VFRQb5ZjzUg6hb7iV+eXEO5J
LEhJNSmfyM3RLx+PkEkYcQ8mA7Kac+0QWC8Mn/T1Un8g7HTakrYvOb5tDtWKBwJK
Vk5a+A0MCDTpEE8Q2rJFsEI1lQKBgQDBex6wg3JuqHxs7WluTHNAyPm+FOxiVIXa
r3ob3A0wdBZktYxvs5tfC7Yp63M2NnW5k2VandEOfFtOEYE6GJqOvar4IIxqOpRP
15XbECz9vPGTxXQnxl4EEuHdmSgb6p7BDxyHmp7Cm+gLBVYAB4+EgWygdWf2L0sH
pXlAGfon6QKBgEL+Y5896bER7WQ2DPreyhW7Y1RtfDoBJAPB51jdEFXE4baGPYcK
jMLBDR0Ou7n3S29EJXRAnZ8+CIZGdO5AFUNsO+T1SyK69C+5ocfVLvBpzlTGIUIV
96qnPeIynV1+5DuRFqTkmG513KEKzsgtlSJ6B2QbE3kvV32WPI+i+RF1AoGBALTy
3KTgimkLkjKdZvkM7s0sKMWo89qSig0YB+9+QaeLKlZNpGXjZ+/gGCHkXf/Ztwgz
3Zp99kLB8vJ0VJNs5z+QCxG7/xZqasKxMSmLW0iDKLu28wcv8kWFE1AYKPbS2l5c
L6Zy6P/Ap6eG+gNVDtgx4tG+e9g2Ksmf7GIS6W3hAoGAQ/2GiA5LUkb3o/B6lttC
/VPNwgQ457FkaI4RtlDMuPEgaS/QC39AF1I6RNuh2xLgrsunsjk5dvL066rtUWCL
OdRhTaFTCXRO//GGdJGW5V+wFT8IZ1HodCuDMhpMG2mBFqCAiSfHbizQHCRoFjI4
DyvDzd1HQQi3OHiWqdnIKiI=
-----END PRIVATE KEY-----
"""

NOW = 1750000000  # jwt.cpp's kNowMs / 1000
ISSUER = "https://marketplace.vercel.com"
AUDIENCE = "oac_9f4YG9JFjgKkRlxoaaGG0y05"
INSTALLATION = "icfg_fuzz0000000000000000"


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


# ---- jwt ----------------------------------------------------------------------------------
KEY = load_pem_private_key(FUZZ_KEY_PEM, None)


def sign(header, claims, alg="RS256"):
    signing_input = b64(compact(header)) + "." + b64(compact(claims))
    if alg == "RS256":
        sig = KEY.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    elif alg == "PS256":
        sig = KEY.sign(signing_input.encode(),
                       padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                       hashes.SHA256())
    else:
        raise ValueError(alg)
    return signing_input + "." + b64(sig)


def user_claims(**over):
    c = {"iss": ISSUER, "sub": "account:a1b2c3:user:d4e5f6", "aud": AUDIENCE,
         "account_id": "team_a1b2c3", "installation_id": INSTALLATION, "user_id": "d4e5f6",
         "user_role": "ADMIN", "user_name": "Test User", "user_email": "user@example.com",
         "user_avatar_url": "https://example.com/a.png", "type": "access_token",
         "iat": NOW, "nbf": NOW - 5, "exp": NOW + 300}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def system_claims(**over):
    c = {"iss": ISSUER, "sub": "account:a1b2c3", "aud": AUDIENCE, "account_id": "team_a1b2c3",
         "installation_id": INSTALLATION, "type": "access_token",
         "iat": NOW, "nbf": NOW - 5, "exp": NOW + 300}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


RS = {"alg": "RS256", "typ": "JWT", "kid": "fuzz-rs"}
PS = {"alg": "PS256", "typ": "JWT", "kid": "fuzz-ps"}


def jwt_seeds():
    write("jwt", "user", sign(RS, user_claims()))
    write("jwt", "system", sign(RS, system_claims()))
    write("jwt", "user-ps256", sign(PS, user_claims()))
    write("jwt", "user-role-user", sign(RS, user_claims(user_role="USER")))
    write("jwt", "id-token", sign(RS, user_claims(type="id_token")))
    write("jwt", "system-null-sub", sign(RS, system_claims(sub=None)))
    write("jwt", "aud-array", sign(RS, system_claims(aud=[AUDIENCE, "other"])))
    write("jwt", "other-installation", sign(RS, system_claims(installation_id="icfg_other")))
    write("jwt", "expired", sign(RS, user_claims(exp=NOW - 100, iat=NOW - 400)))
    write("jwt", "not-yet-valid", sign(RS, user_claims(nbf=NOW + 100)))
    write("jwt", "wrong-audience", sign(RS, user_claims(aud="oac_other")))
    write("jwt", "bad-sub", sign(RS, user_claims(sub="account:xyz:user:1")))
    write("jwt", "rs-key-ps-alg", sign(dict(PS, kid="fuzz-rs"), user_claims(), "PS256"))
    write("jwt", "unknown-kid", sign(dict(RS, kid="nope"), user_claims()))
    write("jwt", "crit", sign(dict(RS, crit=["exp"]), user_claims()))
    unsigned = b64(compact({"alg": "none", "typ": "JWT", "kid": "fuzz-rs"})) + "." + \
        b64(compact(user_claims())) + "."
    write("jwt", "alg-none", unsigned)
    write("jwt", "hs256", b64(compact({"alg": "HS256", "kid": "fuzz-rs"})) + "." +
          b64(compact(system_claims())) + "." + b64(b"\x00" * 32))
    good = sign(RS, system_claims())
    write("jwt", "bad-signature", good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"))
    write("jwt", "two-parts", "eyJhbGciOiJSUzI1NiJ9.e30")
    write("jwt", "padding", good.replace(".", "=.", 1))
    write("jwt", "empty", "")


# ---- partner_json -------------------------------------------------------------------------
# Selector byte: model index (see partner_json.cpp) + 11 * content-type index.
def partner(name, model, body, content_type=0):
    write("partner_json", name, bytes([model + 11 * content_type]) +
          (body if isinstance(body, bytes) else body.encode()))


def partner_json_seeds():
    partner("upsert", 0, compact({
        "scopes": ["read-write:integration-resource"],
        "acceptedPolicies": {"toc": "2024-02-28T10:00:00Z", "privacy": "2024-02-28T10:00:00.123+01:00"},
        "credentials": {"access_token": "tok_123", "token_type": "Bearer"},
        "account": {"name": "Team", "url": "https://vercel.com/team",
                    "contact": {"email": "a@example.com", "name": "A"}}}))
    partner("upsert-bad", 0, '{"scopes":[1],"acceptedPolicies":{"toc":"yesterday"},"credentials":{}}')
    partner("update-installation", 1, '{"billingPlanId":"pro"}')
    partner("delete-installation", 2, '{"cascadeResourceDeletion":true,"reason":"bye"}')
    partner("delete-installation-empty", 2, "")
    partner("provision", 3, compact({
        "productId": "db", "name": "my-db", "billingPlanId": "pro", "externalId": "x1",
        "metadata": {"region": "iad1", "name": "abc-1", "replicas": 2, "ratio": 1.0,
                     "public": True, "tags": [], "extra": {}},
        "protocolSettings": {"experimentation": {"edgeConfigId": "ecfg_1"}}}))
    partner("provision-builtin", 3, compact({
        "productId": "sqlite-db", "name": "db", "billingPlanId": "sqlite-free",
        "metadata": {"durability": "normal"}}))
    partner("provision-bad-metadata", 3, compact({
        "productId": "db", "name": "n", "billingPlanId": "free",
        "metadata": {"region": "mars", "replicas": 2.5, "ratio": 1e300, "name": "UPPER"}}))
    partner("update-resource", 4, compact({
        "name": "renamed", "status": "suspended", "metadata": {"region": "fra1"},
        "protocolSettings": {"experimentation": {}}}))
    partner("rotate", 5, '{"reason":"leak","delayOldSecretsExpirationHours":1.5}')
    partner("rotate-empty", 5, " \r\n")
    partner("repl", 6, '{"input":"SELECT 1;","readOnly":true}')
    partner("transfer", 7, '{"resourceIds":["res_1","res_2","res_1"],"expiresAt":1750000600000}')
    partner("transfer-past", 7, '{"resourceIds":["res_1"],"expiresAt":1}')
    partner("transfer-legacy", 8, '{"claimId":"c1","resourceIds":["res_1"],"expiration":1750000600000.5}')
    partner("purchase", 9, '{"invoiceId":"inv_abc-123"}')
    partner("purchase-bad", 9, '{"invoiceId":"../x"}')
    partner("plans-metadata", 10, '{"region":"iad1","replicas":1}')
    partner("charset", 3, '{"productId":"db"}', content_type=1)
    partner("text-plain", 6, '{"input":"x"}', content_type=2)
    partner("not-json", 0, "{\"scopes\": [")
    partner("unicode", 6, '{"input":"\\ud83d\\ude00 \\u00e9\\u0000"}')


# ---- catalog ------------------------------------------------------------------------------
SCHEMA = {"type": "object", "required": ["region"], "properties": {
    "region": {"type": "string", "enum": ["iad1", "fra1"], "ui:control": "select"},
    "name": {"type": "string", "minLength": 1, "maxLength": 20, "pattern": "^[a-z][a-z0-9-]*$"},
    "size": {"type": "integer", "minimum": 1, "maximum": 10},
    "ratio": {"type": "number", "minimum": 0.5},
    "flag": {"type": "boolean"}}}

CATALOG = {
    "products": [{"id": "sqlite-db", "kind": "sqlite", "name": "SQLite Database",
                  "plans": ["free", "paid", "prepaid", "inst"], "metadataSchema": SCHEMA,
                  "rotation": "async",
                  "environmentOverrides": {"DATABASE_TOKEN": {"preview": "DATABASE_READONLY_TOKEN"}}}],
    "plans": [
        {"id": "free", "type": "subscription", "name": "Hobby", "description": "Free",
         "scope": "resource", "paymentMethodRequired": False,
         "pricing": {"baseFee": "0.00", "metrics": {}}, "limits": {"storageBytes": 268435456},
         "details": [{"label": "Storage", "value": "256 MB"}]},
        {"id": "paid", "type": "subscription", "name": "Pro", "description": "Paid",
         "pricing": {"baseFee": "5.00", "metrics": {
             "rowsWritten": {"unit": "million rows", "unitPrice": "1.00", "per": 1000000},
             "storage": {"unit": "GB-month", "unitPrice": "0.25", "per": 1073741824,
                         "metric": "storageBytes", "type": "total"}}},
         "match": {"region": ["iad1"]}, "effectiveDate": "2024-01-01T00:00:00Z",
         "quote": [{"line": "Base", "amount": "5.00"}], "maximumAmount": "100.00"},
        {"id": "prepaid", "type": "prepayment", "name": "Credits", "description": "Prepaid",
         "limits": {"statementTimeoutMs": 1000, "maxRows": 10, "maxResultBytes": 1e6}},
        {"id": "inst", "type": "subscription", "name": "Inst", "description": "Installation",
         "scope": "installation", "paymentMethodRequired": False, "default": True}]}


def catalog_seeds():
    write("catalog", "catalog", json.dumps(CATALOG, indent=1))
    write("catalog", "catalog-metadata",
          compact(CATALOG) + '\n---\n{"region":"iad1","name":"db-1","size":3,"ratio":0.75,"flag":true}')
    write("catalog", "catalog-bad-metadata",
          compact(CATALOG) + '\n---\n{"region":"x","name":"Bad Name","size":1.5,"ratio":1e400}')
    write("catalog", "schema-metadata", compact(SCHEMA) + '\n---\n{"name":"abc"}')
    write("catalog", "schema-not-object", compact(SCHEMA) + "\n---\n[1,2]")
    write("catalog", "schema-bad", '{"type":"array","properties":{"a":{"type":"date","pattern":"(","minLength":-1}},"required":[1]}')
    write("catalog", "duplicate-plan", '{"plans":[{"id":"a","type":"subscription","name":"A","description":""},{"id":"a","type":"subscription","name":"A","description":""}],"products":[]}')
    write("catalog", "unknown-limit", '{"plans":[{"id":"a","type":"subscription","name":"A","description":"","limits":{"storage_bytes":1}}],"products":[{"id":"p","kind":"sqlite","name":"P","plans":["a"]}]}')
    write("catalog", "not-json", '{"products": [')


# ---- sql_guard ----------------------------------------------------------------------------
# Flags byte: bit 0 read-only; bits 1-2: 0 one statement, 1 batch (one per line),
# 2 params line + statement, 3 REPL.
def sql(name, mode, read_only, text):
    data = text if isinstance(text, bytes) else text.encode()
    write("sql_guard", name, bytes([(mode << 1) | (1 if read_only else 0)]) + data)


def sql_guard_seeds():
    sql("select", 0, True, "SELECT a, b, c, d FROM t ORDER BY a")
    sql("insert", 0, False, "INSERT INTO t(b) VALUES ('x') RETURNING a")
    sql("insert-readonly", 0, True, "INSERT INTO t(b) VALUES ('x')")
    sql("attach", 0, False, "ATTACH DATABASE 'x.db' AS x")
    sql("vacuum-into", 0, False, "VACUUM INTO '/tmp/copy.db'")
    sql("pragma", 0, False, "PRAGMA max_page_count=1000000")
    sql("pragma-table", 0, True, "SELECT * FROM pragma_table_info('t')")
    sql("load-extension", 0, False, "SELECT load_extension('x')")
    sql("temp-table", 0, False, "CREATE TEMP TABLE x(a)")
    sql("begin", 0, False, "BEGIN")
    sql("recursive", 0, True,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c")
    sql("big-value", 0, True, "SELECT length(randomblob(20000000))")
    sql("invalid-utf8", 0, True, "SELECT 'caf\u00e9', CAST(x'c328ff' AS TEXT) AS \"\u00e9\"")
    sql("json-path", 0, True, "SELECT json_extract('{\"a\":1}', '$.a'), json('[1,2]')")
    sql("two-statements", 0, False, "SELECT 1; SELECT 2")
    sql("batch", 1, False, "INSERT INTO t(b) VALUES ('y')\nUPDATE t SET b = upper(b)\nSELECT * FROM v")
    sql("batch-readonly", 1, True, "SELECT 1\nDELETE FROM t")
    sql("params-array", 2, False, '[1, "x", {"base64": "AAE="}, null, true, 2.5]\n'
        "INSERT INTO t(a, b, c, d) VALUES (?+10, ?, ?, ?) RETURNING ?, ?")
    sql("params-named", 2, True, '{":x": 1, "y": "one"}\nSELECT * FROM t WHERE a = :x OR b = @y')
    sql("params-missing", 2, True, '[]\nSELECT ?')
    sql("repl", 3, False, ".tables\n.schema t\nSELECT * FROM t;\nINSERT INTO t(b) VALUES ('z');\n.help\n")
    sql("repl-readonly", 3, True, "DELETE FROM t; SELECT 1;\n.tables t%\n.bogus\n")
    sql("repl-error", 3, False, "SELEC 1;")
    sql("repl-empty", 3, False, "  -- nothing\n;;")


# ---- http_request -------------------------------------------------------------------------
def http_seeds():
    tok = "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"
    write("http_request", "get",
          "GET /v1/products/sqlite-db/plans?metadata=%7B%22region%22%3A%22iad1%22%7D HTTP/1.1\r\n"
          "Host: wharf\r\nAuthorization: " + tok + "\r\n\r\n")
    body = '{"productId":"sqlite-db","name":"db","billingPlanId":"sqlite-free","metadata":{}}'
    write("http_request", "post",
          "POST /v1/installations/icfg_1/resources HTTP/1.1\r\nHost: wharf\r\n"
          "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    write("http_request", "chunked",
          "POST /webhooks/vercel HTTP/1.1\r\nHost: wharf\r\nTransfer-Encoding: chunked\r\n"
          "x-vercel-signature: 00\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    write("http_request", "pipelined",
          "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /metrics HTTP/1.1\r\nHost: a\r\n\r\n"
          "DELETE /v1/installations/icfg_%41%2F HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    write("http_request", "http10", "GET /healthz HTTP/1.0\r\n\r\n")
    write("http_request", "no-host", "GET /healthz HTTP/1.1\r\n\r\n")
    write("http_request", "obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n")
    write("http_request", "te-cl",
          "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    write("http_request", "te-identity",
          "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n")
    write("http_request", "bare-lf", "GET /healthz HTTP/1.1\nHost: a\n\n")
    write("http_request", "leading-crlf", "\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
    write("http_request", "expect",
          "PUT /v1/installations/x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
          "Content-Length: 2\r\n\r\n{}")
    write("http_request", "chunk-ext",
          "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
          "3;name=value\r\nabc\r\n0\r\nTrailer: x\r\n\r\n")
    write("http_request", "huge-length",
          "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n")


# ---- webhook ------------------------------------------------------------------------------
# Selector byte: 0 correct signature, 1 upper-case, 2 first line is the signature,
# 3 none, 4 wrong.
def webhook(name, selector, body):
    write("webhook", name, bytes([selector]) + body.encode())


def webhook_seeds():
    webhook("removed", 0, compact({"id": "evt_1", "type": "integration-configuration.removed",
                                   "createdAt": NOW * 1000,
                                   "payload": {"configuration": {"id": INSTALLATION}}}))
    webhook("invoice-paid", 0, compact({"id": "evt_2", "type": "marketplace.invoice.paid",
                                        "payload": {"installationId": INSTALLATION,
                                                    "invoiceId": "inv_1"}}))
    webhook("unknown-type", 1, compact({"id": "evt_3", "type": "deployment.created",
                                        "payload": {}}))
    webhook("no-payload", 0, '{"id":"evt_4","type":"x"}')
    webhook("bad-envelope", 0, '{"id":1,"type":"","payload":[]}')
    webhook("not-json", 0, "not json")
    webhook("given-signature", 2, "0123456789abcdef0123456789abcdef01234567\n{\"id\":\"e\",\"type\":\"t\"}")
    webhook("no-signature", 3, '{"id":"evt_5","type":"x"}')
    webhook("wrong-signature", 4, '{"id":"evt_6","type":"x"}')


# ---- hrana --------------------------------------------------------------------------------
# Flags byte: bit 0 read-only stream, bit 1 run the requests twice; then a pipeline body.
def hrana(name, flags, body):
    write("hrana", name, bytes([flags]) + (body if isinstance(body, str) else compact(body)).encode())


def stmt(sql, args=None, named=None):
    s = {"sql": sql}
    if args is not None:
        s["args"] = args
    if named is not None:
        s["named_args"] = named
    return {"type": "execute", "stmt": s}


def hrana_seeds():
    i = lambda v: {"type": "integer", "value": str(v)}
    hrana("execute", 0, {"baton": None, "requests": [stmt("SELECT a, b, c, d FROM t"), {"type": "close"}]})
    hrana("values", 0, {"requests": [stmt("INSERT INTO t(b, c, d) VALUES (?, ?, ?)", [
        {"type": "text", "value": "x"}, {"type": "blob", "base64": "AAH/"}, {"type": "float", "value": 0.5}]),
        stmt("SELECT ?", [i("-9223372036854775808")]), stmt("SELECT :x", named=[{"name": "x", "value": {"type": "null"}}])]})
    hrana("batch", 0, {"requests": [{"type": "batch", "batch": {"steps": [
        {"stmt": {"sql": "BEGIN IMMEDIATE"}},
        {"condition": {"type": "ok", "step": 0}, "stmt": {"sql": "INSERT INTO t(b) VALUES ('one')"}},
        {"condition": {"type": "ok", "step": 1}, "stmt": {"sql": "COMMIT"}},
        {"condition": {"type": "not", "cond": {"type": "ok", "step": 2}}, "stmt": {"sql": "ROLLBACK"}},
        {"condition": {"type": "and", "conds": [{"type": "is_autocommit"}, {"type": "or", "conds": [{"type": "error", "step": 1}]}]},
         "stmt": {"sql": "SELECT 1"}}]}}]})
    hrana("transaction-open", 2, {"requests": [stmt("BEGIN"), stmt("UPDATE t SET d = d + 1"),
                                               {"type": "get_autocommit"}]})
    hrana("readonly-begin", 1, {"requests": [stmt("BEGIN TRANSACTION READONLY"), stmt("DELETE FROM t"),
                                             stmt("ROLLBACK"), stmt("BEGIN IMMEDIATE")]})
    hrana("stored-sql", 0, {"requests": [{"type": "store_sql", "sql_id": 1, "sql": "SELECT * FROM t WHERE a = ?"},
                                         {"type": "execute", "stmt": {"sql_id": 1, "args": [i(1)], "want_rows": False}},
                                         {"type": "describe", "sql_id": 1}, {"type": "close_sql", "sql_id": 1},
                                         {"type": "execute", "stmt": {"sql_id": 1}}]})
    hrana("sequence", 0, {"requests": [{"type": "sequence", "sql": "CREATE TABLE u(x); INSERT INTO u VALUES (1); SAVEPOINT s; RELEASE s;"}]})
    hrana("malformed", 0, {"requests": [{"type": "warp"}, {"type": "execute"}, {"type": "batch", "batch": {"steps": [{"condition": {"type": "ok", "step": 5}, "stmt": {"sql": "SELECT 1"}}]}},
                                        stmt("SELECT ?", [{"type": "integer", "value": "1e3"}]), 7, None]})
    hrana("escape", 0, {"requests": [stmt("ATTACH 'x.db' AS x"), stmt("CREATE TABLE temp.z(a)"), stmt("VACUUM INTO '/tmp/x'")]})


def main():
    jwt_seeds()
    partner_json_seeds()
    catalog_seeds()
    sql_guard_seeds()
    http_seeds()
    webhook_seeds()
    hrana_seeds()
    return 0


if __name__ == "__main__":
    sys.exit(main())
