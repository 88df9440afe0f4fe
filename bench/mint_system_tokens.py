#!/usr/bin/python3
"""Mint N distinct RS256 *system* tokens (Vercel claim shape) for the wharf benchmark.

usage: mint_system_tokens.py OUT N AUD INSTALLATION_ID [--procs P] [--ttl SECONDS]
                             [--user-tokens M]

Writes OUT/jwks.json (the public key set), OUT/tokens.txt (N tokens, one per line),
OUT/admin_token.txt (one ADMIN user token for the same installation, used to Upsert it) and,
with --user-tokens M, OUT/user_tokens.txt (M distinct ADMIN user tokens: the fresh-token
Provision run of bench/replicas.py).
Reuses ../shared/bench/lib/jwtkit.py (SHARED_DIR overrides where shared/ is). Tokens differ
in iat/exp, never in extra claims; signing runs in P processes (default: all cores).
Needs Debian's python3-cryptography: run it with /usr/bin/python3.
"""
import argparse
import multiprocessing as mp
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("SHARED_DIR") or os.path.join(HERE, "..", "..", "shared")
sys.path.insert(0, os.path.join(SHARED, "bench", "lib"))
from jwtkit import KeySet, system_claims, user_claims  # noqa: E402

from cryptography.hazmat.primitives import serialization  # noqa: E402

SPREAD = 300  # iat spreads over the last 5 minutes; exp grows every SPREAD tokens


def _worker(args):
    pem, kid, aud, inst, start, stop, now, ttl, path, kind = args
    key = serialization.load_pem_private_key(pem, password=None)
    ks = KeySet(0)
    ks.keys.append((kid, key))
    with open(path, "w") as f:
        for i in range(start, stop):
            c = system_claims(aud, inst, ttl=0) if kind == "system" else user_claims(
                aud, inst, ttl=0)
            c["iat"] = now - (i % SPREAD)
            c["nbf"] = c["iat"] - 5
            c["exp"] = now + ttl + i // SPREAD
            f.write(ks.sign(c) + "\n")
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("n", type=int)
    ap.add_argument("aud")
    ap.add_argument("installation_id")
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--ttl", type=int, default=6 * 3600)
    ap.add_argument("--user-tokens", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    ks = KeySet()
    kid, key = ks.keys[0]
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    import json
    with open(os.path.join(a.out, "jwks.json"), "w") as f:
        json.dump(ks.jwks(), f)
    with open(os.path.join(a.out, "admin_token.txt"), "w") as f:
        f.write(ks.sign(user_claims(a.aud, a.installation_id, ttl=a.ttl)) + "\n")
    now = int(time.time())
    t0 = time.time()
    for kind, n, name in (("system", a.n, "tokens.txt"), ("user", a.user_tokens, "user_tokens.txt")):
        if n > 0:
            mint(pem, kid, a, kind, n, now, os.path.join(a.out, name))
    print(f"minted {a.n} system and {a.user_tokens} user tokens in {time.time() - t0:.1f}s, "
          f"valid {a.ttl}s", file=sys.stderr)


def mint(pem, kid, a, kind, n, now, path):
    procs = max(1, a.procs)
    step = (n + procs - 1) // procs
    jobs = []
    for p in range(procs):
        lo, hi = p * step, min(n, (p + 1) * step)
        if lo < hi:
            jobs.append((pem, kid, a.aud, a.installation_id, lo, hi, now, a.ttl,
                         f"{path}.part{p}", kind))
    with mp.Pool(len(jobs)) as pool:
        parts = pool.map(_worker, jobs)
    tmp = path + ".tmp"
    with open(tmp, "w") as out:
        for p in parts:
            with open(p) as f:
                out.write(f.read())
            os.remove(p)
    os.replace(tmp, path)

if __name__ == "__main__":
    main()
