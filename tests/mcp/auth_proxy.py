#!/usr/bin/env python3
"""A loopback proxy that adds `Authorization: Bearer TOKEN` to every request and
forwards it, Host and Origin untouched, to a doc-serve resident: the MCP conformance
suite cannot send custom headers, and every route but /health needs the token.

  auth_proxy.py BASE_URL TOKEN     prints the port it listens on, serves until killed
"""
import http.client, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

TARGET = urlsplit(sys.argv[1])
TOKEN = sys.argv[2]
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def forward(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        headers["Authorization"] = f"Bearer {TOKEN}"
        conn = http.client.HTTPConnection(TARGET.hostname, TARGET.port, timeout=60)
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_POST = do_DELETE = do_PUT = do_OPTIONS = forward

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
print(server.server_address[1], flush=True)
server.serve_forever()
