"""The floors: what Nameko itself costs, with nothing of ours in the way.

- ``bench_bare``: an ``@http`` handler returning constant JSON;
- ``bench_hop``: an ``@http`` handler making one RPC to ``bench_constant``, which returns a constant.

Run like every service (``nameko run --config config/bench.yml bench.floor_services:BareHttp``) with
``GATEWAY_ADDRESS`` naming the port. ``BENCH_FAST_PUBLISH=1`` is one of the hop experiments: RPC requests and
replies published without publisher confirms and as transient messages (nameko confirms and persists both).
``BENCH_COMMON_RPC=1`` is another: the hop through this system's own ``common.rpc`` entrypoint and client.
"""

import json
import os

from nameko import rpc as nameko_rpc
from nameko.amqp.publish import Publisher
from nameko.rpc import ServiceRpc
from nameko.web.handlers import http
from werkzeug.wrappers import Response

CONSTANT = {"status": "ok", "answer": 42}
BODY = json.dumps(CONSTANT)
FAST_PUBLISH = os.environ.get("BENCH_FAST_PUBLISH") == "1"
TRANSIENT = 1


class FastPublisher(Publisher):
    use_confirms = False
    delivery_mode = TRANSIENT


if FAST_PUBLISH:
    # Nameko builds a Responder per reply with no way to pass publisher options: swap its class here only.
    nameko_rpc.Responder.publisher_cls = FastPublisher

CLIENT_OPTIONS = {"use_confirms": False, "delivery_mode": TRANSIENT} if FAST_PUBLISH else {}

if os.environ.get("BENCH_COMMON_RPC") == "1":
    from common.rpc import ServiceRpc as HopClient
    from common.rpc import rpc as hop_rpc
else:
    HopClient, hop_rpc = ServiceRpc, nameko_rpc.rpc


def json_response(body):
    return Response(body, content_type="application/json")


class BareHttp:
    name = "bench_bare"

    @http("GET", "/bare")
    def bare(self, request):
        return json_response(BODY)


class ConstantService:
    name = "bench_constant"

    @hop_rpc
    def constant(self):
        return CONSTANT


class HopHttp:
    name = "bench_hop"

    constant_rpc = HopClient("bench_constant", **CLIENT_OPTIONS)

    @http("GET", "/hop")
    def hop(self, request):
        return json_response(json.dumps(self.constant_rpc.constant()))
