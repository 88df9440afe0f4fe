#!/usr/bin/python3
"""Soak driver for bench/soak.sh: a steady mixed load against one running wharf for a fixed
time, with the server's fd count, RSS and the requests' latency sampled every second.

usage:
  soak.py mint OUT_DIR --aud AUD --inst ICFG --system N --user M --ttl S
      Writes OUT_DIR/jwks.json, system_tokens.txt (N distinct system tokens), user_tokens.txt
      (M distinct ADMIN user tokens), system_cached.txt and user_cached.txt (one token each,
      reused for the whole run). Signs in 2 processes with ../shared/bench/lib/jwtkit.py.
  soak.py run --base URL --pid PID --tokens DIR --inst ICFG --seconds D --out DIR
              [--sandbox-pid PID] [--data-dir DIR] [--warmup S] [--rate-scale X]
              [--live N] [--access-token T] [--lanes a,b,...] [--preload N]
      Upserts the installation, provisions the resources the load starts with (and, with
      --preload, provisions and deletes N more), runs the lanes below for D seconds, writes
      OUT_DIR/soak-samples.csv (one row per second), soak-report.txt and soak-summary.json,
      prints the report with PASS/FAIL lines and exits 1 on FAIL.

Lanes (each one thread, paced at a fixed rate; at most rate x D x 1.5 steps, and never past
the deadline; every HTTP call has a 30 s timeout), rates at --rate-scale 1:
  fresh      40/s  Partner API reads, a token never seen before on every request:
                   Get Installation, List Resources, Get Resource, List Plans (installation)
  cached     30/s  the same reads with one system token reused for the whole run
  dp-read    30/s  POST $DATABASE_URL/query point reads (DATABASE_TOKEN), live databases
  dp-write   10/s  upserts into a bounded key range (databases stay small) and batches
  churn       1/s  provision (fresh user token; every 4th with an Idempotency-Key, replayed
                   once), create + fill its table, delete the oldest live database (user
                   or system token, alternately) once more than --live are alive, then
                   check its DATABASE_TOKEN is refused (401/404 expected there)
  repl       4/s   POST …/resources/{id}/repl (JSON, or application/jsonl streaming), fresh
                   and cached user tokens
  ops        3/s   /healthz, /readyz, /metrics, each on a new connection (connect/close)
"""
import argparse
import http.client
import json
import os
import random
import statistics
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT = 30.0


# ------------------------------------------------------------------------------------ mint
def _mint_part(args):
    pem, kid, aud, inst, kind, start, stop, now, ttl, path = args
    sys.path.insert(0, _jwtkit_dir())
    from jwtkit import KeySet, system_claims, user_claims
    from cryptography.hazmat.primitives import serialization
    ks = KeySet(0)
    ks.keys.append((kid, serialization.load_pem_private_key(pem, password=None)))
    with open(path, "w") as f:
        for i in range(start, stop):
            if kind == "system":
                c = system_claims(aud, inst, ttl=0)
            else:
                c = user_claims(aud, inst, ttl=0)
            c["iat"] = now - (i % 120)   # distinct tokens: iat and exp vary, claims do not
            c["nbf"] = c["iat"] - 5
            c["exp"] = now + ttl + i // 120
            f.write(ks.sign(c) + "\n")
    return path


def _jwtkit_dir():
    shared = os.environ.get("SHARED_DIR") or os.path.join(HERE, "..", "..", "shared")
    return os.path.join(shared, "bench", "lib")


def mint(a):
    import multiprocessing as mp
    sys.path.insert(0, _jwtkit_dir())
    from jwtkit import KeySet
    from cryptography.hazmat.primitives import serialization
    os.makedirs(a.out, exist_ok=True)
    ks = KeySet()
    kid, key = ks.keys[0]
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    with open(os.path.join(a.out, "jwks.json"), "w") as f:
        json.dump(ks.jwks(), f)
    now = int(time.time())
    jobs = []
    for kind, n, name in (("system", a.system, "system_tokens.txt"),
                          ("user", a.user, "user_tokens.txt"),
                          ("system", 1, "system_cached.txt"),
                          ("user", 1, "user_cached.txt")):
        parts = 2 if n > 100 else 1
        step = (n + parts - 1) // parts
        for p in range(parts):
            lo, hi = p * step, min(n, (p + 1) * step)
            if lo < hi:
                jobs.append((pem, kid, a.aud, a.inst, kind, lo, hi, now, a.ttl,
                             os.path.join(a.out, f"{name}.part{p}")))
    t0 = time.time()
    with mp.Pool(2) as pool:
        pool.map(_mint_part, jobs)
    for name in ("system_tokens.txt", "user_tokens.txt", "system_cached.txt", "user_cached.txt"):
        with open(os.path.join(a.out, name + ".tmp"), "w") as out:
            for p in range(2):
                part = os.path.join(a.out, f"{name}.part{p}")
                if os.path.exists(part):
                    with open(part) as f:
                        out.write(f.read())
                    os.remove(part)
        os.replace(os.path.join(a.out, name + ".tmp"), os.path.join(a.out, name))
    print(f"minted {a.system} system + {a.user} user tokens in {time.time() - t0:.1f}s, "
          f"valid {a.ttl}s", file=sys.stderr)


# ------------------------------------------------------------------------------ recording
class Recorder:
    """Every request's outcome, bucketed by the second (since t0) in which it completed."""

    def __init__(self):
        self.mu = threading.Lock()
        self.t0 = None
        self.lat = {}            # second -> [latency ms]
        self.errs = {}           # second -> count
        self.by_lane = {}        # lane -> [latency ms]
        self.counts = {}         # (lane, route, status) -> n
        self.error_samples = []  # first few unexpected outcomes
        self.errors = 0
        self.conn_errors = 0
        self.requests = 0

    def add(self, lane, route, status, ms, ok, detail=""):
        sec = int(time.monotonic() - self.t0) if self.t0 is not None else -1
        with self.mu:
            if sec < 0:  # setup, before the measured run
                if not ok:
                    self.errors += 1
                    self.error_samples.append(f"setup {route}: {status} {detail}")
                return
            self.requests += 1
            self.lat.setdefault(sec, []).append(ms)
            self.by_lane.setdefault(lane, []).append(ms)
            key = (lane, route, status)
            self.counts[key] = self.counts.get(key, 0) + 1
            if not ok:
                self.errors += 1
                if status == 0:
                    self.conn_errors += 1
                self.errs[sec] = self.errs.get(sec, 0) + 1
                if len(self.error_samples) < 30:
                    self.error_samples.append(f"t={sec}s {lane} {route}: {status} {detail[:300]}")


REC = Recorder()


class Client:
    """One keep-alive connection (or a new one per request with fresh_conn)."""

    def __init__(self, base, lane, fresh_conn=False):
        assert base.startswith("http://127.0.0.1:"), base
        self.host, self.port = "127.0.0.1", int(base.rsplit(":", 1)[1].split("/")[0])
        self.lane, self.fresh_conn, self.conn = lane, fresh_conn, None

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None

    def call(self, method, path, route, token=None, body=None, expect=(200,), headers=None):
        """Returns (status, parsed JSON or raw bytes or None); records the outcome."""
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if self.fresh_conn:
            h["Connection"] = "close"
        t = time.perf_counter()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
            self.conn.request(method, path, body=data, headers=h)
            r = self.conn.getresponse()
            raw = r.read()
            status = r.status
            ctype = r.getheader("Content-Type", "")
            if self.fresh_conn or r.will_close:
                self.close()
        except Exception as e:  # connection refused/reset, timeout, bad response
            ms = (time.perf_counter() - t) * 1000
            self.close()
            REC.add(self.lane, route, 0, ms, False, f"{type(e).__name__}: {e}")
            return 0, None
        ms = (time.perf_counter() - t) * 1000
        ok = status in expect
        REC.add(self.lane, route, status, ms, ok, "" if ok else raw[:300].decode("utf-8", "replace"))
        out = raw
        if ctype.startswith("application/json") and raw:
            try:
                out = json.loads(raw)
            except ValueError:
                pass
        return status, out


class TokenPool:
    def __init__(self, path):
        with open(path) as f:
            self.tokens = [t.strip() for t in f if t.strip()]
        self.i = 0
        self.mu = threading.Lock()
        self.wrapped = 0

    def next(self):
        with self.mu:
            if self.i >= len(self.tokens):
                self.i = 0
                self.wrapped += 1
            t = self.tokens[self.i]
            self.i += 1
            return t


# ------------------------------------------------------------------------------ resources
class Live:
    """The databases the load uses: an anchor that lives for the whole run, plus a rolling
    set that the churn lane provisions and deletes. A database is only deleted once no lane
    is using it (in-use counts), so a lane never races a delete into a 404."""

    def __init__(self):
        self.mu = threading.Condition()
        self.items = []      # dicts {id, path, token, uses, n}
        self.anchor = None

    def pick(self, include_anchor=True):
        with self.mu:
            pool = self.items + ([self.anchor] if include_anchor and self.anchor else [])
            if not pool:
                return None
            r = random.choice(pool)
            r["uses"] += 1
            return r

    def put(self, r):
        with self.mu:
            r["uses"] -= 1
            self.mu.notify_all()

    def add(self, r):
        with self.mu:
            self.items.append(r)

    def retire_oldest(self, keep, deadline):
        """Removes the oldest rolling database once more than `keep` are alive and waits
        (bounded) until nobody uses it; returns it or None."""
        with self.mu:
            if len(self.items) <= keep:
                return None
            r = self.items.pop(0)
            end = min(deadline, time.monotonic() + 10)
            while r["uses"] > 0 and time.monotonic() < end:
                self.mu.wait(0.1)
            return r

    def count(self):
        with self.mu:
            return len(self.items)


LIVE = Live()
STOP = threading.Event()


def db_path(url):
    # DATABASE_URL is <public URL>/v1/databases/<id>; we only ever talk to 127.0.0.1.
    return "/" + url.split("/", 3)[3]


def provision(cl, inst, token, name, idem=None):
    h = {"Idempotency-Key": idem} if idem else None
    st, res = cl.call("POST", f"/v1/installations/{inst}/resources", "provision", token,
                      {"productId": "sqlite-db", "name": name, "metadata": {"durability": "full"},
                       "billingPlanId": "sqlite-free"}, headers=h)
    if st != 200 or not isinstance(res, dict):
        return None, res
    secrets = {s["name"]: s["value"] for s in res.get("secrets", [])}
    return {"id": res["id"], "path": db_path(secrets["DATABASE_URL"]) + "/query",
            "token": secrets["DATABASE_TOKEN"], "uses": 0, "n": 0}, res


def fill(cl, r, rows):
    cl.call("POST", r["path"], "dp-setup", r["token"], {"statements": [
        {"sql": "create table kv(k integer primary key, v text)"},
        {"sql": "with recursive c(x) as (select 1 union all select x+1 from c limit ?) "
                "insert into kv select x, 'value-' || x from c", "params": [rows]}]})


# ----------------------------------------------------------------------------------- lanes
class Ctx:
    def __init__(self, a, tokens_dir):
        self.a = a
        self.inst = a.inst
        self.fresh_sys = TokenPool(os.path.join(tokens_dir, "system_tokens.txt"))
        self.fresh_user = TokenPool(os.path.join(tokens_dir, "user_tokens.txt"))
        self.cached_sys = open(os.path.join(tokens_dir, "system_cached.txt")).read().strip()
        self.cached_user = open(os.path.join(tokens_dir, "user_cached.txt")).read().strip()
        self.metrics = {}
        self.metrics_mu = threading.Lock()
        self.churn_n = 0
        self.deadline = None


def partner_read(ctx, cl, i, token):
    inst = ctx.inst
    k = i % 4
    if k == 0:
        cl.call("GET", f"/v1/installations/{inst}", "get-installation", token)
    elif k == 1:
        cl.call("GET", f"/v1/installations/{inst}/resources", "list-resources", token)
    elif k == 2:
        r = LIVE.pick()
        try:
            cl.call("GET", f"/v1/installations/{inst}/resources/{r['id']}", "get-resource", token)
        finally:
            LIVE.put(r)
    else:
        cl.call("GET", f"/v1/installations/{inst}/plans", "list-plans", token)


def lane_fresh(ctx, cl, i):
    partner_read(ctx, cl, i, ctx.fresh_sys.next())


def lane_cached(ctx, cl, i):
    partner_read(ctx, cl, i, ctx.cached_sys)


def lane_dp_read(ctx, cl, i):
    r = LIVE.pick()
    try:
        if i % 10 == 9:
            cl.call("POST", r["path"], "dp-read", r["token"], {"statements": [
                {"sql": "select count(*), max(k) from kv"},
                {"sql": "select k, v from kv where k between ? and ?", "params": [i % 900, i % 900 + 20]}]})
        else:
            cl.call("POST", r["path"], "dp-read", r["token"],
                    {"sql": "select v from kv where k = ?", "params": [i % 1000 + 1]})
    finally:
        LIVE.put(r)


def lane_dp_write(ctx, cl, i):
    r = LIVE.pick()
    try:
        k = random.randint(1, 200)  # bounded key range: the databases do not grow
        if i % 5 == 4:
            cl.call("POST", r["path"], "dp-write", r["token"], {"statements": [
                {"sql": "insert into kv(k, v) values(?, ?) on conflict(k) do update set v = excluded.v",
                 "params": [k, f"w{i}"]},
                {"sql": "update kv set v = v || '.' where k = ?", "params": [k]},
                {"sql": "delete from kv where k = ?", "params": [k + 5000]}]})
        else:
            cl.call("POST", r["path"], "dp-write", r["token"],
                    {"sql": "insert into kv(k, v) values(?, ?) on conflict(k) do update set v = excluded.v",
                     "params": [k, f"value-{i}"]})
    finally:
        LIVE.put(r)


def lane_churn(ctx, cl, i):
    ctx.churn_n += 1
    n = ctx.churn_n
    idem = f"soak-{uuid.uuid4().hex}" if n % 4 == 0 else None
    r, res = provision(cl, ctx.inst, ctx.fresh_user.next(), f"soak-{n}", idem)
    if r is None:
        return
    if idem:  # a retried provision returns the same resource
        st, again = cl.call("POST", f"/v1/installations/{ctx.inst}/resources", "provision-replay",
                            ctx.fresh_user.next(),
                            {"productId": "sqlite-db", "name": f"soak-{n}",
                             "metadata": {"durability": "full"}, "billingPlanId": "sqlite-free"},
                            headers={"Idempotency-Key": idem})
        if st == 200 and isinstance(again, dict) and again.get("id") != r["id"]:
            REC.add("churn", "provision-replay", 200, 0, False,
                    f"replay returned {again.get('id')} instead of {r['id']}")
    fill(cl, r, 100)
    LIVE.add(r)
    old = LIVE.retire_oldest(ctx.a.live, ctx.deadline)
    if old is None:
        return
    token = ctx.fresh_user.next() if n % 2 else ctx.fresh_sys.next()
    cl.call("DELETE", f"/v1/installations/{ctx.inst}/resources/{old['id']}", "delete", token,
            expect=(204,))
    # Its data plane is gone with it.
    cl.call("POST", old["path"], "dp-after-delete", old["token"],
            {"sql": "select 1"}, expect=(401, 404))


def lane_repl(ctx, cl, i):
    r = LIVE.pick()
    try:
        token = ctx.fresh_user.next() if i % 2 else ctx.cached_user
        inputs = ["select count(*) as n, max(k) from kv;",
                  ".tables",
                  "select k, v from kv order by k limit 5;\n.schema kv",
                  "insert into kv(k, v) values(1, 'repl') on conflict(k) do update set v = 'repl';"
                  " select v from kv where k = 1;"]
        headers = {"Accept": "application/jsonl"} if i % 3 == 0 else None
        cl.call("POST", f"/v1/installations/{ctx.inst}/resources/{r['id']}/repl", "repl", token,
                {"input": inputs[i % len(inputs)]}, headers=headers)
    finally:
        LIVE.put(r)


def lane_ops(ctx, cl, i):
    k = i % 3
    if k == 0:
        cl.call("GET", "/healthz", "healthz")
    elif k == 1:
        cl.call("GET", "/readyz", "readyz")
    else:
        st, body = cl.call("GET", "/metrics", "metrics")
        if st == 200 and isinstance(body, bytes):
            ctx_metrics(ctx, body.decode("utf-8", "replace"))


def ctx_metrics(ctx, text):
    m = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, val = line.rpartition(" ")
        try:
            m[name] = float(val)
        except ValueError:
            pass
    with ctx.metrics_mu:
        ctx.metrics = m


LANES = [  # name, base rate per second, function, new connection per request
    ("fresh", 40.0, lane_fresh, False),
    ("cached", 30.0, lane_cached, False),
    ("dp-read", 30.0, lane_dp_read, False),
    ("dp-write", 10.0, lane_dp_write, False),
    ("churn", 1.0, lane_churn, False),
    ("repl", 4.0, lane_repl, False),
    ("ops", 3.0, lane_ops, True),
]


def run_lane(ctx, name, rate, fn, fresh_conn, t0, end):
    cl = Client(ctx.a.base, name, fresh_conn)
    period = 1.0 / rate
    max_steps = int(rate * (end - t0) * 1.5) + 10
    nxt = t0 + random.random() * period
    i = 0
    try:
        while i < max_steps and not STOP.is_set():
            now = time.monotonic()
            if now >= end:
                break
            if nxt > now:
                time.sleep(min(nxt - now, end - now))
                continue
            fn(ctx, cl, i)
            i += 1
            nxt += period
            if time.monotonic() - nxt > 1.0:  # fell behind: do not burst to catch up
                nxt = time.monotonic()
    except Exception as e:  # a bug in the driver is a FAIL, not a silent stop
        REC.add(name, "driver", -1, 0, False, f"lane crashed: {type(e).__name__}: {e}")
    finally:
        cl.close()


# -------------------------------------------------------------------------------- sampling
def status_fields(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads", "RssAnon", "RssFile", "RssShmem"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def cpu_s(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
        fields = s[s.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return -1.0


def dir_files(path):
    try:
        return len(os.listdir(path))
    except OSError:
        return -1


TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
              "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
              "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}


def fd_census(pid, own_port):
    """What the process's descriptors point at, counted by kind: database files by suffix,
    TCP sockets by state and by side (inbound to our port, or outbound to which port)."""
    socks = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    lport = int(parts[1].rsplit(":", 1)[1], 16)
                    rport = int(parts[2].rsplit(":", 1)[1], 16)
                    state = TCP_STATES.get(parts[3], parts[3])
                    if lport == own_port:
                        socks[parts[9]] = f"tcp {state} inbound"
                    else:
                        socks[parts[9]] = f"tcp {state} outbound to :{rport}"
        except OSError:
            pass
    out = {}
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for n in names:
        try:
            t = os.readlink(f"/proc/{pid}/fd/{n}")
        except OSError:
            continue
        if t.startswith("socket:["):
            k = socks.get(t[8:-1], "socket (not tcp)")
        elif t.startswith("anon_inode:"):
            k = t
        elif t.startswith("pipe:"):
            k = "pipe"
        elif "/databases/" in t:
            base = os.path.basename(t)
            k = "product db " + (base.rsplit("-", 1)[1] if base.endswith(("-wal", "-shm", "-journal")) else
                                 base.rsplit(".", 1)[-1])
        elif "/state.db" in t:
            k = "state store " + os.path.basename(t)
        else:
            k = t if t.startswith("/dev/") else "file " + os.path.basename(t)
        out[k] = out.get(k, 0) + 1
    return dict(sorted(out.items()))


def state_kb(data_dir):
    if not data_dir:
        return -1
    total = 0
    for suffix in ("", "-wal"):
        try:
            total += os.path.getsize(os.path.join(data_dir, "state.db" + suffix))
        except OSError:
            pass
    return total // 1024


def sampler(ctx, samples, t0, end):
    a = ctx.a
    k = 0
    while not STOP.is_set():
        target = t0 + k + 1
        now = time.monotonic()
        if target > end + 0.5:
            break
        if target > now:
            time.sleep(target - now)
        st = status_fields(a.pid)
        row = {"second": k + 1, "fds": fd_count(a.pid), "rss_kb": st.get("VmRSS", -1),
               "hwm_kb": st.get("VmHWM", -1), "threads": st.get("Threads", -1),
               "anon_kb": st.get("RssAnon", -1), "file_kb": st.get("RssFile", -1),
               "shmem_kb": st.get("RssShmem", -1),
               "cpu_s": round(cpu_s(a.pid), 2), "live_resources": LIVE.count() + 1,
               "db_files": dir_files(os.path.join(a.data_dir, "databases")) if a.data_dir else -1,
               "state_kb": state_kb(a.data_dir)}
        if a.sandbox_pid:
            row["sandbox_rss_kb"] = status_fields(a.sandbox_pid).get("VmRSS", -1)
        with ctx.metrics_mu:
            m = dict(ctx.metrics)
        row["outbox_pending"] = m.get("wharf_outbox_pending", -1)
        row["outbox_dead"] = m.get("wharf_outbox_dead_letters", -1)
        row["outbox_delivered"] = m.get("wharf_outbox_delivered_total", -1)
        # Where the memory is (the last scrape, at most a few seconds old): heap the program
        # holds, heap the allocator keeps free, and SQLite's share of the heap.
        row["heap_used_kb"] = int(m.get("wharf_heap_in_use_bytes", -1024) // 1024)
        row["heap_free_kb"] = int(m.get("wharf_heap_free_bytes", -1024) // 1024)
        row["sqlite_kb"] = int(m.get("wharf_sqlite_memory_bytes", -1024) // 1024)
        samples.append(row)
        k += 1


# ---------------------------------------------------------------------------------- report
def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    return sorted_vals[min(len(sorted_vals) - 1, int(round(p / 100 * (len(sorted_vals) - 1))))]


def median_of(rows, key, lo, hi):
    vals = [r[key] for r in rows if lo <= r["second"] <= hi and r[key] >= 0]
    return statistics.median(vals) if vals else float("nan")


def run(a):
    random.seed(1)
    ctx = Ctx(a, a.tokens)
    os.makedirs(a.out, exist_ok=True)
    setup = Client(a.base, "setup")
    # Upsert the installation (its access token is the one the sandbox was seeded with).
    st, _ = setup.call("PUT", f"/v1/installations/{a.inst}", "upsert", ctx.cached_user, {
        "scopes": ["read:resource"], "acceptedPolicies": {"toc": "2024-02-28T10:00:00Z"},
        "credentials": {"access_token": a.access_token, "token_type": "Bearer"},
        "account": {"url": "https://vercel.com/soak", "contact": {"email": "soak@example.com"}}})
    if st != 200:
        sys.exit(f"soak: upsert failed ({st}): {REC.error_samples}")
    anchor, _ = provision(setup, a.inst, ctx.fresh_user.next(), "soak-anchor")
    if anchor is None:
        sys.exit(f"soak: provisioning the anchor failed: {REC.error_samples}")
    fill(setup, anchor, 1000)
    LIVE.anchor = anchor
    for n in range(a.live):  # start at the steady state's size
        r, _ = provision(setup, a.inst, ctx.fresh_user.next(), f"soak-pre-{n}")
        if r is None:
            sys.exit(f"soak: provisioning failed: {REC.error_samples}")
        fill(setup, r, 100)
        LIVE.add(r)
    for n in range(a.preload):  # a store that already holds this many deleted resources
        r, _ = provision(setup, a.inst, ctx.fresh_user.next(), f"soak-preload-{n}")
        if r is None:
            sys.exit(f"soak: provisioning failed: {REC.error_samples}")
        fill(setup, r, 100)
        setup.call("DELETE", f"/v1/installations/{a.inst}/resources/{r['id']}", "delete",
                   ctx.fresh_user.next(), expect=(204,))
    setup.close()
    if REC.errors:
        sys.exit(f"soak: setup failed: {REC.error_samples}")

    port = int(a.base.rsplit(":", 1)[1])
    census0 = fd_census(a.pid, port)
    t0 = time.monotonic()
    end = t0 + a.seconds
    ctx.deadline = end
    REC.t0 = t0
    wall0 = time.time()
    samples = []
    threads = [threading.Thread(target=sampler, args=(ctx, samples, t0, end), daemon=True)]
    for name, rate, fn, fresh_conn in LANES:
        if name not in a.lanes:
            continue
        threads.append(threading.Thread(target=run_lane, daemon=True,
                                        args=(ctx, name, rate * a.rate_scale, fn, fresh_conn, t0, end)))
    for t in threads:
        t.start()
    print(f"soak: running {a.seconds}s, lanes {','.join(a.lanes)}, "
          f"~{sum(r for n, r, _, _ in LANES if n in a.lanes) * a.rate_scale:.1f} steps/s",
          file=sys.stderr)
    hard_end = end + 60
    last_note = t0
    while any(t.is_alive() for t in threads) and time.monotonic() < hard_end:
        time.sleep(0.5)
        if time.monotonic() - last_note >= 60 and samples:
            last_note = time.monotonic()
            s = samples[-1]
            print(f"soak: t={s['second']}s requests={REC.requests} errors={REC.errors} "
                  f"fds={s['fds']} rss={s['rss_kb']}kB live={s['live_resources']}",
                  file=sys.stderr)
    STOP.set()
    for t in threads:
        t.join(5)
    census1 = fd_census(a.pid, port)
    # One last scrape: the server's own count of requests by route and status.
    fin = Client(a.base, "final", fresh_conn=True)
    REC.t0 = None  # not part of the measured run
    st, body = fin.call("GET", "/metrics", "metrics")
    server_counts = {}
    if st == 200 and isinstance(body, bytes):
        ctx_metrics(ctx, body.decode("utf-8", "replace"))
        for k, v in ctx.metrics.items():
            if k.startswith("wharf_http_requests_total{"):
                server_counts[k[len("wharf_http_requests_total"):]] = int(v)
    return report(a, ctx, samples, wall0, server_counts, census0, census1)


def report(a, ctx, samples, wall0, server_counts, census0, census1):
    D = a.seconds
    warm = a.warmup if a.warmup is not None else max(10, int(D * 0.2))
    win = max(5, min(60, (D - warm) // 3))
    # Per-second latency figures joined to the samples.
    for row in samples:
        sec = row["second"] - 1   # sample k+1 closes second k
        lat = sorted(REC.lat.get(sec, []))
        row["requests"] = len(lat)
        row["errors"] = REC.errs.get(sec, 0)
        row["p50_ms"] = round(pct(lat, 50), 2) if lat else ""
        row["p99_ms"] = round(pct(lat, 99), 2) if lat else ""
        row["max_ms"] = round(lat[-1], 2) if lat else ""
    cols = ["second", "requests", "errors", "p50_ms", "p99_ms", "max_ms", "fds", "rss_kb",
            "anon_kb", "file_kb", "shmem_kb", "hwm_kb", "threads", "cpu_s", "live_resources", "db_files", "state_kb", "sandbox_rss_kb",
            "outbox_pending", "outbox_dead", "outbox_delivered", "heap_used_kb", "heap_free_kb",
            "sqlite_kb"]
    csv_path = os.path.join(a.out, "soak-samples.csv")
    with open(csv_path, "w") as f:
        f.write(",".join(cols) + "\n")
        for row in samples:
            f.write(",".join(str(row.get(c, "")) for c in cols) + "\n")

    all_lat = sorted(x for v in REC.lat.values() for x in v)
    p50, p99 = pct(all_lat, 50), pct(all_lat, 99)
    last = samples[-1]["second"] if samples else 0
    a_lo, a_hi = warm + 1, warm + win
    b_lo, b_hi = last - win + 1, last
    fd_a, fd_b = median_of(samples, "fds", a_lo, a_hi), median_of(samples, "fds", b_lo, b_hi)
    rss_a, rss_b = median_of(samples, "rss_kb", a_lo, a_hi), median_of(samples, "rss_kb", b_lo, b_hi)
    fd_start = samples[0]["fds"] if samples else -1
    rss_start = samples[0]["rss_kb"] if samples else -1
    fd_end = samples[-1]["fds"] if samples else -1
    rss_end = samples[-1]["rss_kb"] if samples else -1
    growth = lambda x, y: (y - x) / x * 100 if x and x == x and y == y else float("nan")
    fd_g, rss_g = growth(fd_a, fd_b), growth(rss_a, rss_b)
    post = [r for r in samples if r["second"] > warm and r["rss_kb"] >= 0]
    rss_slope = fd_slope = float("nan")  # least squares, per minute, after the warm-up
    if len(post) >= 2:
        xs = [r["second"] / 60 for r in post]
        mx = sum(xs) / len(xs)
        sxx = sum((x - mx) ** 2 for x in xs)
        for key in ("rss_kb", "fds"):
            ys = [r[key] for r in post]
            my = sum(ys) / len(ys)
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
            if key == "rss_kb":
                rss_slope = slope
            else:
                fd_slope = slope
    lat_a = sorted(x for s in range(a_lo - 1, a_hi) for x in REC.lat.get(s, []))
    lat_b = sorted(x for s in range(b_lo - 1, b_hi) for x in REC.lat.get(s, []))
    alive = os.path.exists(f"/proc/{a.pid}")
    enough = len(samples) >= D - 2

    out = []
    p = out.append
    p(f"soak: {D}s, lanes {','.join(a.lanes)}, rate scale {a.rate_scale}, warm-up {warm}s, windows of {win}s "
      f"(seconds {a_lo}-{a_hi} vs {b_lo}-{b_hi}); started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(wall0))}")
    p(f"requests {REC.requests} ({REC.requests / max(1, D):.1f}/s), errors {REC.errors} "
      f"(connection errors {REC.conn_errors}), fresh tokens used {ctx.fresh_sys.i + ctx.fresh_sys.wrapped * len(ctx.fresh_sys.tokens)} "
      f"system / {ctx.fresh_user.i + ctx.fresh_user.wrapped * len(ctx.fresh_user.tokens)} user"
      + (" (POOL WRAPPED: tokens were reused)" if ctx.fresh_sys.wrapped or ctx.fresh_user.wrapped else ""))
    p(f"latency over the run: p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {all_lat[-1] if all_lat else 0:.1f} ms; "
      f"first window p99 {pct(lat_a, 99):.2f} ms, last window p99 {pct(lat_b, 99):.2f} ms")
    p(f"{'lane':<16}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}")
    for name, *_ in LANES:
        if name not in a.lanes:
            continue
        v = sorted(REC.by_lane.get(name, []))
        p(f"{name:<16}{len(v):>9}{pct(v, 50):>9.2f}{pct(v, 99):>9.2f}")
    p("outcomes (lane route status count): " + ", ".join(
        f"{l}/{r}/{s}={n}" for (l, r, s), n in sorted(REC.counts.items(), key=str)))
    if REC.error_samples:
        p("first errors:")
        for e in REC.error_samples:
            p("  " + e)
    p(f"fds: start {fd_start}, end {fd_end}; median {fd_a} (first window) -> {fd_b} (last window): "
      f"{fd_g:+.1f}%; trend after warm-up {fd_slope:+.2f}/min")
    kinds = sorted(set(census0) | set(census1))
    p("fds by kind, start -> end: " + ", ".join(
        f"{k} {census0.get(k, 0)}->{census1.get(k, 0)}" for k in kinds))
    p(f"RSS: start {rss_start} kB, end {rss_end} kB; median {rss_a} -> {rss_b} kB: {rss_g:+.1f}%; "
      f"trend after warm-up {rss_slope:+.0f} kB/min; peak VmHWM {max((r['hwm_kb'] for r in samples), default=-1)} kB")
    if samples:
        p("RSS parts, median first -> last window (kB): " + ", ".join(
            f"{k} {median_of(samples, k, a_lo, a_hi)} -> {median_of(samples, k, b_lo, b_hi)}"
            for k in ("anon_kb", "file_kb", "shmem_kb", "heap_used_kb", "heap_free_kb", "sqlite_kb")))
    if samples:
        s0, s1 = samples[0], samples[-1]
        p(f"threads {s0['threads']} -> {s1['threads']}; db files {s0['db_files']} -> {s1['db_files']}; "
          f"state store {s0['state_kb']} -> {s1['state_kb']} kB (db + wal); "
          f"server CPU {s1['cpu_s'] - s0['cpu_s']:.1f}s over the run; outbox pending {s1['outbox_pending']}, "
          f"dead {s1['outbox_dead']}, delivered {s1['outbox_delivered']}"
          + (f"; sandbox RSS {s0.get('sandbox_rss_kb')} -> {s1.get('sandbox_rss_kb')} kB" if a.sandbox_pid else ""))
    bad_server = {k: v for k, v in server_counts.items()
                  if not any(f'status="{c}"' in k for c in ("200", "204"))}
    p("server-side non-2xx (from /metrics, whole process life, incl. the expected "
      f"dp-after-delete 401/404s): {bad_server if bad_server else 'none'}")
    p(f"samples: {csv_path}")

    checks = [
        ("errors", REC.errors == 0, f"{REC.errors} unexpected statuses or connection errors"),
        ("server alive", alive and enough, f"wharf {'alive' if alive else 'GONE'}, {len(samples)} samples of {D}"),
        ("fd flat", fd_g == fd_g and fd_g < 5.0, f"fd growth {fd_g:+.1f}% (< 5%)"),
        ("RSS flat", rss_g == rss_g and rss_g < 5.0, f"RSS growth {rss_g:+.1f}% (< 5%)"),
    ]
    for name, ok, why in checks:
        p(f"{'PASS' if ok else 'FAIL'} {name}: {why}")
    passed = all(ok for _, ok, _ in checks)
    p(f"{'PASS' if passed else 'FAIL'} soak")
    text = "\n".join(out)
    print(text)
    with open(os.path.join(a.out, "soak-report.txt"), "w") as f:
        f.write(text + "\n")
    summary = {"date": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wall0)), "seconds": D,
               "rate_scale": a.rate_scale, "requests": REC.requests, "errors": REC.errors,
               "connection_errors": REC.conn_errors, "p50_ms": round(p50, 3), "p99_ms": round(p99, 3),
               "fd_start": fd_start, "fd_end": fd_end, "fd_median_first": fd_a, "fd_median_last": fd_b,
               "fd_growth_pct": round(fd_g, 2), "rss_start_kb": rss_start, "rss_end_kb": rss_end,
               "rss_median_first_kb": rss_a, "rss_median_last_kb": rss_b,
               "rss_growth_pct": round(rss_g, 2), "rss_trend_kb_per_min": round(rss_slope, 1),
               "fd_trend_per_min": round(fd_slope, 3), "fds_by_kind_start": census0,
               "fds_by_kind_end": census1, "lanes": a.lanes, "warmup_s": warm, "window_s": win,
               "pass": passed, "checks": {n: ok for n, ok, _ in checks}}
    with open(os.path.join(a.out, "soak-summary.json"), "w") as f:
        json.dump(summary, f)
    return 0 if passed else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("mint")
    m.add_argument("out")
    m.add_argument("--aud", required=True)
    m.add_argument("--inst", required=True)
    m.add_argument("--system", type=int, required=True)
    m.add_argument("--user", type=int, required=True)
    m.add_argument("--ttl", type=int, required=True)
    r = sub.add_parser("run")
    r.add_argument("--base", required=True)
    r.add_argument("--pid", type=int, required=True)
    r.add_argument("--sandbox-pid", type=int)
    r.add_argument("--data-dir")
    r.add_argument("--tokens", required=True)
    r.add_argument("--inst", required=True)
    r.add_argument("--access-token", default="tok_soak_access_token_0123456789")
    r.add_argument("--seconds", type=int, required=True)
    r.add_argument("--warmup", type=int)
    r.add_argument("--rate-scale", type=float, default=1.0)
    r.add_argument("--live", type=int, default=16)
    r.add_argument("--preload", type=int, default=0,
                   help="provision and delete this many resources before the run")
    r.add_argument("--out", required=True)
    r.add_argument("--lanes", default=",".join(n for n, *_ in LANES),
                   help="comma-separated subset of the lanes (default: all)")
    a = ap.parse_args()
    if a.cmd == "run":
        a.lanes = [x for x in a.lanes.split(",") if x]
        unknown = set(a.lanes) - {n for n, *_ in LANES}
        if unknown or not a.lanes:
            sys.exit(f"soak: unknown lanes {sorted(unknown)}; known: {[n for n, *_ in LANES]}")
    if a.cmd == "mint":
        mint(a)
        return 0
    if not a.base.startswith("http://127.0.0.1:"):
        sys.exit("soak: only 127.0.0.1 targets")
    return run(a)


if __name__ == "__main__":
    sys.exit(main())
