#!/usr/bin/env python3
"""A demo backend that answers like the tutorial's Flask apps, with only the
standard library: `backend.py PORT TEXT` serves TEXT at / (text/html, as
Flask does) and 404 elsewhere. For the tutorial's own Flask apps, see
demo/flask/."""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, TEXT = int(sys.argv[1]), sys.argv[2].encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # A buffered writer: head and body leave in one write when the request
    # is done. Unbuffered, they were two, and on a kept-alive connection
    # the body waited ~40 ms for the proxy's delayed ACK (Nagle).
    wbufsize = -1

    def do_GET(self):
        body, status = (TEXT, 200) if self.path.split("?")[0] == "/" else (b"Not Found", 404)
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
