"""A deliberately broken partner for `wharf-sandbox check`: a reverse proxy in front of a real
Wharf that breaks chosen parts of the Partner API, the way a provider's server written
elsewhere might. The runner must name each fault and pass everything else.

Faults (a set of names):
  provision-without-secrets   Provision Resource's 200 body loses its `secrets` field
  webhooks-unverified         every webhook is answered 200 without checking x-vercel-signature
  get-installation-500        Get Installation answers 500 in a non-Vercel shape
"""
import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .wharf import free_port


class BrokenPartner:
    def __init__(self, upstream, faults):
        self.upstream = upstream.rstrip("/")
        self.faults = set(faults)
        self.port = free_port()
        self.seen = []  # (method, path) of every request
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, status, body, content_type="application/json", headers=()):
                self.send_response(status)
                if body:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path
                outer.seen.append((self.command, path))
                bare = path.split("?", 1)[0]
                if "webhooks-unverified" in outer.faults and bare.startswith("/webhooks/"):
                    return self._reply(200, b'{"ok":true}')
                if ("get-installation-500" in outer.faults and self.command == "GET"
                        and bare.count("/") == 3 and bare.startswith("/v1/installations/")):
                    return self._reply(500, b"internal error", "text/plain")
                status, headers, answer = outer.forward(self.command, path, self.headers, body)
                if ("provision-without-secrets" in outer.faults and self.command == "POST"
                        and bare.endswith("/resources") and status in (200, 201)):
                    doc = json.loads(answer)
                    doc.pop("secrets", None)
                    answer = json.dumps(doc).encode()
                passed = [(k, v) for k, v in headers if k.lower() in ("location", "set-cookie")]
                ctype = next((v for k, v in headers if k.lower() == "content-type"),
                             "application/json")
                self._reply(status, answer, ctype, passed)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def forward(self, method, path, headers, body):
        req = urllib.request.Request(self.upstream + path, data=body if body else None,
                                     method=method)
        for k, v in headers.items():
            if k.lower() not in ("host", "content-length", "connection"):
                req.add_header(k, v)

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(req, timeout=30) as r:
                return r.status, list(r.headers.items()), r.read()
        except urllib.error.HTTPError as e:
            return e.code, list(e.headers.items()), e.read()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
