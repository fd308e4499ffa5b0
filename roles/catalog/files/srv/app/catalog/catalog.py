"""Product catalog: a read-only JSON service over the items in items.json.

GET /healthz         -> {"status": "ok"}
GET /items           -> [{"sku": ..., "name": ..., "price_cents": ...}, ...]
GET /items/SKU       -> one item, or 404
"""
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "items.json"), encoding="utf-8") as f:
    ITEMS = {item["sku"]: item for item in json.load(f)}


class Handler(BaseHTTPRequestHandler):
    server_version = "catalog"
    sys_version = ""

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/healthz":
            self._send(200, {"status": "ok"})
        elif path == "/items":
            self._send(200, sorted(ITEMS.values(), key=lambda i: i["sku"]))
        elif path.startswith("/items/") and path[len("/items/"):] in ITEMS:
            self._send(200, ITEMS[path[len("/items/"):]])
        else:
            self._send(404, {"error": "not found"})

    def log_message(self, fmt, *args):
        sys.stderr.write("catalog: %s %s\n" % (self.address_string(), fmt % args))


def main():
    port = int(os.environ.get("CATALOG_PORT", "8080"))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.stderr.write("catalog: %d items on 127.0.0.1:%d\n" % (len(ITEMS), port))
    server.serve_forever()


if __name__ == "__main__":
    main()
