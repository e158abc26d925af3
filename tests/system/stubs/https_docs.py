"""A small HTTPS server for the OAuth tests: serves the JSON files of a directory on 127.0.0.1.

Stands in for a client's web site publishing its client ID metadata document (CIMD). Every
request's path goes to stdout (one line each), so a test can count fetches. Besides the files:
/redirect answers 302 to another document, /hang never answers.

usage: https_docs.py PORT CERT KEY DIR
"""

import http.server
import ssl
import sys
import threading
from pathlib import Path

PORT, CERT, KEY, ROOT = int(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4])


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # stdout below is the record; no stderr noise
        pass

    def do_GET(self):
        print(self.path, flush=True)
        if self.path == "/hang":
            threading.Event().wait(120)
            return
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/client.json")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        name = self.path.split("?", 1)[0].lstrip("/")
        f = ROOT / name
        if "/" in name or not name or not f.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = f.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        cc = ROOT / (name + ".cache-control")
        if cc.is_file():
            self.send_header("Cache-Control", cc.read_text().strip())
        self.end_headers()
        self.wfile.write(body)


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(CERT, KEY)
srv = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
srv.daemon_threads = True
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
