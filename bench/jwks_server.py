#!/usr/bin/python3
"""Serve a JWKS file at http://127.0.0.1:PORT/.well-known/jwks (application/json) until killed.

usage: jwks_server.py JWKS_FILE PORT
"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

path, port = sys.argv[1], int(sys.argv[2])
with open(path, "rb") as f:
    DOC = f.read()


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        ok = self.path.split("?")[0] == "/.well-known/jwks"
        body = DOC if ok else b'{"error":"not found"}'
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
