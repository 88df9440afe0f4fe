"""Partners for `wharf-sandbox check` and the deployment flow: a reverse proxy in front of a real
Wharf that breaks chosen parts of the Partner API, the way a provider's server written
elsewhere might. The runner must name each fault and pass everything else.

Faults (a set of names):
  provision-without-secrets   Provision Resource's 200 body loses its `secrets` field
  webhooks-unverified         every webhook is answered 200 without checking x-vercel-signature
  get-installation-500        Get Installation answers 500 in a non-Vercel shape
"""
import hashlib
import hmac
import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .wharf import free_port


class PartnerProxy:
    """Forwards every request to `upstream` unless `intercept` answers it first (subclasses)."""

    def intercept(self, method, path, headers, body):
        """(status, body bytes[, content type]) to answer without forwarding, or None."""
        return None

    def rewrite(self, method, path, status, answer):
        """The forwarded answer's body, possibly changed."""
        return answer

    def __init__(self, upstream):
        self.upstream = upstream.rstrip("/")
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
                own = outer.intercept(self.command, path, self.headers, body)
                if own is not None:
                    return self._reply(own[0], own[1], *own[2:])
                status, headers, answer = outer.forward(self.command, path, self.headers, body)
                answer = outer.rewrite(self.command, path, status, answer)
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


class BrokenPartner(PartnerProxy):
    def __init__(self, upstream, faults):
        self.faults = set(faults)
        super().__init__(upstream)

    def intercept(self, method, path, headers, body):
        bare = path.split("?", 1)[0]
        if "webhooks-unverified" in self.faults and bare.startswith("/webhooks/"):
            return 200, b'{"ok":true}'
        if ("get-installation-500" in self.faults and method == "GET"
                and bare.count("/") == 3 and bare.startswith("/v1/installations/")):
            return 500, b"internal error", "text/plain"
        return None

    def rewrite(self, method, path, status, answer):
        bare = path.split("?", 1)[0]
        if ("provision-without-secrets" in self.faults and method == "POST"
                and bare.endswith("/resources") and status in (200, 201)):
            doc = json.loads(answer)
            doc.pop("secrets", None)
            answer = json.dumps(doc).encode()
        return answer


class DeployPartner(PartnerProxy):
    """Wharf plus what a provider adds for deployments (flows.md F17), written the way an
    outside integration would: it keeps each installation's access token from Upsert
    Installation, registers a check when a resource is connected to a project, and answers
    `deployment.integration.action.start` and `deployment.checkrun.start` by PATCHing the
    sandbox. `mode` breaks it on purpose:
      good            running → succeeded with resource-secrets outcomes; check run
                      running → completed/succeeded
      bad-order       the action reports succeeded, then running
      bad-outcomes    the action's outcome has no secrets
      silent          acknowledges the webhooks and never reports anything
    """

    def __init__(self, upstream, sandbox_url, client_secret, mode="good", api_base="/"):
        # api_base "/api/": the `https://vercel.com/api` base some integrations hard-code.
        self.sandbox_url = sandbox_url.rstrip("/") + api_base.rstrip("/")
        self.client_secret = client_secret
        self.mode = mode
        self.tokens = {}    # installation id -> access token
        self.events = []    # webhook types received (verified)
        self.calls = []     # (method, path, status) of this partner's calls to the sandbox
        self.lock = threading.Lock()
        super().__init__(upstream)

    def intercept(self, method, path, headers, body):
        bare = path.split("?", 1)[0]
        if method == "PUT" and bare.startswith("/v1/installations/") and bare.count("/") == 3:
            doc = json.loads(body or b"{}")
            token = (doc.get("credentials") or {}).get("access_token")
            if token:
                self.tokens[bare.rsplit("/", 1)[1]] = token
            return None
        if not (method == "POST" and bare.startswith("/webhooks/")):
            return None
        event = json.loads(body or b"{}")
        kind = event.get("type", "")
        if not (kind.startswith("deployment.") or kind.startswith("integration-resource.")):
            return None  # Wharf's own webhooks go to Wharf
        mac = hmac.new(self.client_secret.encode(), body, hashlib.sha1).hexdigest()
        if not hmac.compare_digest(mac, headers.get("x-vercel-signature", "")):
            return 403, b'{"error":"bad signature"}'
        with self.lock:
            self.events.append(kind)
        threading.Thread(target=self.handle, args=(kind, event.get("payload") or {}),
                         daemon=True).start()
        return 200, b'{"ok":true}'

    def api(self, method, path, icfg, body):
        req = urllib.request.Request(self.sandbox_url + path, method=method,
                                     data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {self.tokens.get(icfg)}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status = r.status
        except urllib.error.HTTPError as e:
            status = e.code
        with self.lock:
            self.calls.append((method, path, status))
        return status

    def handle(self, kind, p):
        icfg = p.get("installationId") or (p.get("configuration") or {}).get("id", "")
        if self.mode == "silent":
            return
        if kind == "integration-resource.project-connected":
            project = p.get("projectId") or (p.get("project") or {}).get("id")
            self.api("POST", f"/v2/projects/{project}/checks", icfg,
                     {"name": "Database schema", "blocks": "deployment-alias",
                      "requires": "deployment-url", "isRerequestable": True,
                      "source": {"kind": "integration", "externalResourceId": p["resourceId"]}})
        elif kind == "deployment.integration.action.start":
            dep = p["deployment"]["id"]
            path = (f"/v1/deployments/{dep}/integrations/{icfg}/resources/{p['resourceId']}"
                    f"/actions/{p['action']}")
            done = {"status": "succeeded", "statusText": "branch ready",
                    "statusUrl": "sso:https://partner.example/branches/" + dep,
                    "outcomes": [{"kind": "resource-secrets",
                                  "secrets": [{"name": "DATABASE_URL",
                                               "value": f"sqlite://branch-{dep}"}]}]}
            if self.mode == "bad-outcomes":
                done["outcomes"] = [{"kind": "resource-secrets", "secrets": []}]
            steps = [{"status": "running", "statusText": "branching"}, done]
            if self.mode == "bad-order":
                steps = [done, {"status": "running", "statusText": "branching"}]
            for body in steps:
                self.api("PATCH", path, icfg, body)
        elif kind == "deployment.checkrun.start":
            run = p["checkRun"]
            path = f"/v2/deployments/{run['deploymentId']}/check-runs/{run['id']}"
            self.api("PATCH", path, icfg, {"status": "running"})
            self.api("PATCH", path, icfg, {"status": "completed", "conclusion": "succeeded",
                                           "conclusionText": "schema valid"})
