"""Crash consistency: a mixed workload through the real wharf-sandbox against a real wharf,
with wharf killed by SIGKILL at random points many times and restarted on the same data dir.

Each run: a few worker threads drive provisions (sandbox `provision` flow), data-plane
writes (single rows and three-row batches with unique ids), reads (usage), secret rotations,
prepaid-credit purchases, deletions, billing passes on the test clock (both clocks moved
together), invoices marked paid at the sandbox (which sends the webhook) and new
installations; wharf is SIGKILLed after a random delay, or just after an operation of a
chosen kind has started. Then, with wharf down, `PRAGMA integrity_check` must be `ok` on
state.db and on every resource database (opened read-only). Wharf is restarted on the same
data dir, the clocks are moved on (expiring idempotency leases, running a billing pass), and
every operation whose answer was lost is retried as Vercel would (same Idempotency-Key, same
invoice). Then:

  * every acknowledged installation and provision exists (Get Installation, List and Get
    Resource through the sandbox), once per provision (a retried provision never makes a
    second resource); the secrets the sandbox holds are the newest acknowledged and work on
    the data plane; tokens an acknowledged rotation without delay replaced do not; an
    acknowledged deletion stays deleted;
  * every acknowledged write is there, every refused one is not, nothing unknown is,
    and a batch is all or nothing;
  * no invoice externalId twice at Vercel, every invoice Vercel has is wharf's and every
    invoice wharf submitted is at Vercel, and a delivered `paid` webhook is reflected;
  * every prepayment invoice is credited exactly once (purchases vs balances in state.db);
  * the outbox drains and has no dead letters (two kinds explained below are counted and
    reported instead).

Reported at the end, not failed on (CRASH_STRICT=1 fails on the file leftovers): usage of
acknowledged writes missing from the ledger (flushed once a second by design), databases
left by a provision killed before its commit, and files of deleted resources still on disk.

CRASH_SEED and CRASH_RUNS (see conftest.py) make a run repeatable in what it schedules
(operations, targets, delays); thread interleavings still differ from run to run.
CRASH_INJECT damages wharf's files once to show the checks catch it (see the test).
"""
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
import uuid

import pytest
import requests

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from lib.billing import DAY, HOUR, iso_of, next_month_start  # noqa: E402
from lib.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, Sandbox  # noqa: E402
from lib.wharf import Wharf, base_env, free_port  # noqa: E402

WHARF_BIN = os.environ.get("WHARF_BIN") or os.path.join(REPO, "build", "wharf")
SANDBOX_BIN = os.environ.get("SANDBOX_BIN") or os.path.join(REPO, "build", "wharf-sandbox")
WORKERS = int(os.environ.get("CRASH_WORKERS", "3"))
# CRASH_STRICT=1: files left behind (databases of deleted resources, databases of provisions
# killed before their commit) fail the suite instead of being reported at the end.
STRICT = os.environ.get("CRASH_STRICT", "") not in ("", "0")
MAX_RESOURCES = int(os.environ.get("CRASH_MAX_RESOURCES", "24"))
MAX_INSTALLATIONS = 4
T = 30  # seconds: HTTP timeout of one call

PLANS = [("sqlite-free", 35), ("sqlite-pro", 40), ("sqlite-credits", 25)]
AMOUNTS = {"5.00": 5_000_000, "7.50": 7_500_000, "12.25": 12_250_000}
# One jump of the clocks stays under a day: wharf killed in the middle of one is, from its
# side, down for that long, and Vercel refuses billing data more than 24 h old (an outage
# that long loses interim data by design). An operation makes one or two jumps.
CLOCK_STEPS = [2 * HOUR, 6 * HOUR, 12 * HOUR, 20 * HOUR]
KILL_TARGETS = ["any", "any", "any", "clock", "provision", "rotate", "purchase", "pay", "write",
                "delete"]


# ---------------------------------------------------------------------------------------------
# Small helpers.

def lost(status):
    """A flow whose call to the partner got no answer (the process died under it)."""
    return status in (None, 0)


def ok2xx(status):
    return isinstance(status, int) and 200 <= status < 300


def secrets_dict(lst):
    return {s["name"]: s["value"] for s in (lst or []) if isinstance(s, dict) and "name" in s}


def copy_binary(src, dst):
    """Copies a binary that someone may be relinking: retry until the copy is of a stable file."""
    for _ in range(30):
        if not os.path.isfile(src):
            time.sleep(2)
            continue
        before = os.stat(src)
        shutil.copy2(src, dst)
        after = os.stat(src)
        if (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns) and \
                os.path.getsize(dst) == after.st_size and time.time() - after.st_mtime > 2:
            return dst
        time.sleep(2)
    raise AssertionError(f"{src} kept changing (or is missing); is a build running?")


def ro_connect(path):
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)


def integrity(path, scratch):
    """PRAGMA integrity_check of a database as whoever opens it next would find it. Opened
    read-only in place; a database with a hot rollback journal (one being created when the
    process died) cannot be read without rolling back, so that is done on a copy."""
    def check(con):
        rows = con.execute("PRAGMA integrity_check").fetchall()
        return "ok" if rows == [("ok",)] else "; ".join(str(r[0]) for r in rows[:10])
    try:
        con = ro_connect(path)
        try:
            return check(con)
        finally:
            con.close()
    except sqlite3.OperationalError as e:
        if "readonly" not in str(e) or not os.path.exists(path + "-journal"):
            raise
    os.makedirs(scratch, exist_ok=True)
    copy = os.path.join(scratch, os.path.basename(path))
    for suffix in ("", "-journal", "-wal"):
        if os.path.exists(path + suffix):
            shutil.copyfile(path + suffix, copy + suffix)
    con = sqlite3.connect(copy, timeout=30)
    try:
        return check(con)
    finally:
        con.close()
        shutil.rmtree(scratch, ignore_errors=True)


class Failure(AssertionError):
    pass


class TimeGate:
    """Moving the clocks waits for the operations in flight and holds new ones back: the
    sandbox's tokens carry its clock, and a token minted before a jump of days and checked
    after it would be refused as expired — an artifact of the test clock, not of a crash."""

    def __init__(self):
        self.cv = threading.Condition()
        self.active = 0
        self.moving = False

    def enter(self):
        with self.cv:
            while self.moving:
                self.cv.wait()
            self.active += 1

    def leave(self):
        with self.cv:
            self.active -= 1
            self.cv.notify_all()

    def begin_move(self):
        with self.cv:
            if self.moving:
                return False
            self.moving = True
            while self.active:
                self.cv.wait()
            return True

    def end_move(self):
        with self.cv:
            self.moving = False
            self.cv.notify_all()


# ---------------------------------------------------------------------------------------------
# What the test believes Vercel (and the world) was told.

class Res:
    def __init__(self, rid, iid, plan, name, key, secrets, run):
        self.rid, self.iid, self.plan, self.name, self.key = rid, iid, plan, name, key
        self.secrets = secrets
        self.acked, self.maybe, self.refused = set(), set(), set()
        self.batches = []          # tuples of ids written in one batch
        self.pending_rotation = None  # (key, delay) of a rotation whose answer was lost
        self.pending_delete = None    # Idempotency-Key of a deletion whose answer was lost
        self.pending_purchase = False  # a purchase for it whose answer was lost
        self.rotations = 0
        self.revoked = []             # tokens an acknowledged rotation (no delay) ended
        self.lock = threading.Lock()
        self.touched = run

    def busy(self):
        """An answer for it was lost: left alone until the retry after the restart."""
        return bool(self.pending_rotation or self.pending_delete or self.pending_purchase)


class Model:
    def __init__(self):
        self.lock = threading.Lock()
        self.installations = []          # acknowledged
        self.pending_installs = []       # ids whose install answer was lost
        self.resources = {}              # rid -> Res
        self.deleted = {}                # rid -> Res (deletion acknowledged)
        self.names = {}                  # name -> (iid, plan, key)
        self.pending_provisions = []     # dicts: iid, name, plan, durability, key
        self.purchases = {}              # invoice id -> dict(iid, rid, micros, acked)
        self.paid = {}                   # (iid, vercel invoice id) -> [webhook ids]
        self.seq = 0
        self.counts = {}
        self.unexpected = []             # answers no operation should get
        self.started = {k: threading.Event() for k in KILL_TARGETS}
        self.gate = TimeGate()

    def next(self):
        with self.lock:
            self.seq += 1
            return self.seq

    def count(self, op, outcome):
        with self.lock:
            self.counts.setdefault(op, {}).setdefault(outcome, 0)
            self.counts[op][outcome] += 1

    def began(self, op):
        self.started[op].set()
        self.started["any"].set()


# ---------------------------------------------------------------------------------------------
# The system under test: a sandbox (never killed) and a wharf (killed over and over).

class Harness:
    def __init__(self, workdir, seed, runs, progress):
        self.workdir = str(workdir)
        self.seed, self.runs, self.progress = seed, runs, progress
        self.rng = random.Random(seed)
        self.model = Model()
        self.run = 0
        self.kills = 0
        self.leftovers = set()   # deleted resources whose files are still on disk
        self.stop = threading.Event()
        self.kill_lock = threading.Lock()
        self.t0_iso = "9999"     # start of the test timeline (ISO), set by the test
        self.clock_artifacts = set()
        self.retried = set()     # resources acknowledged only when their provision was retried
        self.unknown_events = set()
        bindir = os.path.join(self.workdir, "bin")
        os.makedirs(bindir, exist_ok=True)
        self.wharf_bin = copy_binary(WHARF_BIN, os.path.join(bindir, "wharf"))
        self.sandbox_bin = copy_binary(SANDBOX_BIN, os.path.join(bindir, "wharf-sandbox"))
        wport = free_port()
        self.wharf_base = f"http://127.0.0.1:{wport}"
        self.sb = Sandbox(self.sandbox_bin, os.path.join(self.workdir, "sandbox"), self.wharf_base)
        self.sb.start()
        try:
            self.start_wharf(wport)
        except BaseException:
            self.sb.stop()
            raise

    def start_wharf(self, wport):
        env = {"WHARF_LISTEN": f"127.0.0.1:{wport}",
               "INTEGRATION_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
               "WHARF_VERCEL_API_URL": self.sb.base,
               "WHARF_TEST_CLOCK": "1",
               "WHARF_BILLING_INTERVAL_S": "3600",
               "WHARF_VERCEL_TIMEOUT_MS": "5000",
               "WHARF_LOG_LEVEL": "info"}
        self.w = Wharf(self.wharf_bin, os.path.join(self.workdir, "wharf"),
                       f"{self.sb.base}/.well-known/jwks", self.sb.base, env=env,
                       client_id=SANDBOX_CLIENT_ID)
        self.w.start()

    def close(self):
        try:
            self.w.stop()
        finally:
            self.sb.stop()

    # -- identification for failure messages --------------------------------------------------
    def where(self):
        return (f"seed={self.seed} runs={self.runs} (failed in run {self.run}, after {self.kills} "
                f"kills); replay: CRASH_SEED={self.seed} CRASH_RUNS={self.runs} make crash-test; "
                f"workdir {self.workdir} (wharf log {self.w.stderr_path})")

    # -- sandbox control API ------------------------------------------------------------------
    def flow(self, _flow, **params):
        r = requests.post(f"{self.sb.base}/_sandbox/flows/{_flow}", json=params, timeout=120)
        if r.status_code != 200:
            raise Failure(f"sandbox refused flow {_flow} {params}: {r.status_code} {r.text[:500]}")
        return r.json()

    def sb_state(self):
        return requests.get(self.sb.base + "/_sandbox/state", timeout=T).json()

    def system_token(self, iid):
        return requests.post(self.sb.base + "/_sandbox/tokens", timeout=T,
                             json={"kind": "system", "installationId": iid}).json()["token"]

    def sb_now(self):
        return requests.get(self.sb.base + "/_sandbox/clock", timeout=T).json()["nowMs"]

    def advance_sandbox(self, ms):
        r = requests.post(self.sb.base + "/_sandbox/clock", json={"advanceMs": ms}, timeout=T)
        assert r.status_code == 200, r.text
        return r.json()["nowMs"]

    def set_wharf_clock(self, ms):
        return requests.post(self.w.url("/ops/clock"), json={"setMs": ms}, timeout=120)

    def state_db(self):
        return os.path.join(self.w.data_dir, "state.db")

    def db_files(self):
        d = os.path.join(self.w.data_dir, "databases")
        if not os.path.isdir(d):
            return []
        return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".db"))

    def wharf_admin(self, *args):
        env = base_env()
        env.update({"INTEGRATION_CLIENT_ID": SANDBOX_CLIENT_ID,
                    "INTEGRATION_CLIENT_SECRET": "unused-by-admin-commands",
                    "WHARF_DATA_DIR": self.w.data_dir})
        r = subprocess.run([self.wharf_bin, *args], env=env, capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            raise Failure(f"wharf {' '.join(args)} failed ({r.returncode}): {r.stderr[-2000:]}")
        return json.loads(r.stdout)

    def metric(self, name):
        text = requests.get(self.w.url("/metrics"), timeout=T).text
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise Failure(f"no metric {name} in /metrics")

    # =========================================================================================
    # Operations. Each returns quietly; what was acknowledged goes into the model.

    def op_install(self, rng, wid):
        m = self.model
        with m.lock:
            if len(m.installations) + len(m.pending_installs) >= MAX_INSTALLATIONS:
                return False
        iid = "icfg_" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
                                for _ in range(24))
        m.began("any")
        out = self.flow("install", installationId=iid)
        if out.get("ok") and ok2xx(out.get("status")):
            with m.lock:
                m.installations.append(iid)
            m.count("install", "ack")
        else:
            with m.lock:
                m.pending_installs.append(iid)
            m.count("install", "lost" if lost(out.get("status")) else f"refused {out.get('status')}")
        return True

    def op_provision(self, rng, wid):
        m = self.model
        with m.lock:
            if not m.installations or len(m.resources) + len(m.pending_provisions) >= MAX_RESOURCES:
                return False
            iid = rng.choice(m.installations)
        plan = rng.choices([p for p, _ in PLANS], [w for _, w in PLANS])[0]
        p = {"iid": iid, "name": f"db{m.next()}", "plan": plan,
             "durability": rng.choice(["full", "normal"]),
             "key": str(uuid.UUID(int=rng.getrandbits(128), version=4))}
        with m.lock:
            m.names[p["name"]] = (iid, plan, p["key"])
        m.began("provision")
        self.provision(p, retry=False)
        return True

    def provision(self, p, retry):
        m = self.model
        out = self.flow("provision", installationId=p["iid"], productId="sqlite-db",
                        name=p["name"], metadata={"durability": p["durability"]},
                        billingPlanId=p["plan"], idempotencyKey=p["key"])
        status = out.get("status")
        if out.get("ok") and ok2xx(status):
            resp = out["response"]
            res = Res(resp["id"], p["iid"], p["plan"], p["name"], p["key"],
                      secrets_dict(resp.get("secrets")), self.run)
            with m.lock:
                if res.rid in m.resources:
                    m.unexpected.append(f"provision {p['name']} returned the id {res.rid} "
                                        f"of another provision ({m.resources[res.rid].name})")
                else:
                    m.resources[res.rid] = res
            m.count("provision", "ack" if not retry else "ack on retry")
            if retry:
                self.retried.add(res.rid)
            return True
        if not retry:
            with m.lock:
                m.pending_provisions.append(p)
            m.count("provision", "lost" if lost(status) else f"refused {status}")
            if not lost(status):
                m.unexpected.append(f"provision {p} answered {status}: {str(out.get('response'))[:300]}")
        return out

    def pick(self, rng, pred):
        """A resource matching pred that no other worker is using (locked), or None."""
        with self.model.lock:
            cands = [r for r in self.model.resources.values() if not r.busy() and pred(r)]
        rng.shuffle(cands)
        for r in cands[:4]:
            if r.lock.acquire(blocking=False):
                if not r.busy() and r.rid in self.model.resources:
                    return r
                r.lock.release()
        return None

    def op_write(self, rng, wid, batch=False):
        res = self.pick(rng, lambda r: True)
        if res is None:
            return False
        try:
            res.touched = self.run
            base = f"r{self.run}w{wid}n{self.model.next()}"
            ids = [base + s for s in ("a", "b", "c")] if batch else [base]
            note = "x" * rng.choice([0, 10, 200, 3000])
            stmts = [{"sql": "create table if not exists t(id text primary key, run integer, note text)"}]
            stmts += [{"sql": "insert into t(id, run, note) values (?, ?, ?)", "params": [i, self.run, note]}
                      for i in ids]
            if batch:
                res.batches.append(tuple(ids))
            res.maybe.update(ids)
            self.model.began("write")
            try:
                r = requests.post(res.secrets["DATABASE_URL"] + "/query", json={"statements": stmts},
                                  headers={"Authorization": f"Bearer {res.secrets['DATABASE_TOKEN']}"},
                                  timeout=T)
            except requests.RequestException:
                self.model.count("write", "lost")
                return True
            res.maybe.difference_update(ids)
            if r.status_code == 200:
                res.acked.update(ids)
                self.model.count("write", "ack")
            else:
                res.refused.update(ids)
                self.model.count("write", f"refused {r.status_code}")
                code = (r.json().get("error") or {}).get("code") if r.headers.get(
                    "content-type", "").startswith("application/json") else None
                if not (r.status_code == 402 and code == "credits_exhausted"):
                    self.model.unexpected.append(f"write to {res.rid} answered {r.status_code}: {r.text[:300]}")
            return True
        finally:
            res.lock.release()

    def op_read(self, rng, wid):
        res = self.pick(rng, lambda r: True)
        if res is None:
            return False
        try:
            try:
                r = requests.post(res.secrets["DATABASE_URL"] + "/query",
                                  json={"sql": "select count(*), sum(length(note)) from t"},
                                  headers={"Authorization": f"Bearer {res.secrets['DATABASE_READONLY_TOKEN']}"},
                                  timeout=T)
                self.model.count("read", "ok" if r.status_code in (200, 400) else f"answer {r.status_code}")
            except requests.RequestException:
                self.model.count("read", "lost")
            return True
        finally:
            res.lock.release()

    def op_rotate(self, rng, wid):
        res = self.pick(rng, lambda r: True)
        if res is None:
            return False
        try:
            res.touched = self.run
            key = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            delay = rng.choice([0, 0, 0.5])
            self.model.began("rotate")
            self.rotate(res, key, delay, retry=False)
            return True
        finally:
            res.lock.release()

    def rotate(self, res, key, delay, retry):
        out = self.flow("rotate-secrets", installationId=res.iid, resourceId=res.rid,
                        delayOldSecretsExpirationHours=delay, idempotencyKey=key)
        status = out.get("status")
        if out.get("ok") and status == 200 and out.get("sync"):
            if delay == 0:  # the old tokens stop working with this (acknowledged) rotation
                res.revoked.append(res.secrets["DATABASE_TOKEN"])
            res.secrets = secrets_dict(out["response"]["secrets"])
            res.pending_rotation = None
            res.rotations += 1
            self.model.count("rotate", "ack" if not retry else "ack on retry")
            return True
        if lost(status) and not retry:
            res.pending_rotation = (key, delay)
            self.model.count("rotate", "lost")
        elif not retry:
            self.model.count("rotate", f"refused {status}")
            self.model.unexpected.append(f"rotation of {res.rid} answered {status}: "
                                         f"{str(out.get('response'))[:300]}")
        return out

    def op_purchase(self, rng, wid):
        res = self.pick(rng, lambda r: r.plan == "sqlite-credits")
        if res is None:
            return False
        try:
            res.touched = self.run
            amount = rng.choice(sorted(AMOUNTS))
            self.model.began("purchase")
            out = self.flow("purchase", installationId=res.iid, resourceId=res.rid, amount=amount)
            inv = out.get("invoiceId")
            if not inv:
                raise Failure(f"the sandbox's purchase flow made no invoice: {out}")
            acked = bool(out.get("ok")) and ok2xx(out.get("status"))
            with self.model.lock:
                self.model.purchases[inv] = {"iid": res.iid, "rid": res.rid,
                                             "micros": AMOUNTS[amount], "acked": acked}
            status = out.get("status")
            if not acked:
                res.pending_purchase = True
            self.model.count("purchase", "ack" if acked else "lost" if lost(status) else f"refused {status}")
            if not acked and not lost(status):
                self.model.unexpected.append(f"purchase {inv} answered {status}: {str(out.get('response'))[:300]}")
            return True
        finally:
            res.lock.release()

    def buy_again(self, inv, p):
        """Vercel retrying Provision Purchase for the same invoice."""
        r = requests.post(self.w.url(f"/v1/installations/{p['iid']}/billing/provision"),
                          json={"invoiceId": inv}, timeout=T,
                          headers={"Authorization": f"Bearer {self.system_token(p['iid'])}",
                                   "X-Vercel-Auth": "system"})
        return r

    def op_clock(self, rng, wid):
        """Moves Vercel's clock, then ours (a billing pass, then the outbox drained)."""
        m = self.model
        for _ in range(rng.randint(1, 2)):
            # Never after the kill: Vercel's time must not run on while wharf is down.
            with self.kill_lock:
                if self.stop.is_set():
                    return True
                now = self.advance_sandbox(rng.choice(CLOCK_STEPS))
            m.began("clock")
            try:
                r = self.set_wharf_clock(now)
            except requests.RequestException:
                m.count("clock", "lost")
                return True
            if r.status_code == 200:
                m.count("clock", "ack" if r.json().get("outboxDrained") else "ack, outbox not drained")
            else:
                m.count("clock", f"refused {r.status_code}")
                m.unexpected.append(f"/ops/clock answered {r.status_code}: {r.text[:300]}")
                return True
        return True

    def op_pay(self, rng, wid):
        m = self.model
        with m.lock:
            insts = list(m.installations)
        if not insts:
            return False
        state = self.sb_state()
        cands = []
        for iid in insts:
            for inv in (state.get("invoices", {}).get(iid) or {}).values():
                if inv.get("externalId") and inv.get("state") in ("scheduled", "invoiced", "notpaid"):
                    cands.append((iid, inv["invoiceId"]))
        if not cands:
            return False
        iid, inv = rng.choice(sorted(cands))
        m.began("pay")
        r = requests.post(f"{self.sb.base}/_sandbox/invoices/{iid}/{inv}/state",
                          json={"state": "paid"}, timeout=T)
        if r.status_code != 200:
            raise Failure(f"sandbox refused to mark {inv} paid: {r.status_code} {r.text[:300]}")
        hook = r.json().get("webhook")  # the delivery's id; the sandbox sends it at once
        with m.lock:
            m.paid.setdefault((iid, inv), []).append(hook)
        m.count("pay", "marked paid")
        return True

    def op_delete(self, rng, wid):
        with self.model.lock:
            if len(self.model.resources) < MAX_RESOURCES // 2:
                return False
        res = self.pick(rng, lambda r: not r.name.startswith("setup-"))
        if res is None:
            return False
        try:
            res.touched = self.run
            key = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            self.model.began("delete")
            self.delete(res, key, retry=False)
            return True
        finally:
            res.lock.release()

    def delete(self, res, key, retry):
        m = self.model
        out = self.flow("delete-resource", installationId=res.iid, resourceId=res.rid,
                        idempotencyKey=key)
        status = out.get("status")
        if out.get("ok") and ok2xx(status):
            with m.lock:
                m.resources.pop(res.rid, None)
                m.deleted[res.rid] = res
            res.pending_delete = None
            res.touched = self.run
            m.count("delete", "ack" if not retry else "ack on retry")
            return True
        if lost(status) and not retry:
            res.pending_delete = key
            m.count("delete", "lost")
        elif not retry:
            m.count("delete", f"refused {status}")
            m.unexpected.append(f"deletion of {res.rid} answered {status}: {str(out.get('response'))[:300]}")
        return out

    OPS = [("write", 30), ("batch", 12), ("read", 10), ("provision", 8), ("rotate", 8),
           ("purchase", 7), ("clock", 7), ("delete", 4), ("pay", 4), ("install", 1)]

    def do(self, op, rng, wid):
        gate = self.model.gate
        if op == "clock":
            if not gate.begin_move():
                return False
            try:
                return self.op_clock(rng, wid)
            finally:
                gate.end_move()
        gate.enter()
        try:
            return self.do_op(op, rng, wid)
        finally:
            gate.leave()

    def do_op(self, op, rng, wid):
        if op == "write":
            return self.op_write(rng, wid)
        if op == "batch":
            return self.op_write(rng, wid, batch=True)
        return getattr(self, "op_" + op)(rng, wid)

    # =========================================================================================
    # One run: work, kill, check the remains, restart, recover, check.

    def worker(self, wid, stop, errors):
        rng = random.Random(f"{self.seed}/{self.run}/{wid}")
        names = [o for o, _ in self.OPS]
        weights = [w for _, w in self.OPS]
        while not stop.is_set():
            op = rng.choices(names, weights)[0]
            try:
                if not self.do(op, rng, wid):
                    time.sleep(0.005)
            except Failure as e:
                errors.append(str(e))
                return
            except Exception:  # noqa: BLE001 - a bug in the workload itself must surface
                errors.append(f"worker {wid} ({op}): {traceback.format_exc()}")
                return

    def one_run(self):
        m = self.model
        rng = random.Random(f"{self.seed}/{self.run}/killer")
        target = rng.choice(KILL_TARGETS)
        delay = rng.uniform(0.2, 1.5)
        for e in m.started.values():
            e.clear()
        stop = self.stop = threading.Event()
        errors = []
        threads = [threading.Thread(target=self.worker, args=(i, stop, errors), daemon=True)
                   for i in range(WORKERS)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        if target == "any":
            time.sleep(delay)
        else:
            # Wait (a while) for an operation of that kind, then strike while it runs.
            m.started[target].wait(timeout=1.0)
            time.sleep(rng.uniform(0, 0.15 if target == "clock" else 0.03))
        with self.kill_lock:
            stop.set()  # no new operations; the ones in flight meet the kill
            self.w.proc.send_signal(signal.SIGKILL)
        self.w.proc.wait(10)
        self.kills += 1
        for t in threads:
            t.join(180)
            if t.is_alive():
                raise Failure(f"a worker is stuck after the kill; {self.where()}")
        if errors:
            raise Failure("workload error: " + "\n".join(errors) + f"\n{self.where()}")
        return target, time.monotonic() - t0

    # -- with wharf dead ----------------------------------------------------------------------
    def check_files(self, problems):
        for path in [self.state_db()] + self.db_files():
            if not os.path.exists(path):
                problems.append(f"{path} is missing")
                continue
            try:
                verdict = integrity(path, os.path.join(self.workdir, "scratch"))
            except sqlite3.Error as e:
                verdict = f"cannot open: {e}"
            if verdict != "ok":
                problems.append(f"PRAGMA integrity_check of {os.path.basename(path)}: {verdict}")
        d = os.path.join(self.w.data_dir, "databases")
        for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if f.endswith(".settings.json"):
                try:
                    with open(os.path.join(d, f)) as fh:
                        json.load(fh)
                except (OSError, ValueError) as e:
                    problems.append(f"{f} is not valid JSON after the crash: {e}")

    # -- after the restart --------------------------------------------------------------------
    def restart(self):
        t = time.monotonic()
        self.w.start()
        # The restarted server's clock is the real one again: catch it up with Vercel's, a
        # minute further on both (pending Idempotency-Key leases expire), which runs a
        # billing pass and drains the outbox.
        now = self.advance_sandbox(2 * 60 * 1000)
        r = self.set_wharf_clock(now)
        if r.status_code != 200:
            raise Failure(f"/ops/clock after restart answered {r.status_code}: {r.text}; {self.where()}")
        return time.monotonic() - t

    def recover(self, problems):
        """Retries every operation whose answer was lost, as Vercel would."""
        m = self.model
        for iid in list(m.pending_installs):
            out = self.flow("install", installationId=iid)
            if out.get("ok") and ok2xx(out.get("status")):
                m.pending_installs.remove(iid)
                m.installations.append(iid)
                m.count("install", "ack on retry")
            else:
                problems.append(f"retried install of {iid} answered {out.get('status')}: "
                                f"{str(out.get('response'))[:300]}")
        for p in list(m.pending_provisions):
            out = self.provision(p, retry=True)
            if out is True:
                m.pending_provisions.remove(p)
            else:
                problems.append(f"retried provision {p['name']} (Idempotency-Key {p['key']}) answered "
                                f"{out.get('status')}: {str(out.get('response'))[:300]}")
        for res in list(m.resources.values()):
            if res.pending_rotation:
                key, delay = res.pending_rotation
                out = self.rotate(res, key, delay, retry=True)
                if out is not True:
                    problems.append(f"retried rotation of {res.rid} (Idempotency-Key {key}) answered "
                                    f"{out.get('status')}: {str(out.get('response'))[:300]}")
        for inv, p in list(m.purchases.items()):
            if p["acked"]:
                continue
            r = self.buy_again(inv, p)
            if r.status_code == 200:
                p["acked"] = True
                m.count("purchase", "ack on retry")
            else:
                problems.append(f"retried purchase of invoice {inv} answered {r.status_code}: {r.text[:300]}")
        for res in m.resources.values():
            res.pending_purchase = False
        for res in list(m.resources.values()):
            if res.pending_delete:
                out = self.delete(res, res.pending_delete, retry=True)
                if out is not True:
                    problems.append(f"retried deletion of {res.rid} (Idempotency-Key "
                                    f"{res.pending_delete}) answered {out.get('status')}: "
                                    f"{str(out.get('response'))[:300]}")

    def check_resources(self, problems, full):
        m = self.model
        state = self.sb_state()
        by_inst = {}
        listed_ids = set()
        for res in m.resources.values():
            by_inst.setdefault(res.iid, []).append(res)
        for iid in m.installations:
            out = self.flow("get-installation", installationId=iid)
            if not (out.get("ok") and out.get("status") == 200):
                problems.append(f"acknowledged installation {iid}: Get Installation answered "
                                f"{out.get('status')}: {str(out.get('response'))[:300]}")
            out = self.flow("list-resources", installationId=iid)
            if not (out.get("ok") and out.get("status") == 200):
                problems.append(f"List Resources of {iid} answered {out.get('status')}")
                continue
            listed = out["response"]["resources"]
            ids = [r["id"] for r in listed]
            listed_ids.update(ids)
            names = {}
            for r in listed:
                names.setdefault(r["name"], []).append(r["id"])
            for name, rids in names.items():
                if len(rids) > 1:
                    key = m.names.get(name, (None, None, None))[2]
                    problems.append(f"provision {name} (Idempotency-Key {key}) made {len(rids)} resources: "
                                    f"{rids}")
            for r in listed:
                if r["id"] not in m.resources and r["name"] not in m.names:
                    problems.append(f"{iid} lists a resource nobody provisioned: {r}")
                elif r["id"] not in m.resources:
                    problems.append(f"{iid} lists {r['id']} ({r['name']}), which no acknowledged "
                                    f"provision (or its retry) returned")
            for res in by_inst.get(iid, []):
                if res.rid not in ids:
                    problems.append(f"acknowledged resource {res.rid} ({res.name}, {res.plan}) is "
                                    f"missing from List Resources of {iid}")
        for res in m.deleted.values():
            if not (full or res.touched >= self.run - 1):
                continue
            if res.rid in listed_ids:
                problems.append(f"deleted resource {res.rid} (deletion acknowledged) is still listed")
            out = self.flow("get-resource", installationId=res.iid, resourceId=res.rid)
            if out.get("status") != 404:
                problems.append(f"deleted resource {res.rid} (deletion acknowledged): Get Resource "
                                f"answered {out.get('status')}")
            r = requests.post(res.secrets["DATABASE_URL"] + "/query", json={"sql": "select 1"},
                              headers={"Authorization": f"Bearer {res.secrets['DATABASE_TOKEN']}"},
                              timeout=T)
            if r.status_code not in (401, 404):
                problems.append(f"deleted resource {res.rid}: its token still answers {r.status_code}")
            left = [f for f in os.listdir(os.path.join(self.w.data_dir, "databases"))
                    if f.startswith(res.rid + ".")]
            if left and res.rid not in self.leftovers:
                self.leftovers.add(res.rid)
                if STRICT:
                    problems.append(f"deleted resource {res.rid} (deletion acknowledged) still has "
                                    f"its files on disk: {left}")
        # Get Resource for a handful each run (List Resources covered them all), all at the end.
        recent = [r for r in m.resources.values() if r.touched >= self.run - 1]
        others = [r for r in m.resources.values() if r.touched < self.run - 1]
        sample = set(self.rng.sample(recent, min(4, len(recent))) +
                     self.rng.sample(others, min(2, len(others))))
        for res in m.resources.values():
            if full or res in sample:
                out = self.flow("get-resource", installationId=res.iid, resourceId=res.rid)
                if not (out.get("ok") and out.get("status") == 200):
                    problems.append(f"acknowledged resource {res.rid}: Get Resource answered "
                                    f"{out.get('status')}: {str(out.get('response'))[:300]}")
                elif out["response"].get("status") != "ready":
                    problems.append(f"resource {res.rid} is {out['response'].get('status')}, not ready")
            held = secrets_dict(((state.get("resources", {}).get(res.iid) or {}).get(res.rid) or {})
                                .get("secrets"))
            if held != res.secrets:
                problems.append(f"the sandbox holds other secrets for {res.rid} than its newest "
                                f"acknowledged answer gave")
            self.check_rows(res, held or res.secrets, problems)

    def check_rows(self, res, secrets, problems):
        def query(token_name, body):
            return requests.post(secrets["DATABASE_URL"] + "/query", json=body, timeout=T,
                                 headers={"Authorization": f"Bearer {secrets[token_name]}"})
        r = query("DATABASE_TOKEN", {"sql": "select id from t"})
        if r.status_code == 400 and "no such table" in r.text and not res.acked:
            present = set()
        elif r.status_code != 200:
            problems.append(f"the newest acknowledged DATABASE_TOKEN of {res.rid} (rotated "
                            f"{res.rotations}x) does not work: {r.status_code} {r.text[:300]}")
            return
        else:
            present = {row[0] for row in r.json()["results"][0]["rows"]}
        ro = query("DATABASE_READONLY_TOKEN", {"sql": "select 1"})
        if ro.status_code != 200:
            problems.append(f"the newest acknowledged DATABASE_READONLY_TOKEN of {res.rid} does "
                            f"not work: {ro.status_code} {ro.text[:300]}")
        for old in res.revoked[-2:]:
            r = requests.post(secrets["DATABASE_URL"] + "/query", json={"sql": "select 1"},
                              headers={"Authorization": f"Bearer {old}"}, timeout=T)
            if r.status_code != 401:
                problems.append(f"a DATABASE_TOKEN of {res.rid} that an acknowledged rotation "
                                f"(delay 0) replaced still answers {r.status_code}")
        missing = res.acked - present
        if missing:
            problems.append(f"{len(missing)} acknowledged writes to {res.rid} ({res.plan}) are lost: "
                            f"{sorted(missing)[:10]}")
        ghosts = present & res.refused
        if ghosts:
            problems.append(f"{len(ghosts)} writes to {res.rid} that were refused are there: "
                            f"{sorted(ghosts)[:10]}")
        unknown = present - res.acked - res.maybe - res.refused
        if unknown:
            problems.append(f"{len(unknown)} rows in {res.rid} were never written: {sorted(unknown)[:10]}")
        for b in res.batches:
            there = [i in present for i in b]
            if any(there) and not all(there):
                problems.append(f"batch {b} on {res.rid} is half there: {there}")
        # What was possibly written is now known; it stays as it is from here on.
        settled = res.maybe & present
        res.acked |= settled
        res.refused |= res.maybe - present
        res.maybe.clear()

    def check_outbox(self, problems):
        deadline = time.monotonic() + 30
        pending = None
        while time.monotonic() < deadline:
            pending = self.metric("wharf_outbox_pending")
            if pending == 0:
                break
            time.sleep(0.25)
        if pending != 0:
            rows = self.wharf_admin("outbox", "--state", "pending")
            problems.append(f"the outbox does not drain: {pending} pending: "
                            f"{json.dumps(rows)[:1500]}")
        if self.metric("wharf_outbox_dead_letters") != 0:
            dead = self.wharf_admin("outbox", "--state", "dead")
            real = []
            for d in dead:
                # The test clock is not persisted: a restarted wharf runs a billing pass at the
                # real time (before the test moves it on), which for an installation without
                # a pass yet makes billing data for a day long gone at Vercel. Counted, and
                # reported at the end, as an artifact of WHARF_TEST_CLOCK.
                if d["kind"] == "billing" and d["created"] < self.t0_iso:
                    self.clock_artifacts.add(d["id"])
                    continue
                # An event about a resource whose provision was committed but answered to
                # nobody: Vercel does not know it until the provision is retried, which the
                # test does right after the restart's billing pass has sent the event.
                hit = re.search(r"resource (res_\w+) not found", d.get("response", ""))
                if d["kind"] == "event" and d["lastStatus"] == 404 and hit and \
                        hit.group(1) in self.retried:
                    self.unknown_events.add(d["id"])
                    continue
                real.append(d)
            if real:
                problems.append("dead letters: " + json.dumps(real)[:3000])

    def wait_webhooks(self):
        """Until the sandbox has no webhook delivery pending (it retries them with backoff)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            hooks = self.sb_state().get("webhooks") or []
            if not any(h.get("status") == "pending" for h in hooks):
                return {h["id"]: h for h in hooks}
            time.sleep(0.2)
        raise Failure(f"sandbox webhook deliveries still pending after 60 s; {self.where()}")

    def check_billing(self, problems):
        m = self.model
        hooks = self.wait_webhooks()
        state = self.sb_state()
        for iid in m.installations:
            theirs = state.get("invoices", {}).get(iid) or {}
            seen = {}
            for inv in theirs.values():
                ext = inv.get("externalId")
                if ext:
                    seen.setdefault((ext, bool(inv.get("test"))), []).append(inv["invoiceId"])
            for (ext, _), ids in seen.items():
                if len(ids) > 1:
                    problems.append(f"invoice externalId {ext} is at Vercel {len(ids)} times: {ids}")
            ours = {i["id"]: i for i in self.wharf_admin("billing", "show", "--installation", iid)["invoices"]}
            for (ext, _), ids in seen.items():
                if ext not in ours:
                    problems.append(f"Vercel has invoice {ext} ({ids}), wharf has no such invoice")
                elif ours[ext].get("invoiceId") not in ids:
                    problems.append(f"wharf's invoice {ext} links Vercel id {ours[ext].get('invoiceId')}, "
                                    f"Vercel has {ids}")
            for ext, inv in ours.items():
                if inv["state"] in ("carried", "waived") or inv.get("test"):
                    continue
                if inv["state"] == "submitting":
                    problems.append(f"wharf's invoice {ext} is still 'submitting' with the outbox "
                                    f"drained")
                if (ext, False) not in seen:
                    problems.append(f"wharf's invoice {ext} ({inv['state']}, outbox drained) never "
                                    f"reached Vercel")
            for (piid, vid), hook_ids in m.paid.items():
                if piid != iid:
                    continue
                delivered = any((hooks.get(h) or {}).get("status") == "delivered" for h in hook_ids if h)
                if not delivered:
                    continue
                mine = [i for i in ours.values() if i.get("invoiceId") == vid]
                if not mine or mine[0]["state"] not in ("paid", "refund_requested", "refunded"):
                    problems.append(f"invoice {vid} was paid at Vercel and the webhook delivered "
                                    f"(acknowledged), but wharf has it as "
                                    f"{mine[0]['state'] if mine else 'unknown'}")

    def check_credits(self, problems):
        m = self.model
        con = ro_connect(self.state_db())
        try:
            purchases = con.execute("SELECT installation_id, invoice_id, credits FROM purchases").fetchall()
            balances = con.execute(
                "SELECT installation_id, resource_id, credited_micros FROM balances").fetchall()
        finally:
            con.close()
        credited = {}
        recorded = set()
        for iid, inv, credits in purchases:
            recorded.add(inv)
            p = m.purchases.get(inv)
            if p is None:
                problems.append(f"wharf recorded purchase {inv}, which nobody made")
                continue
            for c in json.loads(credits):
                credited[c.get("resourceId", "")] = credited.get(c.get("resourceId", ""), 0) + c["micros"]
                if c.get("resourceId") != p["rid"] or c["micros"] != p["micros"]:
                    problems.append(f"purchase {inv} recorded as {c}, it was {p['micros']} for {p['rid']}")
        for inv, p in m.purchases.items():
            if p["acked"] and inv not in recorded:
                problems.append(f"acknowledged purchase {inv} ({p['micros']} micros for {p['rid']}) "
                                f"is not recorded")
        for iid, rid, micros in balances:
            if micros != credited.get(rid, 0):
                problems.append(f"balance of {rid or iid}: credited {micros} micros, but its "
                                f"purchases add up to {credited.get(rid, 0)} (a credit applied twice "
                                f"or lost)")
        for rid, micros in credited.items():
            if micros and not any(b[1] == rid for b in balances):
                problems.append(f"purchases credit {rid} with {micros} micros; it has no balance row")

    def check_all(self, full=False):
        problems = []
        self.timing = {}

        def timed(name, fn, *args):
            t = time.monotonic()
            fn(*args)
            self.timing[name] = time.monotonic() - t
        timed("recover", self.recover, problems)
        timed("resources", self.check_resources, problems, full)
        timed("outbox", self.check_outbox, problems)
        timed("billing", self.check_billing, problems)
        timed("credits", self.check_credits, problems)
        if self.model.unexpected:
            problems += [f"unexpected answer: {u}" for u in self.model.unexpected]
            self.model.unexpected = []
        return problems

    def inject(self, mode):
        """CRASH_INJECT: damage wharf's files while it is down, to see the suite catch it."""
        victims = sorted((r for r in self.model.resources.values() if r.acked),
                         key=lambda r: -len(r.acked))
        if mode == "lose-write" and victims:
            row = sorted(victims[0].acked)[0]
            con = sqlite3.connect(os.path.join(self.w.data_dir, "databases", victims[0].rid + ".db"))
            con.execute("DELETE FROM t WHERE id = ?", (row,))
            con.commit()
            con.close()
            return f"deleted acknowledged row {row} of {victims[0].rid}"
        if mode == "corrupt-db" and victims:
            path = os.path.join(self.w.data_dir, "databases", victims[0].rid + ".db")
            con = sqlite3.connect(path)
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            con.close()
            with open(path, "r+b") as f:
                f.seek(4096 + 8)
                f.write(b"\xff" * 64)
            return f"scribbled over page 2 of {victims[0].rid}.db"
        if mode == "unpay-invoice":
            con = sqlite3.connect(self.state_db())
            row = con.execute("SELECT installation_id, id FROM invoices WHERE state = 'paid' "
                              "ORDER BY id LIMIT 1").fetchone()
            if row:
                con.execute("UPDATE invoices SET state = 'invoiced', paid_ms = NULL "
                            "WHERE installation_id = ? AND id = ?", row)
                con.commit()
            con.close()
            if row:
                return f"put paid invoice {row[1]} back to 'invoiced'"
        if mode == "double-credit":
            con = sqlite3.connect(self.state_db())
            n = con.execute("UPDATE balances SET credited_micros = credited_micros + 5000000 "
                            "WHERE rowid = (SELECT min(rowid) FROM balances)").rowcount
            con.commit()
            con.close()
            if n:
                return "credited one balance $5.00 twice"
        return None

    def fail(self, what, problems):
        # Wharf's own account (warnings, deliveries, billing), without the request lines.
        lines = [l for l in self.w.log_lines() if '"msg":"request"' not in l]
        tail = "\n".join(lines[-15:])
        msg = (f"{what} ({len(problems)} problems):\n  - " + "\n  - ".join(problems[:40]) +
               f"\n{self.where()}\n--- wharf stderr tail ---\n{tail}")
        raise Failure(msg)

    def summary(self):
        c = self.model.counts
        parts = []
        for op in sorted(c):
            parts.append(op + " " + ", ".join(f"{k} {v}" for k, v in sorted(c[op].items())))
        return "; ".join(parts)

    def usage_report(self):
        """Informational: usage of acknowledged writes that did not reach the ledger (wharf
        batches the ledger once a second; a SIGKILL loses the unflushed part)."""
        con = ro_connect(self.state_db())
        try:
            rows = dict(con.execute("SELECT resource_id, sum(value) FROM usage_ledger "
                                    "WHERE metric = 'rowsWritten' GROUP BY resource_id").fetchall())
        finally:
            con.close()
        short = 0
        for res in self.model.resources.values():
            short += max(0, len(res.acked) - int(rows.get(res.rid) or 0))
        total = sum(len(r.acked) for r in self.model.resources.values())
        return short, total

    def files_report(self):
        """Informational: database files no resource row points at (a provision killed
        before its commit) and files of deleted resources still on disk (a deletion killed
        between its commit and the removal of the files)."""
        con = ro_connect(self.state_db())
        try:
            rows = dict(con.execute("SELECT id, deleted_ms FROM resources").fetchall())
        finally:
            con.close()
        orphans, deleted = set(), set()
        for f in os.listdir(os.path.join(self.w.data_dir, "databases")):
            rid = f.split(".", 1)[0]
            if rid not in rows:
                orphans.add(rid)
            elif rows[rid] is not None:
                deleted.add(rid)
        return sorted(orphans), sorted(deleted)


# ---------------------------------------------------------------------------------------------

def test_crash_consistency(crash_settings, progress, tmp_path_factory, request):
    seed, runs = crash_settings
    # CRASH_INJECT=lose-write|corrupt-db|double-credit|unpay-invoice[@run]: damage wharf's
    # files once (at run 2 unless given), to see the suite fail: a self-test of the checks.
    inject, _, at = os.environ.get("CRASH_INJECT", "").partition("@")
    inject_at = int(at or 2)
    for b in (WHARF_BIN, SANDBOX_BIN):
        if not (os.path.isfile(b) and os.access(b, os.X_OK)):
            pytest.fail(f"{b} is not an executable; build it first (make build)", pytrace=False)
    started = time.monotonic()
    workdir = tmp_path_factory.mktemp("crash")
    progress(f"\ncrash-consistency: seed={seed} runs={runs} workers={WORKERS} workdir={workdir}")
    h = Harness(workdir, seed, runs, progress)
    request.config.crash_outcome = "failed"
    try:
        # Both clocks a few days before a month's end (the first invoices come soon), and two
        # installations to start with.
        t0 = next_month_start(h.sb_now() + DAY) + 26 * DAY + 30 * 60 * 1000
        h.t0_iso = iso_of(t0)
        requests.post(h.sb.base + "/_sandbox/clock", json={"setMs": t0}, timeout=T)
        assert h.set_wharf_clock(t0).status_code == 200
        rng = random.Random(f"{seed}/setup")
        for _ in range(2):
            h.op_install(rng, 0)
        for plan in ("sqlite-pro", "sqlite-credits"):
            p = {"iid": h.model.installations[0], "name": f"setup-{plan}", "plan": plan,
                 "durability": "full", "key": str(uuid.UUID(int=rng.getrandbits(128), version=4))}
            h.model.names[p["name"]] = (p["iid"], plan, p["key"])
            assert h.provision(p, retry=False) is True

        failure = None
        try:
            run_all(h, runs, progress, inject, inject_at)
        except Failure as e:
            failure = str(e)
        if failure:
            pytest.fail(failure, pytrace=False)
        request.config.crash_outcome = "passed"
        progress(f"crash-consistency: seed={seed} runs={runs}: {h.kills} kills, all consistent "
                 f"in {time.monotonic() - started:.0f}s")
        report(h, progress)
    finally:
        try:
            h.close()
        except Exception:  # noqa: BLE001
            pass
        # The copies of the binaries are big; the data and logs stay for a post-mortem.
        shutil.rmtree(os.path.join(h.workdir, "bin"), ignore_errors=True)
        if request.config.crash_outcome != "passed":
            progress(f"crash-consistency FAILED: seed={seed} runs={runs} run={h.run} "
                     f"kills={h.kills}; operations: {h.summary()}")


def run_all(h, runs, progress, inject, inject_at):
    for run in range(1, runs + 1):
        h.run = run
        target, worked = h.one_run()
        if run == inject_at and inject:
            progress(f"  run {run}: CRASH_INJECT {inject}: {h.inject(inject)}")
        problems = []
        h.check_files(problems)
        if problems:
            h.fail(f"run {run}: the files wharf left when it was killed are damaged", problems)
        down = h.restart()
        problems = h.check_all(full=(run == runs))
        if problems:
            h.fail(f"run {run}: inconsistent after kill #{h.kills} and restart", problems)
        progress(f"  run {run}/{runs}: killed after {worked:.2f}s (target {target}); "
                 f"restart {down:.2f}s; {len(h.model.resources)} resources, "
                 f"{sum(len(r.acked) for r in h.model.resources.values())} rows, "
                 f"{len(h.model.purchases)} purchases — consistent "
                 f"[{' '.join(f'{k} {v:.2f}' for k, v in h.timing.items())}]")

    # The end: a clean stop, then every file once more.
    h.w.stop()
    problems = []
    h.check_files(problems)
    h.final = (h.usage_report(), h.files_report())
    (_, _), (orphans, left) = h.final
    if STRICT and orphans:
        problems.append(f"{len(orphans)} databases without a resource row: {orphans[:10]}")
    if STRICT and left:
        problems.append(f"{len(left)} deleted resources with files on disk: {left[:10]}")
    if problems:
        h.fail("after the final clean stop", problems)


def report(h, progress):
    (short, total), (orphans, left) = h.final
    progress(f"  operations: {h.summary()}")
    progress(f"  usage ledger: {short} of {total} acknowledged rows written are not in "
             f"rowsWritten (usage is flushed once a second; a SIGKILL loses the rest)")
    if h.unknown_events:
        progress(f"  {len(h.unknown_events)} dead letters of events about resources Vercel did "
                 f"not know yet (their provision's answer was lost; sent before the retry)")
    if h.clock_artifacts:
        progress(f"  test clock: {len(h.clock_artifacts)} dead letters of billing data made by "
                 f"a billing pass at the real time right after a restart (WHARF_TEST_CLOCK's "
                 f"offset is not persisted): {', '.join(sorted(h.clock_artifacts)[:5])}")
    progress(f"  files: {len(orphans)} databases without a resource row (provision killed "
             f"before its commit){': ' + ', '.join(orphans[:5]) if orphans else ''}; "
             f"{len(left)} deleted resources with files still on disk"
             f"{': ' + ', '.join(left[:5]) if left else ''}"
             f"{'' if STRICT or not (orphans or left) else ' (CRASH_STRICT=1 fails on these)'}")
