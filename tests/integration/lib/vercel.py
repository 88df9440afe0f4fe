"""Vercel-Marketplace-style OIDC material for the integration tests.

RSA keys, a JWKS document, RS256 token minting, user and system claim builders, and
switches to break any part of a token (header, claims, signature, algorithm, key).
Written in the style of ../shared/bench/lib/jwtkit.py; uses only python3-cryptography.
"""
import base64
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ISSUER = "https://marketplace.vercel.com"

# Sentinel: pass as a claim/header value to delete that key from the builder's defaults.
REMOVE = object()


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64(n: int) -> str:
    return b64u(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def _apply(base: dict, overrides: dict) -> dict:
    out = dict(base)
    for k, v in overrides.items():
        if v is REMOVE:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def new_rsa_key(bits=2048):
    """A fresh RSA private key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


class KeySet:
    """An ordered set of (kid, private key, alg) entries; `jwks()` is the public document."""

    def __init__(self, n_keys=1):
        self.keys = []  # list of dicts: kid, key, alg, use
        for _ in range(n_keys):
            self.add_key()

    def add_key(self, kid=None, alg="RS256", use="sig", key=None):
        kid = kid or secrets.token_hex(8)
        self.keys.append({"kid": kid, "key": key or new_rsa_key(), "alg": alg, "use": use})
        return kid

    def remove_key(self, kid):
        self.keys = [k for k in self.keys if k["kid"] != kid]

    def entry(self, kid=None):
        if kid is None:
            return self.keys[-1]
        for k in self.keys:
            if k["kid"] == kid:
                return k
        raise KeyError(kid)

    @property
    def kid(self):
        return self.keys[-1]["kid"]

    def jwks(self):
        out = []
        for k in self.keys:
            pub = k["key"].public_key().public_numbers()
            jwk = {"kty": "RSA", "kid": k["kid"], "n": _int_b64(pub.n), "e": _int_b64(pub.e)}
            if k["alg"]:
                jwk["alg"] = k["alg"]
            if k["use"]:
                jwk["use"] = k["use"]
            out.append(jwk)
        return {"keys": out}

    def public_pem(self, kid=None):
        return self.entry(kid)["key"].public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, claims, *, kid=None, alg="RS256", header=None, tamper=False,
             signing_key=None, raw_header=None, raw_payload=None, signature=None):
        """Return a compact JWS.

        kid: which key of the set signs (default: the newest); its kid goes into the header.
        alg: RS256 | RS384 | RS512 | PS256 | HS256 (HMAC keyed with the public key PEM, the
             key-confusion attack) | none (empty signature).
        header: dict merged into the JOSE header (REMOVE deletes e.g. "kid").
        tamper: flip one bit of the signature.
        signing_key: sign with this private key instead of the set's key (header kid unchanged).
        raw_header / raw_payload: bytes used verbatim instead of the JSON encodings.
        signature: bytes used verbatim as the signature.
        """
        entry = self.entry(kid)
        hdr = _apply({"alg": alg, "typ": "JWT", "kid": entry["kid"]}, header or {})
        h = raw_header if raw_header is not None else json.dumps(hdr, separators=(",", ":")).encode()
        p = raw_payload if raw_payload is not None else json.dumps(claims, separators=(",", ":")).encode()
        signing_input = (b64u(h) + "." + b64u(p)).encode()
        key = signing_key or entry["key"]
        if signature is not None:
            sig = signature
        elif alg in ("RS256", "RS384", "RS512"):
            hm = {"RS256": hashes.SHA256(), "RS384": hashes.SHA384(), "RS512": hashes.SHA512()}[alg]
            sig = key.sign(signing_input, padding.PKCS1v15(), hm)
        elif alg == "PS256":
            sig = key.sign(signing_input, padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                                      salt_length=32), hashes.SHA256())
        elif alg == "none":
            sig = b""
        elif alg == "HS256":
            mac = hmac.HMAC(self.public_pem(entry["kid"]), hashes.SHA256())
            mac.update(signing_input)
            sig = mac.finalize()
        else:
            raise ValueError(alg)
        if tamper and sig:
            sig = bytes([sig[0] ^ 1]) + sig[1:]
        return signing_input.decode() + "." + b64u(sig)


def rand_hex(n=6):
    return secrets.token_hex(n)


def user_claims(aud, installation_id, /, *, issuer=ISSUER, account="a1b2c3", user="d4e5f6",
                role="ADMIN", ttl=300, now=None, **overrides):
    """User-auth claim set (spec §2.3). Any claim can be overridden or REMOVEd."""
    now = int(time.time()) if now is None else now
    c = {"iss": issuer, "sub": f"account:{account}:user:{user}", "aud": aud,
         "account_id": f"team_{account}", "installation_id": installation_id,
         "user_id": user, "user_role": role, "user_name": "Test User",
         "user_email": "user@example.com", "type": "access_token",
         "iat": now, "nbf": now - 5, "exp": now + ttl}
    return _apply(c, overrides)


def system_claims(aud, installation_id, /, *, issuer=ISSUER, account="a1b2c3", ttl=300, now=None,
                  **overrides):
    """System-auth claim set (spec §2.4). installation_id may be None; sub may be None."""
    now = int(time.time()) if now is None else now
    c = {"iss": issuer, "sub": f"account:{account}", "aud": aud,
         "account_id": f"team_{account}", "installation_id": installation_id,
         "type": "access_token", "iat": now, "nbf": now - 5, "exp": now + ttl}
    return _apply(c, overrides)


class Tokens:
    """Mints tokens for one wharf configuration (audience + issuer) with one KeySet."""

    def __init__(self, keyset, aud, issuer=ISSUER):
        self.keyset, self.aud, self.issuer = keyset, aud, issuer
        self.minted = []  # every token handed out, for "never in logs" checks

    def _mint(self, claims, **sign_kw):
        tok = self.keyset.sign(claims, **sign_kw)
        self.minted.append(tok)
        return tok

    def user_claims(self, installation_id, /, **kw):
        kw.setdefault("issuer", self.issuer)
        return user_claims(self.aud, installation_id, **kw)

    def system_claims(self, installation_id, /, **kw):
        kw.setdefault("issuer", self.issuer)
        return system_claims(self.aud, installation_id, **kw)

    def user(self, installation_id, /, *, sign=None, **claim_kw):
        return self._mint(self.user_claims(installation_id, **claim_kw), **(sign or {}))

    def system(self, installation_id, /, *, sign=None, **claim_kw):
        return self._mint(self.system_claims(installation_id, **claim_kw), **(sign or {}))

    def raw(self, claims, **sign_kw):
        return self._mint(claims, **sign_kw)


class JwksServer:
    """A loopback HTTP server answering GET /.well-known/jwks with the current key set.

    `keyset` may be swapped at any time; `document` (a dict) overrides the key set;
    `status` forces an error status; `fetches` counts GETs of the JWKS path."""

    PATH = "/.well-known/jwks"

    def __init__(self, keyset):
        self.keyset = keyset
        self.document = None
        self.status = 200
        self.fetch_times = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.split("?")[0] != outer.PATH:
                    body = b'{"error":"not found"}'
                    self.send_response(404)
                else:
                    with outer._lock:
                        outer.fetch_times.append(time.monotonic())
                        status = outer.status
                        doc = outer.document if outer.document is not None else outer.keyset.jwks()
                    body = json.dumps(doc).encode()
                    self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}{self.PATH}"

    @property
    def fetches(self):
        with self._lock:
            return len(self.fetch_times)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
