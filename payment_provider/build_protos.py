"""Generate the gRPC stubs from protos/payment.proto into payment_provider/generated/ (``make protos``).

The proto is mapped onto the package path so the generated modules import each other as
``payment_provider.generated.payment_pb2``: nameko-grpc finds the messages module next to the stub module.
"""

import importlib
import sys
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "protos" / "payment.proto"
GENERATED = ROOT / "payment_provider" / "generated"


def build():
    try:
        from grpc_tools import protoc
    except ImportError as exc:
        raise RuntimeError(f"the gRPC stubs in {GENERATED} need (re)generating from {PROTO}, and grpcio-tools is "
                           "not installed: pip install '.[protos]', then make protos") from exc

    GENERATED.mkdir(exist_ok=True)
    (GENERATED / "__init__.py").touch()
    well_known = Path(protoc.__file__).parent / "_proto"
    status = protoc.main([
        "grpc_tools.protoc",
        f"-Ipayment_provider/generated={PROTO.parent}",
        f"-I{well_known}",
        f"--python_out={ROOT}",
        f"--grpc_python_out={ROOT}",
        f"payment_provider/generated/{PROTO.name}",
    ])
    if status != 0:
        raise RuntimeError(f"protoc failed on {PROTO} with status {status}")
    importlib.invalidate_caches()


def ensure_built():
    """Build the stubs if they are missing or older than the proto (a fresh checkout that skipped `make protos`).

    Without grpcio-tools (the image: its stubs were generated at build time) stubs that are there are used as they
    are, whatever their file times say."""
    stub = GENERATED / "payment_pb2_grpc.py"
    if not stub.exists():
        build()
    elif stub.stat().st_mtime < PROTO.stat().st_mtime and find_spec("grpc_tools") is not None:
        build()


if __name__ == "__main__":
    build()
    print(f"generated stubs in {GENERATED}", file=sys.stderr)
