#!/usr/bin/env python3
"""Acme KV: an example backend for Wharf's product protocol v1 (docs/product-protocol.md).

Wharf does everything Vercel-facing (auth, installations, plans, billing, SSO). This
service does the product work: a small key-value store per resource. It serves

  * the protocol calls Wharf makes, under /wharf/v1 (B1-B6), each verified by signature;
  * the KV API the provider's users call with the secrets Wharf hands to Vercel
    (GET/PUT/DELETE /kv/{resourceId}/{key}, bearer token);
  * with --test-control, an unsigned /_control API for tests (never enable in production).

It calls Wharf back (W1 status after an asynchronous provision, W2 usage), signed the same
way. Python 3.11 standard library only; copy it and replace the KV parts with your product.

    ACME_BACKEND_SECRET=... python3 server.py --port 7000 \\
        --wharf-url http://127.0.0.1:8080 --product-id acme-kv --state acme.json
"""
import argparse
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BASE = "/wharf/v1"
MAX_SKEW_S = 300          # a signature's t may be this far from our clock (spec §2)
MIN_SECRET_BYTES = 32
REGIONS = ("iad1", "fra1", "sfo1")
MAX_USAGE_BATCH = 1000    # W2 accepts at most 1,000 events per call
ERROR_COLOR = "#ff0000"   # REPL error text, as Wharf's own console uses
FAULT_OPS = ("PUT", "PATCH", "DELETE", "rotate", "repl", "transfer")


# --------------------------------------------------------------------------------------
# Signing (spec §2): Wharf-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "t.body")>

def sign(secret: bytes, body: bytes, t: int | None = None) -> str:
    t = int(time.time()) if t is None else int(t)
    mac = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: bytes, header: str | None, body: bytes) -> bool:
    """True when `header` carries a fresh timestamp and at least one matching v1= value."""
    if not header:
        return False
    t, candidates = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            t = int(value)
        elif key == "v1":
            candidates.append(value.strip().lower())
    if t is None or not candidates or abs(time.time() - t) > MAX_SKEW_S:
        return False
    expected = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    # Compare every candidate (no early exit), each in constant time.
    ok = False
    for c in candidates:
        ok |= hmac.compare_digest(expected.encode(), c.encode())
    return ok


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def api_error(code: str, message: str, user: str | None = None, **extra) -> dict:
    """The error body the spec (and Vercel) use; user.message is what a Vercel user reads."""
    err = {"code": code, "message": message, **extra}
    if user:
        err["user"] = {"message": user}
    return {"error": err}


class Refused(Exception):
    """A 4xx answer: Wharf passes 400/404/409/422 on to Vercel with this code and user message."""

    def __init__(self, status: int, code: str, message: str, user: str | None = None, **extra):
        super().__init__(message)
        self.status, self.body = status, api_error(code, message, user or message, **extra)


# --------------------------------------------------------------------------------------
# State: resources with their tokens and data, plus the usage not yet accepted by Wharf.
# Persisted as one JSON file (temp file + rename, so a crash never leaves half a file).

class Store:
    def __init__(self, path: str | None):
        self.path = path
        self.lock = threading.RLock()
        self.state = {"resources": {}, "usageOutbox": [], "requestCounts": {}, "storageReported": {}}
        if path and os.path.exists(path):
            with open(path) as f:
                self.state.update(json.load(f))

    @property
    def resources(self) -> dict:
        return self.state["resources"]

    def save(self):
        if not self.path:
            return
        with self.lock:
            tmp = f"{self.path}.tmp{threading.get_ident()}"
            with open(tmp, "w") as f:
                json.dump(self.state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)

    def get(self, rid: str) -> dict:
        res = self.resources.get(rid)
        if res is None:
            raise Refused(404, "not_found", f"resource {rid} not found",
                          "This Acme KV store does not exist (it may have been deleted).")
        return res


def stored_bytes(res: dict) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in res["data"].items())


def valid_tokens(res: dict) -> list[str]:
    now = time.time()
    return [t["value"] for t in res["tokens"] if t["expiresAt"] is None or t["expiresAt"] > now]


# --------------------------------------------------------------------------------------
# The backend: protocol operations, the KV data plane, callbacks to Wharf.

class Backend:
    def __init__(self, args, secret: bytes):
        self.args, self.secret = args, secret
        self.store = Store(args.state)
        self.public_url = (args.public_url or f"http://127.0.0.1:{args.port}").rstrip("/")
        self.wharf = f"{args.wharf_url.rstrip('/')}/v1/backend/{args.product_id}"
        self.callbacks_running: set[str] = set()   # resources with a W1 sender thread
        self.flush_lock = threading.Lock()
        # Test control (in memory only).
        self.faults: dict[str, list[dict]] = {op: [] for op in FAULT_OPS}
        self.calls: list[dict] = []
        self.outgoing: list[dict] = []

    def secrets_of(self, res: dict) -> list[dict]:
        return [{"name": "KV_REST_API_URL", "value": f"{self.public_url}/kv/{res['id']}"},
                {"name": "KV_REST_API_TOKEN", "value": res["tokens"][-1]["value"]}]

    # -- B1 PUT /resources/{id}: provision or re-apply, idempotent ----------------------
    def provision(self, rid: str, body: dict) -> tuple[int, dict]:
        if body.get("resourceId", rid) != rid:
            raise Refused(400, "bad_request", "resourceId in the body differs from the path")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise Refused(400, "validation_error", "metadata must be an object")
        region = metadata.get("region", REGIONS[0])
        if region not in REGIONS:
            raise Refused(422, "validation_error", f"unsupported region {region!r}",
                          f"Acme KV is not available in region {region}",
                          fields=[{"key": "region", "message": f"one of {', '.join(REGIONS)}"}])
        with self.store.lock:
            res = self.store.resources.get(rid)
            if res is None:   # new: a fresh token and an empty store
                res = self.store.resources[rid] = {
                    "id": rid, "data": {}, "suspended": False, "createdAt": now_iso(),
                    "status": "pending" if self.args.async_provision else "ready",
                    "tokens": [{"value": "akv_" + secrets.token_urlsafe(32), "expiresAt": None}],
                }
            # A re-apply refreshes what Wharf knows; data and tokens are kept.
            res.update(installationId=body.get("installationId", res.get("installationId")),
                       productId=body.get("productId", self.args.product_id),
                       name=body.get("name", res.get("name")), metadata=metadata,
                       plan=body.get("plan", res.get("plan")))
            self.store.save()
            if res["status"] == "pending":
                self.start_status_callback(rid)
                return 202, {"status": "pending"}
            return 200, {"status": "ready", "secrets": self.secrets_of(res)}

    # -- B2 PATCH /resources/{id} --------------------------------------------------------
    def update(self, rid: str, body: dict) -> tuple[int, dict]:
        status = body.get("status")
        if status is not None and status not in ("suspended", "resumed"):
            raise Refused(400, "validation_error", "status must be suspended or resumed")
        with self.store.lock:
            res = self.store.get(rid)
            for key in ("name", "metadata", "plan"):
                if key in body:
                    res[key] = body[key]
            if status:
                res["suspended"] = status == "suspended"
            self.store.save()
            return 200, {"status": "suspended" if res["suspended"] else res["status"]}

    # -- B3 DELETE /resources/{id}: 404 (already gone) is success for Wharf too ----------
    def delete(self, rid: str) -> tuple[int, dict | None]:
        with self.store.lock:
            self.store.get(rid)
            self.collect_usage(requests_only=True)   # bill the requests made before it
            del self.store.resources[rid]
            self.store.state["storageReported"].pop(rid, None)
            self.store.save()
        return 204, None

    # -- B4 POST /resources/{id}/secrets/rotate ------------------------------------------
    def rotate(self, rid: str, body: dict, idem_key: str | None) -> tuple[int, dict]:
        grace = body.get("expireOldAfterSeconds", 0)
        if not isinstance(grace, (int, float)) or isinstance(grace, bool) or grace < 0:
            raise Refused(400, "validation_error", "expireOldAfterSeconds must be a number >= 0")
        with self.store.lock:
            res = self.store.get(rid)
            done = res.setdefault("rotations", {})
            if idem_key and idem_key in done:   # a retried rotation: same answer, no new token
                return 200, {"secrets": self.secrets_of(res)}
            expires = time.time() + grace      # old tokens keep working for the grace period
            for tok in res["tokens"]:
                if tok["expiresAt"] is None or tok["expiresAt"] > expires:
                    tok["expiresAt"] = expires
            res["tokens"] = [t for t in res["tokens"] if t["expiresAt"] > time.time() - 1]
            res["tokens"].append({"value": "akv_" + secrets.token_urlsafe(32), "expiresAt": None})
            if idem_key:
                done[idem_key] = now_iso()
                while len(done) > 20:
                    done.pop(next(iter(done)))
            self.store.save()
            return 200, {"secrets": self.secrets_of(res)}

    # -- B5 POST /resources/{id}/repl: a tiny command language ---------------------------
    def repl(self, rid: str, body: dict) -> tuple[int, dict]:
        text = body.get("input")
        if not isinstance(text, str):
            raise Refused(400, "validation_error", "input must be a string")
        with self.store.lock:
            res = self.store.get(rid)
            blocks = self.run_command(res, text.strip(), bool(body.get("readOnly")))
            self.store.save()
        return 200, {"blocks": blocks}

    @staticmethod
    def run_command(res: dict, line: str, read_only: bool) -> list[dict]:
        def para(msg, color=None):
            t = {"type": "text", "text": msg}
            if color:
                t["color"] = color
            return {"type": "paragraph", "children": [t]}

        cmd, _, rest = line.partition(" ")
        cmd, rest = cmd.lower(), rest.strip()
        data = res["data"]
        if cmd in ("", "help"):
            return [para("Commands: get KEY | set KEY VALUE | del KEY | keys | help")]
        if cmd in ("set", "del") and read_only:
            return [para(f"Error: {cmd} is not allowed for read-only users", ERROR_COLOR)]
        if cmd in ("set", "del") and res["suspended"]:
            return [para("Error: this store is suspended", ERROR_COLOR)]
        if cmd == "get" and rest:
            return [para(data[rest])] if rest in data else [para("(nil)", "#888")]
        if cmd == "set" and rest:
            key, _, value = rest.partition(" ")
            data[key] = value
            return [para("OK")]
        if cmd == "del" and rest:
            return [para("1" if data.pop(rest, None) is not None else "0")]
        if cmd == "keys":
            header = [{"type": "text", "text": "key", "bold": True},
                      {"type": "text", "text": "bytes", "bold": True}]
            rows = [[{"type": "text", "text": k}, {"type": "text", "text": str(len(v.encode()))}]
                    for k, v in sorted(data.items())]
            return [{"type": "table", "header": header, "rows": rows},
                    para(f"{len(rows)} key{'' if len(rows) == 1 else 's'}")]
        return [para(f"Error: unknown command {line!r}; try help", ERROR_COLOR)]

    # -- B6 POST /resources/{id}/transfer ------------------------------------------------
    def transfer(self, rid: str, body: dict) -> tuple[int, None]:
        to = body.get("toInstallationId")
        if not isinstance(to, str) or not to:
            raise Refused(400, "validation_error", "toInstallationId is required")
        with self.store.lock:
            self.store.get(rid)["installationId"] = to
            self.store.save()
        return 204, None

    # -- Calls to Wharf (W1-W3), signed as in §2 -----------------------------------------
    def call_wharf(self, path: str, body: dict) -> tuple[int, object]:
        raw = json.dumps(body).encode()
        req = urllib.request.Request(f"{self.wharf}/{path}", data=raw, method="POST", headers={
            "Content-Type": "application/json", "Wharf-Signature": sign(self.secret, raw)})
        entry = {"method": "POST", "url": req.full_url, "body": body, "time": now_iso()}
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, text = resp.status, resp.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode(errors="replace")
        except (OSError, ValueError) as e:   # refused, timed out, reset
            status, text = 0, str(e)
        try:
            answer = json.loads(text) if text else None
        except ValueError:
            answer = text
        entry.update(status=status, answer=answer)
        if self.args.test_control:
            with self.store.lock:
                self.outgoing.append(entry)
        return status, answer

    # W1 after an asynchronous provision: wait, become ready, tell Wharf until it answers 200.
    def start_status_callback(self, rid: str):
        with self.store.lock:
            if rid in self.callbacks_running:
                return
            self.callbacks_running.add(rid)
        threading.Thread(target=self.status_callback, args=(rid,), daemon=True).start()

    def status_callback(self, rid: str):
        try:
            time.sleep(self.args.async_delay_ms / 1000)
            delay = 0.2
            while True:
                with self.store.lock:
                    res = self.store.resources.get(rid)
                    if res is None:   # deleted meanwhile: nothing to report
                        return
                    res["status"] = "ready"
                    self.store.save()
                    body = {"status": "ready", "secrets": self.secrets_of(res)}
                status, answer = self.call_wharf(f"resources/{rid}/status", body)
                if status == 200:
                    return
                log(f"W1 for {rid} answered {status} {answer!r}; retrying in {delay:.1f}s")
                time.sleep(delay)
                delay = min(delay * 2, 30)
        finally:
            with self.store.lock:
                self.callbacks_running.discard(rid)

    # W2 usage. Counters become events (with their ids) in a persisted outbox first, so a
    # failed or repeated send re-sends the same ids and Wharf counts each event once.
    def collect_usage(self, requests_only=False):
        with self.store.lock:
            st, ts = self.store.state, now_iso()
            for rid, count in st["requestCounts"].items():
                if count and rid in self.store.resources:
                    st["usageOutbox"].append({"id": str(uuid.uuid4()), "resourceId": rid,
                                              "metric": "requests", "value": count,
                                              "type": "interval", "timestamp": ts})
            st["requestCounts"] = {}
            today = ts[:10]
            for rid, res in ({} if requests_only else self.store.resources).items():
                size = stored_bytes(res)   # a level: sent when it changed, and once a day
                if st["storageReported"].get(rid) != [today, size]:
                    st["storageReported"][rid] = [today, size]
                    st["usageOutbox"].append({"id": str(uuid.uuid4()), "resourceId": rid,
                                              "metric": "storageBytes", "value": size,
                                              "type": "total", "timestamp": ts})
            self.store.save()

    def flush_usage(self) -> dict:
        with self.flush_lock:
            self.collect_usage()
            answers = []
            while True:
                with self.store.lock:
                    batch = list(self.store.state["usageOutbox"][:MAX_USAGE_BATCH])
                if not batch:
                    break
                status, answer = self.call_wharf("usage", {"events": batch})
                answers.append({"status": status, "body": answer})
                if status == 200:
                    self.drop_events({e["id"] for e in batch})
                elif status == 422 and isinstance(answer, dict):
                    # Refused whole; drop only the events Wharf named, resend the rest.
                    bad = {batch[int(m.group(1))]["id"]
                           for f in answer.get("error", {}).get("fields", [])
                           if (m := re.match(r"events\[(\d+)\]", str(f.get("key", ""))))
                           and int(m.group(1)) < len(batch)}
                    log(f"usage batch refused (422): dropping {len(bad)} invalid event(s)")
                    if not bad:
                        break
                    self.drop_events(bad)
                elif status == 404:
                    # Names a resource Wharf no longer knows: drop events of resources we
                    # deleted too, keep the rest.
                    with self.store.lock:
                        gone = {e["id"] for e in batch
                                if e["resourceId"] not in self.store.resources}
                    log(f"usage batch answered 404: dropping {len(gone)} event(s) of deleted resources")
                    if not gone:
                        break
                    self.drop_events(gone)
                else:   # Wharf down or failing: keep everything, retry next time, same ids
                    log(f"usage report answered {status}; keeping {len(batch)} event(s) for later")
                    break
            with self.store.lock:
                pending = len(self.store.state["usageOutbox"])
            return {"answers": answers, "pending": pending}

    def drop_events(self, ids: set[str]):
        with self.store.lock:
            st = self.store.state
            st["usageOutbox"] = [e for e in st["usageOutbox"] if e["id"] not in ids]
            self.store.save()

    def usage_loop(self):
        while True:
            time.sleep(self.args.usage_interval_s)
            try:
                self.flush_usage()
            except Exception as e:   # never let the reporter die
                log(f"usage flush failed: {e!r}")

    # -- KV data plane: what the provider's users call with the secrets ------------------
    def kv(self, method: str, rid: str, key: str, auth: str | None, body: bytes):
        with self.store.lock:
            res = self.store.resources.get(rid)
            token = auth[7:] if auth and auth.startswith("Bearer ") else ""
            if res is None or not token or not any(
                    hmac.compare_digest(token.encode(), t.encode()) for t in valid_tokens(res)):
                return 401, api_error("unauthorized", "missing or invalid token")
            if res["suspended"]:
                return 403, api_error("forbidden", "this store is suspended")
            if res["status"] != "ready":
                return 503, api_error("unavailable", "this store is still being provisioned")
            counts = self.store.state["requestCounts"]
            counts[rid] = counts.get(rid, 0) + 1
            if method == "GET":
                if key not in res["data"]:
                    return 404, api_error("not_found", f"no key {key!r}")
                return 200, res["data"][key].encode()   # the value itself, as stored
            if method == "PUT":
                value = body.decode("utf-8", errors="replace")
                limit = ((res.get("plan") or {}).get("limits") or {}).get("storageBytes")
                old = len(key.encode()) + len(res["data"][key].encode()) if key in res["data"] else 0
                if limit is not None and stored_bytes(res) - old + len(key.encode()) + len(body) > limit:
                    return 413, api_error("storage_limit", f"plan limit of {limit} bytes reached")
                res["data"][key] = value
                self.store.save()
                return 200, {"ok": True}
            deleted = res["data"].pop(key, None) is not None   # DELETE
            self.store.save()
            return 200, {"deleted": deleted}


def log(msg: str):
    print(f"[acme-kv] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# HTTP routing.

ROUTES = [   # (method, path under BASE, operation name)
    ("PUT", re.compile(r"^/resources/([^/]+)$"), "PUT"),
    ("PATCH", re.compile(r"^/resources/([^/]+)$"), "PATCH"),
    ("DELETE", re.compile(r"^/resources/([^/]+)$"), "DELETE"),
    ("POST", re.compile(r"^/resources/([^/]+)/secrets/rotate$"), "rotate"),
    ("POST", re.compile(r"^/resources/([^/]+)/repl$"), "repl"),
    ("POST", re.compile(r"^/resources/([^/]+)/transfer$"), "transfer"),
]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive; every answer carries Content-Length
    backend: Backend = None         # set in main()

    def log_message(self, fmt, *args):   # quiet; errors go through log()
        pass

    def do_GET(self):
        self.dispatch()

    do_PUT = do_PATCH = do_DELETE = do_POST = do_GET

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                out += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return out
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def send(self, status: int, body=None):
        """bytes are sent as text (a KV value), a str as is, anything else as JSON."""
        ctype = "text/plain; charset=utf-8" if isinstance(body, bytes) else "application/json"
        raw = b"" if body is None or status == 204 else (
            body if isinstance(body, bytes) else
            body.encode() if isinstance(body, str) else json.dumps(body).encode())
        self.send_response(status)
        if raw:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def dispatch(self):
        path = urllib.parse.urlsplit(self.path).path
        body = self.read_body()
        try:
            if path.startswith(BASE + "/"):
                return self.protocol_call(path, body)
            if path.startswith("/kv/"):
                rid, _, key = path[4:].partition("/")
                if self.command in ("GET", "PUT", "DELETE") and key:
                    return self.send(*self.backend.kv(self.command, urllib.parse.unquote(rid),
                                                      urllib.parse.unquote(key),
                                                      self.headers.get("Authorization"), body))
            if path.startswith("/_control/") and self.backend.args.test_control:
                return self.control(path, body)
            self.send(404, api_error("not_found", f"no route {self.command} {path}"))
        except Exception as e:   # a bug: answer 500 (Wharf treats it as a fault and retries)
            log(f"{self.command} {path} failed: {e!r}")
            self.send(500, api_error("internal", "internal error"))

    def protocol_call(self, path: str, raw: bytes):
        b = self.backend
        sub = path[len(BASE):]
        route = next(((op, m) for meth, rx, op in ROUTES
                      if meth == self.command and (m := rx.match(sub))), None)
        sig_ok = verify(b.secret, self.headers.get("Wharf-Signature"), raw)
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = raw.decode(errors="replace")
        record = {"method": self.command, "path": path, "op": route[0] if route else None,
                  "idempotencyKey": self.headers.get("Idempotency-Key"),
                  "requestId": self.headers.get("Wharf-Request-Id"), "body": body,
                  "signatureValid": sig_ok, "time": now_iso()}
        status, answer = self.answer_protocol(route, sig_ok, body, record["idempotencyKey"])
        record["status"] = status
        if b.args.test_control:   # the call log exists for tests only
            with b.store.lock:
                b.calls.append(record)
        self.send(status, answer)

    def answer_protocol(self, route, sig_ok: bool, body, idem_key) -> tuple[int, object]:
        b = self.backend
        if not sig_ok:   # before anything else, including "no such route"
            return 401, api_error("unauthorized", "missing, stale or invalid Wharf-Signature")
        if route is None:
            return 404, api_error("not_found", f"no route {self.command} {self.path}")
        op, m = route
        rid = urllib.parse.unquote(m.group(1))
        fault = self.take_fault(op)
        if fault:
            time.sleep(fault.get("delayMs", 0) / 1000)
            if fault.get("status"):   # answer this instead of doing the work
                default = api_error("injected", "injected fault") if fault["status"] >= 400 else {}
                return fault["status"], fault.get("body", default)
        try:
            if not isinstance(body, dict):
                raise Refused(400, "bad_request", "the body must be a JSON object")
            if op == "PUT":
                return b.provision(rid, body)
            if op == "PATCH":
                return b.update(rid, body)
            if op == "DELETE":
                return b.delete(rid)
            if op == "rotate":
                return b.rotate(rid, body, idem_key)
            if op == "repl":
                return b.repl(rid, body)
            return b.transfer(rid, body)
        except Refused as e:
            return e.status, e.body

    def take_fault(self, op: str) -> dict | None:
        with self.backend.store.lock:
            queue = self.backend.faults[op]
            if not queue:
                return None
            fault = queue[0]
            fault["count"] -= 1
            if fault["count"] <= 0:
                queue.pop(0)
            return fault

    # -- /_control (only with --test-control): unsigned, for tests -----------------------
    def control(self, path: str, raw: bytes):
        b = self.backend
        if path == "/_control/faults" and self.command == "POST":
            f = json.loads(raw or b"{}")
            if f.get("op") not in FAULT_OPS:
                return self.send(400, api_error("bad_request", f"op must be one of {FAULT_OPS}"))
            fault = {"status": int(f.get("status", 0)), "count": int(f.get("count", 1)),
                     "delayMs": int(f.get("delayMs", 0))}
            if "body" in f:
                fault["body"] = f["body"]
            with b.store.lock:
                b.faults[f["op"]].append(fault)
            return self.send(200, {"ok": True})
        if path == "/_control/faults" and self.command == "DELETE":
            with b.store.lock:
                b.faults = {op: [] for op in FAULT_OPS}
            return self.send(200, {"ok": True})
        if path == "/_control/calls" and self.command == "GET":
            with b.store.lock:
                return self.send(200, list(b.calls))
        if path == "/_control/outgoing" and self.command == "GET":
            with b.store.lock:
                return self.send(200, list(b.outgoing))
        if path == "/_control/flush-usage" and self.command == "POST":
            return self.send(200, b.flush_usage())
        if path == "/_control/resources" and self.command == "GET":
            with b.store.lock:
                return self.send(200, json.loads(json.dumps(b.store.state)))
        self.send(404, api_error("not_found", f"no control route {self.command} {path}"))


# --------------------------------------------------------------------------------------

def main():
    p = argparse.ArgumentParser(description="Acme KV, an example Wharf product backend")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=7000, help="0 picks a free port")
    p.add_argument("--wharf-url", required=True, help="Wharf's public URL (for callbacks)")
    p.add_argument("--product-id", required=True, help="the catalog product id, e.g. acme-kv")
    p.add_argument("--secret-env", default="ACME_BACKEND_SECRET",
                   help="environment variable holding the shared secret (>= 32 bytes)")
    p.add_argument("--state", help="JSON file to keep state in (default: memory only)")
    p.add_argument("--public-url", help="base URL users reach the KV API at")
    p.add_argument("--async-provision", action="store_true",
                   help="answer provisions 202 pending and report readiness by callback (W1)")
    p.add_argument("--async-delay-ms", type=int, default=500)
    p.add_argument("--usage-interval-s", type=float, default=5.0)
    p.add_argument("--test-control", action="store_true",
                   help="serve the unsigned /_control API (tests only)")
    args = p.parse_args()

    secret = os.environ.get(args.secret_env, "").encode()
    if len(secret) < MIN_SECRET_BYTES:
        sys.exit(f"acme-kv: environment variable {args.secret_env} must hold the shared secret "
                 f"(at least {MIN_SECRET_BYTES} bytes; it is {'unset' if not secret else 'too short'})")

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    args.port = server.server_address[1]
    backend = Handler.backend = Backend(args, secret)

    # Resources still pending from before a restart get their W1 callback again.
    for rid, res in list(backend.store.resources.items()):
        if res["status"] == "pending":
            backend.start_status_callback(rid)
    threading.Thread(target=backend.usage_loop, daemon=True).start()

    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"listening on {args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    backend.store.save()


if __name__ == "__main__":
    main()
