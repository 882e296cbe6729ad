"""An example webhook receiver (docs/webhooks.md): verify the signature, drop repeats by event id, answer at once.

    WEBHOOK_SECRET=whsec_... python -m scripts.webhook_receiver --port 8090

Prints each new event as one JSON line. Standard library only, so it can be copied anywhere.
"""

import argparse
import hashlib
import hmac
import json
import os
import sys
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 300  # refuse a signed request replayed later than this
MAX_BODY_BYTES = 1 << 20
REMEMBERED_EVENTS = 100_000


def verify(secret, header, body, now=None):
    """``X-POS-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``, checked in constant time."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError, AttributeError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_SECONDS:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", ""))


class SeenEvents:
    """The last event ids handled. Delivery is at least once: a real receiver records the id in its own database,
    in the transaction of what the event changes (a unique key), instead of in memory."""

    def __init__(self, size=REMEMBERED_EVENTS):
        self.ids, self.size = OrderedDict(), size

    def first_time(self, event_id):
        if event_id in self.ids:
            return False
        self.ids[event_id] = True
        if len(self.ids) > self.size:
            self.ids.popitem(last=False)
        return True


def handler(secret, seen, out):
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                return self.answer(413)
            body = self.rfile.read(length)
            if not verify(secret, self.headers.get("X-POS-Signature"), body):
                return self.answer(401)  # not from the shop, or replayed: never acted on
            event = json.loads(body)
            if seen.first_time(event["event_id"]):
                out.write(json.dumps(event) + "\n")  # act on it here (or queue it and answer at once)
                out.flush()
            self.answer(204)  # any 2xx, repeats too: otherwise the shop retries

        def answer(self, status):
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    return Receiver


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    secret = os.environ.get("WEBHOOK_SECRET") or sys.exit("set WEBHOOK_SECRET to the webhook's secret")
    server = ThreadingHTTPServer((args.host, args.port), handler(secret, SeenEvents(), sys.stdout))
    print(f"listening on http://{args.host}:{args.port}/", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
