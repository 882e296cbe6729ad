"""The gateway's HTTP/1.1 connection handling: eventlet's protocol, with its own refusals as JSON.

eventlet.wsgi answers a request line over ``url_length_limit`` (414), a header line over 8 KiB or headers over
its total bound (400) and a request the standard library cannot parse with bare status lines or HTML, before any
WSGI app runs. Here each gets the API.md error body, an ``X-Request-ID`` and the security headers every gateway
response carries. A client that stops sending is cut off by the server's ``socket_timeout``.
"""

import json
import uuid

from eventlet.wsgi import HeaderLineTooLong, HeadersTooLarge
from nameko.web.server import HttpOnlyProtocol
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request, Response

from common.correlation import REQUEST_ID_HEADER

MAX_URL_BYTES = 8192
DRAIN_BYTES = 64 * 1024  # what is left unread of a refused request, read so closing does not reset the answer
DRAIN_SECONDS = 0.2
STATUS_CODES = {400: "bad_request", 414: "uri_too_long", 431: "headers_too_large", 505: "http_version_not_supported"}


class ApiProtocol(HttpOnlyProtocol):
    def _read_request_line(self):
        line = super()._read_request_line()
        if len(line) >= self.server.url_length_limit:
            self.refuse(414, f"The request line may not exceed {self.server.url_length_limit} bytes.")
            return ""
        return line

    def parse_request(self):
        try:
            return super().parse_request()
        except HeaderLineTooLong:
            self.refuse(431, "A header line may not exceed 8 KiB.")
        except HeadersTooLarge:
            self.refuse(431, "The request headers are too large.")
        return False

    def send_error(self, code, message=None, explain=None):
        """The standard library's refusals (a malformed request line, too many headers) as JSON."""
        self.refuse(code, message or HTTP_STATUS_CODES.get(code, "Bad request."))

    def refuse(self, status, message):
        self.close_connection = 1
        self.wfile.write(error_bytes(self.server.app.server.edge, status, message))
        self.wfile.flush()
        self.drain()

    def drain(self):
        try:
            self.connection.settimeout(DRAIN_SECONDS)
            self.connection.recv(DRAIN_BYTES)
        except OSError:
            pass


def error_bytes(edge, status, message):
    """A whole HTTP response with the error body, for a request that never reached the WSGI app."""
    error = {"code": STATUS_CODES.get(status, "bad_request"), "message": message, "details": {}}
    response = Response(json.dumps({"error": error}), status=status, content_type="application/json")
    response.headers[REQUEST_ID_HEADER] = str(uuid.uuid4())
    response.headers["Connection"] = "close"
    edge.finish(Request({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}), response)
    body = response.get_data()
    response.headers["Content-Length"] = str(len(body))
    head = [f"HTTP/1.1 {response.status}"] + [f"{name}: {value}" for name, value in response.headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
