"""The inventory gRPC API for external systems: a grpcio server that calls the inventory service over RPC."""


def protos():
    """The generated ``(inventory_pb2, inventory_pb2_grpc)`` modules, built on first use if missing."""
    from inventory_grpc.build_protos import ensure_built

    ensure_built()
    from inventory_grpc.generated import inventory_pb2, inventory_pb2_grpc

    return inventory_pb2, inventory_pb2_grpc
