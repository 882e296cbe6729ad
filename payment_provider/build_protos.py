"""Generate the gRPC stubs from protos/payment.proto into payment_provider/generated/ (``make protos``)."""

import sys

from common import protos

NAME, PACKAGE = "payment", "payment_provider"


def build():
    return protos.build(NAME, PACKAGE)


def ensure_built():
    protos.ensure_built(NAME, PACKAGE)


if __name__ == "__main__":
    print(f"generated stubs in {build()}", file=sys.stderr)
