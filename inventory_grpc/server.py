"""The inventory gRPC API (``protos/inventory.proto``) on ``INVENTORY_GRPC_ADDRESS``, with server reflection and the
standard health service, so ``grpcurl`` works against it.

    python -m inventory_grpc.server --config config/dev.yml [--address 127.0.0.1:50052]

Its own process, not a Nameko entrypoint (docs/architecture.md says why): a grpcio asyncio server whose methods
call the inventory service over RPC (``common.rpc.ThreadedRpc``) and whose WatchStock streams are fed from
inventory's ``stock.*`` events (``inventory_grpc.feed``). TLS with ``INVENTORY_GRPC_TLS_CERT``/``_KEY`` (required
where ``INVENTORY_GRPC_TLS`` is true: uat and prod).

The health service answers SERVING while the process can work: its event feed is consuming (its broker connection
is up); NOT_SERVING otherwise and while it stops. ``INVENTORY_GRPC_HEALTH_ADDRESS`` (empty: none) serves that same
health service alone, in plaintext, for probes that cannot speak TLS (kubelet's gRPC probe): it carries no data.
"""

import argparse
import asyncio
import logging
import logging.config
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from nameko import config
from nameko.exceptions import ConfigurationError

from common.rpc import ThreadedRpc
from inventory_grpc.auth import AdminCheck
from inventory_grpc.feed import EventFeed, Streams
from inventory_grpc.servicer import Inventory, pb, pb_grpc

log = logging.getLogger("inventory_grpc")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Inventory"].full_name
DEFAULT_ADDRESS = "127.0.0.1:50052"
TRUE = ("1", "true", "yes", "on")
HEALTH_INTERVAL = 1.0
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def setting(name, default):
    value = config.get(name)
    return default if value in (None, "") else value


def credentials():
    """Server TLS credentials from the cert/key paths, None for plaintext; refuses plaintext where TLS is on."""
    cert, key = setting("INVENTORY_GRPC_TLS_CERT", ""), setting("INVENTORY_GRPC_TLS_KEY", "")
    required = str(setting("INVENTORY_GRPC_TLS", "false")).lower() in TRUE
    if bool(cert) != bool(key):
        raise ConfigurationError("INVENTORY_GRPC_TLS_CERT and INVENTORY_GRPC_TLS_KEY go together")
    if not cert:
        if required:
            raise ConfigurationError("INVENTORY_GRPC_TLS is on: set INVENTORY_GRPC_TLS_CERT and _KEY")
        return None
    return grpc.ssl_server_credentials([(Path(key).read_bytes(), Path(cert).read_bytes())])


async def serve(address=None):
    """Start the server on the running loop; returns ``(server, port, stop)``."""
    loop = asyncio.get_running_loop()
    address = address or setting("INVENTORY_GRPC_ADDRESS", DEFAULT_ADDRESS)
    executor = ThreadPoolExecutor(int(setting("INVENTORY_GRPC_WORKERS", 16)), thread_name_prefix="inventory-rpc")
    inventory, products, accounts = ThreadedRpc("inventory"), ThreadedRpc("products"), ThreadedRpc("accounts")
    auth = AdminCheck(accounts)
    streams = Streams(loop, int(setting("INVENTORY_GRPC_WATCH_QUEUE", 1000)),
                      int(setting("INVENTORY_GRPC_WATCH_STREAMS", 200)))
    feed = EventFeed(config.get("AMQP_URI"), streams, auth.forget_user)
    feed.start()

    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 1 << 20)])
    pb_grpc.add_InventoryServicer_to_server(
        Inventory(inventory, products, auth, streams, executor,
                  float(setting("INVENTORY_GRPC_WRITE_TIMEOUT_SECONDS", 10))), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server)
    tls = credentials()
    port = server.add_secure_port(address, tls) if tls else server.add_insecure_port(address)
    if not port:
        raise OSError(f"cannot listen on {address}")
    await set_health(health_servicer, NOT_SERVING)  # until the event feed consumes
    await server.start()
    probe_server = await serve_health(health_servicer, setting("INVENTORY_GRPC_HEALTH_ADDRESS", ""))
    reporting = asyncio.create_task(report_health(health_servicer, feed))

    async def stop(grace=2.0):
        reporting.cancel()
        await set_health(health_servicer, NOT_SERVING)
        await server.stop(grace)
        if probe_server is not None:
            await probe_server.stop(0)
        feed.stop()
        executor.shutdown(wait=False, cancel_futures=True)
        for client in (inventory, products, accounts):
            client.close()

    return server, port, stop


async def serve_health(health_servicer, address):
    """The health service alone on ``address``, in plaintext; None without an address."""
    if not address:
        return None
    probe_server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, probe_server)
    if not probe_server.add_insecure_port(address):
        raise OSError(f"cannot listen on {address}")
    await probe_server.start()
    return probe_server


async def report_health(health_servicer, feed):
    """SERVING while the event feed consumes, NOT_SERVING otherwise (checked every ``HEALTH_INTERVAL``)."""
    serving = None
    while True:
        if feed.consuming.is_set() != serving:
            serving = feed.consuming.is_set()
            await set_health(health_servicer, SERVING if serving else NOT_SERVING)
        await asyncio.sleep(HEALTH_INTERVAL)


async def set_health(health_servicer, status):
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, status)


async def run(address):
    server, port, stop = await serve(address)
    host = (address or setting("INVENTORY_GRPC_ADDRESS", DEFAULT_ADDRESS)).rsplit(":", 1)[0]
    print(f"inventory gRPC listening on {host}:{port}", file=sys.stderr, flush=True)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, done.set)
    await done.wait()
    await stop()


def main(argv=None):
    from nameko.cli.utils.config import setup_config

    parser = argparse.ArgumentParser(description="Inventory gRPC API")
    parser.add_argument("--config", default=os.environ.get("POS_CONFIG", "config/dev.yml"))
    parser.add_argument("--address", default=None, help="overrides INVENTORY_GRPC_ADDRESS")
    args = parser.parse_args(argv)
    with open(args.config) as handle:
        setup_config(handle)
    os.environ.setdefault("SERVICE_NAME", "inventory_grpc")
    if config.get("LOGGING"):
        logging.config.dictConfig(config["LOGGING"])
    else:
        logging.basicConfig(level=logging.INFO)
    asyncio.run(run(args.address))


if __name__ == "__main__":
    main()
