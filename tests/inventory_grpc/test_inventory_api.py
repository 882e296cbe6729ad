"""The inventory gRPC API against the running system with a real grpcio client: each method and its errors, the
same ledger as HTTP, streams that see HTTP orders, reflection and health."""

import json
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.tokens import issue_token
from tests.inventory_grpc.conftest import WATCH_QUEUE, pb
from tests.system.conftest import ADDRESS, ROOT

DEV_SECRET = "dev-only-jwt-secret-change-me-0123456789abcdef"  # config/dev.yml, which the system runs with
TIMEOUT = 15


def failure(call, *args, **kwargs):
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, timeout=TIMEOUT, **kwargs)
    return caught.value.code(), caught.value.details()


def token(auth):
    return auth[0][1].partition(" ")[2]


def client(*argv):
    """Run the client process (tests/inventory_grpc/client.py) and return what it printed."""
    done = subprocess.run([sys.executable, "-m", "tests.inventory_grpc.client", *map(str, argv)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def levels(stub, auth, *product_ids):
    return stub.GetAvailability(pb.GetAvailabilityRequest(product_ids=product_ids), metadata=auth, timeout=TIMEOUT)


# -- discovery (what grpcurl does: list the services by reflection, then check their health)
def test_reflection_lists_the_service_and_health_says_serving(system, channel):
    answer = client("reflect", system.inventory_grpc_address)
    assert {"pos.inventory.v1.Inventory", "grpc.health.v1.Health"} <= set(answer["services"])
    assert answer["health"]["(server)"] == answer["health"]["pos.inventory.v1.Inventory"] == "SERVING"


@pytest.mark.parametrize("service", ["", "pos.inventory.v1.Inventory"])
def test_the_health_service_answers_serving(channel, service):
    health = health_pb2_grpc.HealthStub(channel)
    answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


# -- who may call
def test_a_call_without_a_token_is_unauthenticated(stub):
    code, details = failure(stub.GetAvailability, pb.GetAvailabilityRequest(product_ids=[1]))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "access token" in details


@pytest.mark.parametrize("header", ["Bearer not-a-jwt", "Basic abc", "Bearer "])
def test_a_bad_token_is_unauthenticated(stub, header):
    code, _ = failure(stub.GetAvailability, pb.GetAvailabilityRequest(product_ids=[1]),
                      metadata=(("authorization", header),))
    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_an_expired_token_is_unauthenticated(stub):
    token = issue_token({"id": 1, "role": "admin"}, DEV_SECRET, 60, now=time.time() - 3600)["access_token"]
    code, details = failure(stub.GetAvailability, pb.GetAvailabilityRequest(product_ids=[1]),
                            metadata=(("authorization", f"Bearer {token}"),))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "expired" in details


def test_a_token_of_an_account_that_does_not_exist_is_unauthenticated(stub):
    token = issue_token({"id": 987654, "role": "admin"}, DEV_SECRET, 600)["access_token"]
    code, details = failure(stub.GetAvailability, pb.GetAvailabilityRequest(product_ids=[1]),
                            metadata=(("authorization", f"Bearer {token}"),))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "no longer exists" in details


def test_a_customer_is_refused(stub, customer):
    code, details = failure(stub.GetAvailability, pb.GetAvailabilityRequest(product_ids=[1]),
                            metadata=(("authorization", customer.headers["Authorization"]),))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "admin" in details


# -- the methods
def test_get_availability_gives_the_levels_http_gives(system, stub, admin, admin_auth):
    first, second = system.product(admin, 7), system.product(admin, 3)
    answer = levels(stub, admin_auth, second["id"], first["id"])
    by_id = {level.product_id: level for level in answer.levels}
    for product in (first, second):
        http = system.stock(admin, product["id"])
        level = by_id[product["id"]]
        assert (level.on_hand, level.reserved, level.available, level.low_stock_threshold) == \
            (http["on_hand"], http["reserved"], http["available"], http["low_stock_threshold"])
        assert level.version >= 1


@pytest.mark.parametrize("ids, code", [([], grpc.StatusCode.INVALID_ARGUMENT),
                                       ([-4], grpc.StatusCode.INVALID_ARGUMENT),
                                       ([990001], grpc.StatusCode.NOT_FOUND)])
def test_get_availability_errors(stub, admin_auth, ids, code):
    got, details = failure(stub.GetAvailability, pb.GetAvailabilityRequest(product_ids=ids), metadata=admin_auth)
    assert got == code and details


def test_set_stock_sets_the_level_http_sees(system, stub, admin, admin_auth):
    product = system.product(admin, 2)
    level = stub.SetStock(pb.SetStockRequest(product_id=product["id"], on_hand=40, low_stock_threshold=9),
                          metadata=admin_auth, timeout=TIMEOUT)
    assert (level.on_hand, level.available, level.low_stock_threshold) == (40, 40, 9)
    assert system.stock(admin, product["id"])["on_hand"] == 40
    kept = stub.SetStock(pb.SetStockRequest(product_id=product["id"], on_hand=41), metadata=admin_auth,
                         timeout=TIMEOUT)
    assert kept.low_stock_threshold == 9 and kept.version == level.version + 1


def test_set_stock_errors(system, stub, admin, admin_auth, inventory_rpc):
    product = system.product(admin, 10)
    inventory_rpc.reserve_stock(f"held-{uuid.uuid4().hex}", [{"product_id": product["id"], "quantity": 6}])
    code, details = failure(stub.SetStock, pb.SetStockRequest(product_id=product["id"], on_hand=5),
                            metadata=admin_auth)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "reserved" in details
    code, _ = failure(stub.SetStock, pb.SetStockRequest(product_id=990002, on_hand=5), metadata=admin_auth)
    assert code == grpc.StatusCode.NOT_FOUND
    code, details = failure(stub.SetStock, pb.SetStockRequest(product_id=product["id"], on_hand=-1),
                            metadata=admin_auth)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "on_hand" in details


def test_adjust_stock_is_applied_once_per_key(system, stub, admin, admin_auth):
    product = system.product(admin, 10)
    request = pb.AdjustStockRequest(product_id=product["id"], delta=5, reason="delivery",
                                    idempotency_key=uuid.uuid4().hex)
    first = stub.AdjustStock(request, metadata=admin_auth, timeout=TIMEOUT)
    again = stub.AdjustStock(request, metadata=admin_auth, timeout=TIMEOUT)
    assert first.on_hand == 15 and again == first
    assert system.stock(admin, product["id"])["on_hand"] == 15
    request.delta = 6
    code, details = failure(stub.AdjustStock, request, metadata=admin_auth)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "idempotency key" in details


@pytest.mark.parametrize("fields, code", [
    ({"delta": 1}, grpc.StatusCode.INVALID_ARGUMENT),                              # no idempotency key
    ({"delta": 0, "idempotency_key": "k0"}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"delta": -11, "idempotency_key": "k-11"}, grpc.StatusCode.FAILED_PRECONDITION),  # below zero
    ({"delta": 2**40, "idempotency_key": "k-big"}, grpc.StatusCode.INVALID_ARGUMENT),
])
def test_adjust_stock_errors(system, stub, admin, admin_auth, fields, code):
    product = system.product(admin, 10)
    got, details = failure(stub.AdjustStock, pb.AdjustStockRequest(product_id=product["id"], **fields),
                           metadata=admin_auth)
    assert got == code and details
    assert system.stock(admin, product["id"])["on_hand"] == 10


def test_adjusting_an_unknown_product_is_not_found(stub, admin_auth):
    code, _ = failure(stub.AdjustStock, pb.AdjustStockRequest(product_id=990003, delta=1, idempotency_key="x"),
                      metadata=admin_auth)
    assert code == grpc.StatusCode.NOT_FOUND


def test_fifty_concurrent_removals_never_go_below_the_reserved(system, stub, admin, admin_auth, inventory_rpc):
    product = system.product(admin, 30)
    inventory_rpc.reserve_stock(f"held-{uuid.uuid4().hex}", [{"product_id": product["id"], "quantity": 20}])
    outcomes = client("adjust", system.inventory_grpc_address, token(admin_auth), product["id"], -1, 50)
    applied = sorted(o for o in outcomes if isinstance(o, int))
    assert applied == list(range(20, 30))
    assert outcomes.count("FAILED_PRECONDITION") == 40
    assert system.stock(admin, product["id"]) == {"product_id": product["id"], "on_hand": 20, "reserved": 20,
                                                  "available": 0, "low_stock_threshold": 5}


# -- WatchStock
class Watch:
    """A WatchStock stream read by a client process that writes each level as a JSON line to a file."""

    def __init__(self, system, auth, product_ids, after_versions=None):
        self.path = system.work_dir / f"watch-{uuid.uuid4().hex}.jsonl"
        self.output = open(self.path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.inventory_grpc.client", "watch", system.inventory_grpc_address,
             token(auth), json.dumps(product_ids), json.dumps(after_versions or {})],
            cwd=ROOT, stdout=self.output, stderr=subprocess.DEVNULL)
        self.read = 0

    def next(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.path.read_text().splitlines()
            if len(lines) > self.read and lines[self.read].endswith("}"):
                self.read += 1
                level = json.loads(lines[self.read - 1])
                if "error" in level:
                    raise AssertionError(f"the stream ended: {level}")
                return {key: int(value) if key != "change" else value for key, value in level.items()}
            time.sleep(0.05)
        raise AssertionError("no level came within the wait")

    def until(self, predicate, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            level = self.next(max(0.1, deadline - time.monotonic()))
            if predicate(level):
                return level

    def end(self):
        self.process.wait(30)
        return json.loads(self.path.read_text().splitlines()[-1])

    def close(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.output.close()


def test_watch_stock_sees_an_http_orders_reservation(system, stub, admin, admin_auth, customer):
    product = system.product(admin, 12)
    watch = Watch(system, admin_auth, [product["id"]])
    try:
        current = watch.next()
        assert (current["change"], current["on_hand"], current["reserved"]) == ("", 12, 0)
        placed = time.monotonic()
        reply = customer.post(f"{system.base_url}/orders", json={
            "items": [{"product_id": product["id"], "quantity": 3}], "shipping_address": ADDRESS,
            "payment_token": "tok_visa"}, headers={"Idempotency-Key": uuid.uuid4().hex}, timeout=TIMEOUT)
        assert reply.status_code == 201, reply.text
        reserved = watch.until(lambda level: level["change"] == "stock.reserved")
        print(f"reservation seen {time.monotonic() - placed:.3f}s after the order was placed")
        assert (reserved["on_hand"], reserved["reserved"], reserved["available"]) == (12, 3, 9)
        assert reserved["version"] > current["version"]
        committed = watch.until(lambda level: level["change"] == "stock.committed")
        assert (committed["on_hand"], committed["reserved"]) == (9, 0)
    finally:
        watch.close()


def test_a_resumed_watch_skips_what_it_saw_and_gets_what_it_missed(system, stub, admin, admin_auth):
    product = system.product(admin, 5)
    first = Watch(system, admin_auth, [product["id"]])
    seen = first.next()
    first.close()
    stub.SetStock(pb.SetStockRequest(product_id=product["id"], on_hand=6), metadata=admin_auth, timeout=TIMEOUT)
    resumed = Watch(system, admin_auth, [product["id"]], after_versions={product["id"]: seen["version"]})
    try:
        missed = resumed.next()
        assert (missed["on_hand"], missed["version"]) == (6, seen["version"] + 1)
        stub.AdjustStock(pb.AdjustStockRequest(product_id=product["id"], delta=1, idempotency_key=uuid.uuid4().hex),
                         metadata=admin_auth, timeout=TIMEOUT)
        live = resumed.next()
        assert (live["change"], live["on_hand"], live["version"]) == ("stock.updated", 7, seen["version"] + 2)
    finally:
        resumed.close()


def test_watching_everything_sees_changes_of_any_product(system, stub, admin, admin_auth):
    watch = Watch(system, admin_auth, [])
    try:
        time.sleep(2)  # the stream is open before the change (no current levels come first for "every product")
        product = system.product(admin, 4)
        created = watch.until(lambda level: level["product_id"] == product["id"])
        assert created["on_hand"] == 4
    finally:
        watch.close()


def test_a_client_that_stops_reading_is_cut_off_and_slows_nobody(system, stub, admin, admin_auth):
    product = system.product(admin, 100)
    stalled = subprocess.Popen([sys.executable, "-m", "tests.inventory_grpc.client", "stall",
                                system.inventory_grpc_address, token(admin_auth), json.dumps([product["id"]]), "8"],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True)
    prompt = Watch(system, admin_auth, [product["id"]])
    try:
        prompt.next()
        time.sleep(1)  # the stalled client has its first level and reads no more
        changes = 3 * WATCH_QUEUE
        for count in range(changes):
            stub.SetStock(pb.SetStockRequest(product_id=product["id"], on_hand=200 + count), metadata=admin_auth,
                          timeout=TIMEOUT)
        # A reader that keeps up sees every change, while the stalled one is still not reading.
        assert [prompt.next()["on_hand"] for _ in range(changes)] == list(range(200, 200 + changes))
        assert stalled.poll() is None
        out, _ = stalled.communicate(timeout=60)
    finally:
        prompt.close()
    ending = json.loads(out.splitlines()[-1])
    assert ending["error"] == "RESOURCE_EXHAUSTED" and "resume" in ending["details"]
    assert ending["received"] < changes


@pytest.mark.parametrize("ids, auth, code", [([0], True, "INVALID_ARGUMENT"), ([990004], True, "NOT_FOUND"),
                                             ([1], False, "UNAUTHENTICATED")])
def test_watch_stock_errors(system, admin_auth, ids, auth, code):
    watch = Watch(system, admin_auth if auth else (("authorization", ""),), ids)
    try:
        assert watch.end()["error"] == code
    finally:
        watch.close()


def test_many_calls_at_once_leave_the_server_serving(stub, admin_auth, channel):
    def garbage(_):
        try:
            levels(stub, admin_auth, *range(-5, 0))
        except grpc.RpcError as error:
            return error.code()

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(garbage, range(40))) == {grpc.StatusCode.INVALID_ARGUMENT}
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT).status == \
        health_pb2.HealthCheckResponse.SERVING
