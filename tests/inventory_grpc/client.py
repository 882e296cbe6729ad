"""A grpcio client in a process of its own, for the calls a test process cannot make itself: the suite runs
monkey-patched by eventlet, where grpcio's streams and futures (driven by its own threads) never wake up. Blocking
unary calls work there and the tests make them directly.

    python -m tests.inventory_grpc.client reflect ADDRESS            -> {"services": [...], "health": {...}}
    python -m tests.inventory_grpc.client watch ADDRESS TOKEN IDS AFTER  -> one JSON level a line, then the end
    python -m tests.inventory_grpc.client stall ADDRESS TOKEN IDS SECONDS  -> reads nothing for a while
    python -m tests.inventory_grpc.client adjust ADDRESS TOKEN PRODUCT DELTA N  -> N concurrent AdjustStock calls
"""

import json
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
from google.protobuf.json_format import MessageToDict
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from inventory_grpc import protos

pb, pb_grpc = protos()
TIMEOUT = 30


def say(document):
    print(json.dumps(document), flush=True)


def reflect(address):
    with grpc.insecure_channel(address) as channel:
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                                  timeout=TIMEOUT)
        services = sorted(s.name for answer in answers for s in answer.list_services_response.service)
        health = health_pb2_grpc.HealthStub(channel)
        statuses = {name or "(server)": health_pb2.HealthCheckResponse.ServingStatus.Name(
            health.Check(health_pb2.HealthCheckRequest(service=name), timeout=TIMEOUT).status)
            for name in ("", *(name for name in services if not name.startswith("grpc.")))}
    say({"services": services, "health": statuses})


def watch(address, token, ids, after):
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    request = pb.WatchStockRequest(product_ids=json.loads(ids),
                                   after_versions={int(k): v for k, v in json.loads(after).items()})
    with grpc.insecure_channel(address) as channel:
        try:
            for level in pb_grpc.InventoryStub(channel).WatchStock(request, metadata=metadata, timeout=300):
                say(MessageToDict(level, preserving_proto_field_name=True, always_print_fields_with_no_presence=True))
        except grpc.RpcError as error:
            say({"error": error.code().name, "details": error.details()})


def stall(address, token, ids, seconds):
    """A client that reads nothing for ``seconds``: a tiny HTTP/2 window, so the server's writes back up at once."""
    options = [("grpc.http2.lookahead_bytes", 1024), ("grpc.http2.bdp_probe", 0)]
    metadata = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(address, options=options) as channel:
        call = pb_grpc.InventoryStub(channel).WatchStock(pb.WatchStockRequest(product_ids=json.loads(ids)),
                                                         metadata=metadata, timeout=300)
        first = next(call)
        say({"version": first.version})
        time.sleep(float(seconds))
        received = 0
        try:
            for _ in call:
                received += 1
            say({"received": received, "error": None})
        except grpc.RpcError as error:
            say({"received": received, "error": error.code().name, "details": error.details()})


def adjust(address, token, product_id, delta, count):
    metadata = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.InventoryStub(channel)

        def one(_):
            request = pb.AdjustStockRequest(product_id=int(product_id), delta=int(delta), reason="count",
                                            idempotency_key=uuid.uuid4().hex)
            try:
                return stub.AdjustStock(request, metadata=metadata, timeout=TIMEOUT).on_hand
            except grpc.RpcError as error:
                return error.code().name

        with ThreadPoolExecutor(int(count)) as pool:
            say(list(pool.map(one, range(int(count)))))


if __name__ == "__main__":
    {"reflect": reflect, "watch": watch, "stall": stall, "adjust": adjust}[sys.argv[1]](*sys.argv[2:])
