"""Generate gRPC stubs from ``protos/<name>.proto`` into ``<package>/generated/`` (``make protos``).

The proto is mapped onto the package path so the generated modules import each other as
``<package>.generated.<name>_pb2``: nameko-grpc finds the messages module next to the stub module. Generated code is
never committed; a fresh checkout that skipped ``make protos`` builds it on first import (``ensure_built``).
"""

import importlib
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def paths(name, package):
    return ROOT / "protos" / f"{name}.proto", ROOT / package / "generated"


def build(name, package):
    proto, generated = paths(name, package)
    try:
        from grpc_tools import protoc
    except ImportError as exc:
        raise RuntimeError(f"the gRPC stubs in {generated} need (re)generating from {proto}, and grpcio-tools is "
                           "not installed: pip install '.[protos]', then make protos") from exc

    generated.mkdir(exist_ok=True)
    (generated / "__init__.py").touch()
    well_known = Path(protoc.__file__).parent / "_proto"
    status = protoc.main([
        "grpc_tools.protoc",
        f"-I{package}/generated={proto.parent}",
        f"-I{well_known}",
        f"--python_out={ROOT}",
        f"--grpc_python_out={ROOT}",
        f"{package}/generated/{proto.name}",
    ])
    if status != 0:
        raise RuntimeError(f"protoc failed on {proto} with status {status}")
    importlib.invalidate_caches()
    return generated


def ensure_built(name, package):
    """Build the stubs if they are missing or older than the proto.

    Without grpcio-tools (the image: its stubs were generated at build time) stubs that are there are used as they
    are, whatever their file times say."""
    proto, generated = paths(name, package)
    stub = generated / f"{name}_pb2_grpc.py"
    if not stub.exists():
        build(name, package)
    elif stub.stat().st_mtime < proto.stat().st_mtime and find_spec("grpc_tools") is not None:
        build(name, package)
