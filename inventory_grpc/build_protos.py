"""Generate the gRPC stubs from protos/inventory.proto into inventory_grpc/generated/ (``make protos``)."""

import sys

from common import protos

NAME, PACKAGE = "inventory", "inventory_grpc"


def build():
    return protos.build(NAME, PACKAGE)


def ensure_built():
    protos.ensure_built(NAME, PACKAGE)


if __name__ == "__main__":
    print(f"generated stubs in {build()}", file=sys.stderr)
