"""The sandbox payment provider (a standalone grpcio server) and the Nameko client the saga calls it with."""


def protos():
    """The generated ``(payment_pb2, payment_pb2_grpc)`` modules, built on first use if missing."""
    from payment_provider.build_protos import ensure_built

    ensure_built()
    from payment_provider.generated import payment_pb2, payment_pb2_grpc

    return payment_pb2, payment_pb2_grpc
