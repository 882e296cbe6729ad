"""A trace sink for `make bench BENCH_TRACE_SAMPLE=<ratio>`: accepts OTLP/HTTP exports and drops them, counting
requests and bytes, so what tracing costs is the system's own (the exporters' work), not a collector's."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class OtlpSink:
    def __init__(self):
        self.exports, self.bytes = 0, 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                size = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(size)
                sink.exports, sink.bytes = sink.exports + 1, sink.bytes + size
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
