"""The sandbox payment provider: a grpcio server with its own SQLite store.

    python -m payment_provider.server --address 127.0.0.1:50051 --db var/db/payment_provider.db

Sandbox tokens (API.md): tok_visa and tok_mastercard authorise; tok_chargeDeclined -> card_declined;
tok_insufficientFunds -> insufficient_funds; tok_timeout never answers before the caller's deadline; any other
token -> invalid_token. Totals above 10000.00 -> amount_too_large. Every call is idempotent per key.
"""

import argparse
import logging
import signal
import sys
import threading
from concurrent import futures
from decimal import Decimal, InvalidOperation

import grpc
from opentelemetry.instrumentation.grpc import server_interceptor

from common import tracing
from payment_provider import protos
from payment_provider.store import AUTHORIZED, CAPTURED, DECLINED, REFUNDED, VOIDED, InvalidState, PaymentStore

log = logging.getLogger("payment_provider")
payment_pb2, payment_pb2_grpc = protos()

APPROVING_TOKENS = {"tok_visa", "tok_mastercard"}
DECLINING_TOKENS = {"tok_chargeDeclined": "card_declined", "tok_insufficientFunds": "insufficient_funds"}
TIMEOUT_TOKEN = "tok_timeout"
MAX_AMOUNT = Decimal("10000.00")
NO_DEADLINE_SLEEP = 60.0


def sandbox_outcome(token, amount):
    """(status, failure_reason) of authorising ``amount`` with a sandbox ``token``."""
    if amount > MAX_AMOUNT:
        return DECLINED, "amount_too_large"
    if token in APPROVING_TOKENS:
        return AUTHORIZED, ""
    return DECLINED, DECLINING_TOKENS.get(token, "invalid_token")


def parse_amount(text):
    try:
        amount = Decimal(text)
    except (InvalidOperation, TypeError):
        return None
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        return None
    return amount


def to_message(payment):
    return payment_pb2.Payment(
        idempotency_key=payment["idempotency_key"], status=payment_pb2.PaymentStatus.Value(payment["status"]),
        reference=payment["reference"], failure_reason=payment["failure_reason"], amount=payment["amount"],
        currency=payment["currency"], created_at=payment["created_at"], updated_at=payment["updated_at"])


class PaymentProvider(payment_pb2_grpc.PaymentProviderServicer):
    def __init__(self, store, stopping):
        self.store = store
        self.stopping = stopping

    def Authorize(self, request, context):
        key = self.require_key(request, context)
        existing = self.store.get(key)
        if existing is not None:
            return to_message(existing)
        if request.token == TIMEOUT_TOKEN:
            self.sleep_past_deadline(context)
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the sandbox never answers tok_timeout in time")
        amount = parse_amount(request.amount)
        if amount is None or len(request.currency) != 3:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "amount must be a positive decimal with two places "
                                                            "and currency an ISO 4217 code")
        status, reason = sandbox_outcome(request.token, amount)
        payment = self.store.create(key, status, f"{amount:.2f}", request.currency.upper(), request.token, reason)
        log.info("authorize %s: %s %s", key, payment["status"], payment["failure_reason"])
        return to_message(payment)

    def Capture(self, request, context):
        return self.transition(request, context, {AUTHORIZED}, CAPTURED)

    def Void(self, request, context):
        key = self.require_key(request, context)
        # Voiding a key nobody authorised leaves a tombstone, so a late Authorize with that key cannot charge.
        payment = self.store.create(key, VOIDED, "0.00", "USD", "")
        if payment["status"] in (DECLINED, VOIDED):
            return to_message(payment)
        return self.transition(request, context, {AUTHORIZED}, VOIDED)

    def Refund(self, request, context):
        return self.transition(request, context, {AUTHORIZED, CAPTURED}, REFUNDED)

    def GetPayment(self, request, context):
        payment = self.store.get(self.require_key(request, context))
        if payment is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "no payment with this idempotency key")
        return to_message(payment)

    def transition(self, request, context, allowed, target):
        key = self.require_key(request, context)
        try:
            payment = self.store.transition(key, allowed, target)
        except KeyError:
            context.abort(grpc.StatusCode.NOT_FOUND, "no payment with this idempotency key")
        except InvalidState as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        log.info("%s %s", target.lower(), key)
        return to_message(payment)

    @staticmethod
    def require_key(request, context):
        if not request.idempotency_key:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key is required")
        return request.idempotency_key

    def sleep_past_deadline(self, context):
        remaining = context.time_remaining()
        self.stopping.wait(NO_DEADLINE_SLEEP if remaining is None else remaining + 0.5)


def serve(address, db_path, workers=32):
    """Start the server; returns ``(server, stop)``. The bound port is ``server.port``."""
    store = PaymentStore(db_path)
    stopping = threading.Event()
    interceptors = [server_interceptor()] if tracing.configure("payment_provider") else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), interceptors=interceptors)
    payment_pb2_grpc.add_PaymentProviderServicer_to_server(PaymentProvider(store, stopping), server)
    server.port = server.add_insecure_port(address)
    if not server.port:
        raise OSError(f"cannot listen on {address}")
    server.start()

    def stop(grace=1.0):
        stopping.set()
        server.stop(grace).wait()
        store.close()

    return server, stop


def main(argv=None):
    parser = argparse.ArgumentParser(description="Sandbox payment provider (gRPC)")
    parser.add_argument("--address", default="127.0.0.1:50051")
    parser.add_argument("--db", default="var/db/payment_provider.db")
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    server, stop = serve(args.address, args.db, args.workers)
    host = args.address.rsplit(":", 1)[0]
    print(f"payment provider listening on {host}:{server.port}", file=sys.stderr, flush=True)
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    done.wait()
    stop()


if __name__ == "__main__":
    main()
