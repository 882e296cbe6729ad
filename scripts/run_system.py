"""`make run`: start whatever is missing, every service and the gateway, load demo data, and say where to look.

Runs in the foreground and supervises: a crashed process is restarted with backoff (1 s doubling to 30 s, reset
after 60 s up), each restart logged in var/log/supervisor.log and counted in ``pos_process_restarts_total{process}``
on ``SUPERVISOR_METRICS_PORT`` (default METRICS_BASE_PORT + 20). Only Ctrl-C (or SIGTERM) stops every process it
started. Logs go to var/log/<process>.log.
"""

import argparse
import os
import signal
import subprocess
import sys
from importlib.util import find_spec

from scripts.processes import ROOT, Fleet, RestartPolicy, StartFailed

VAR = ROOT / "var"

# (process name, Nameko service class) in start order; the gateway last so it answers only when the rest is up.
NAMEKO_PROCESSES = [
    ("accounts", "services.accounts.service:AccountsService"),
    ("products", "services.products.service:ProductsService"),
    ("inventory", "services.inventory.service:InventoryService"),
    ("orders", "services.orders.service:OrdersService"),
    ("notifications", "services.notifications.service:NotificationsService"),
    ("payments", "bridge.payments:PaymentsService"),
    ("kafka_bridge", "bridge.kafka_relay:KafkaBridge"),
    ("webhooks", "services.webhooks.service:WebhooksService"),
    ("gateway", "gateway.service:GatewayService"),
]
# Processes that are not Nameko services, started after them: (name, module run with ``-m``, its arguments).
GRPC_APIS = [("inventory_grpc", "inventory_grpc.server", ["--config", "{config}"])]
METRICS_BASE_PORT = int(os.environ.get("METRICS_BASE_PORT", "9101"))  # another system may hold 9101..


def say(message):
    print(f"[make run] {message}", flush=True)


def port_open(host, port):
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, int(port))) == 0


def load_settings(config_path):
    from nameko.cli.utils.config import load_config

    with open(config_path) as handle:
        return load_config(handle)


def ensure_broker(settings):
    if os.environ.get("AMQP_URI"):
        return
    if not port_open("127.0.0.1", 5672):
        say("RabbitMQ is not answering on 127.0.0.1:5672; starting it")
        if subprocess.call([str(ROOT / "scripts/ensure-services.sh"), "rabbitmq"]) != 0:
            sys.exit("RabbitMQ could not be started: install it (apt-get install rabbitmq-server) "
                     "or point AMQP_URI at a running broker.")
    if settings.get("REDIS_URI") and not port_open("127.0.0.1", 6379):
        subprocess.call([str(ROOT / "scripts/ensure-services.sh"), "redis"])


def ensure_kafka(env):
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return None
    try:
        from scripts.tansu import start_tansu
    except ImportError:
        return None
    return start_tansu()


def base_env(config_path):
    env = dict(os.environ)
    env.setdefault("PYTHONWARNINGS", "ignore")
    env["POS_CONFIG"] = str(config_path)
    return env


def start_everything(fleet, config_path, env):
    if find_spec("payment_provider.server") is not None:
        address = env.get("PAYMENT_PROVIDER_ADDRESS", "127.0.0.1:50051")
        fleet.start("payment_provider", [sys.executable, "-m", "payment_provider.server", "--address", address,
                                         "--db", str(VAR / "db" / "payment_provider.db")])
    for index, (name, module) in enumerate(NAMEKO_PROCESSES):
        if find_spec(module.split(":")[0]) is None:
            say(f"skipping {name}: {module} is not there")
            continue
        fleet.nameko(name, module, config_path, {"METRICS_PORT": str(METRICS_BASE_PORT + index)})
    for name, module, arguments in GRPC_APIS:
        if find_spec(module) is None:
            say(f"skipping {name}: {module} is not there")
            continue
        fleet.start(name, [sys.executable, "-m", module, *(a.format(config=config_path) for a in arguments)],
                    {"SERVICE_NAME": name})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="config/dev.yml")
    parser.add_argument("--no-demo-data", action="store_true")
    args = parser.parse_args(argv)
    config_path = (ROOT / args.config).resolve()
    for folder in ("db", "log"):
        (VAR / folder).mkdir(parents=True, exist_ok=True)

    settings = load_settings(config_path)
    address = str(settings.get("WEB_SERVER_ADDRESS") or "127.0.0.1:8000")
    host, port = address.rsplit(":", 1)
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    if port_open(host, port):
        sys.exit(f"something already listens on {host}:{port}: stop it (an earlier `make run`?) "
                 "or set GATEWAY_ADDRESS=127.0.0.1:<port>")
    base_url = f"http://{host}:{port}"

    ensure_broker(settings)
    env = base_env(config_path)
    env.setdefault("PUBLIC_BASE_URL", base_url)
    fleet = Fleet(VAR / "log", env, restart=RestartPolicy())
    serve_supervisor_metrics(fleet)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Ctrl-C stops everything even when started from something that ignores SIGINT (a non-interactive shell's
    # background job): Python then installs no KeyboardInterrupt handler of its own.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        kafka = ensure_kafka(env)
        if kafka is not None:
            fleet.adopt("kafka", kafka)
        say("migrating databases")
        subprocess.check_call([sys.executable, "-m", "common.migrations", "--config", str(config_path)],
                              cwd=ROOT, env=env)
        say("starting services (logs in var/log/)")
        start_everything(fleet, config_path, env)
        fleet.wait_for_http(f"{base_url}/health")
        if not args.no_demo_data:
            subprocess.check_call([sys.executable, "-m", "scripts.seed", "--config", str(config_path),
                                   "--demo", "--base-url", base_url], cwd=ROOT, env=env)
        print_welcome(base_url, settings)
        name, code = fleet.wait_for_exit()
        say(f"{name} stopped (exit {code}), it cannot be restarted: see var/log/{name}.log; stopping the rest")
        return 1
    except StartFailed as exc:
        sys.exit(str(exc))
    except KeyboardInterrupt:
        return 0
    finally:
        say("stopping")
        fleet.stop()


def serve_supervisor_metrics(fleet):
    from prometheus_client import start_http_server

    port = int(os.environ.get("SUPERVISOR_METRICS_PORT", str(METRICS_BASE_PORT + 20)))
    try:
        start_http_server(port, addr="127.0.0.1", registry=fleet.registry)
        say(f"restarts counted on http://127.0.0.1:{port}/metrics (pos_process_restarts_total)")
    except OSError:
        say(f"port {port} is taken: restarts are logged in var/log/supervisor.log but not exported")


def print_welcome(base_url, settings):
    say("ready")
    print(f"""
  API            {base_url}   (Swagger UI: {base_url}/docs, OpenAPI: {base_url}/openapi.json)
  health         {base_url}/health/ready     metrics: {base_url}/metrics
  admin panel    {base_url}/admin
  admin login    {settings.get('ADMIN_EMAIL')} / {settings.get('ADMIN_PASSWORD')}
  try            curl -s '{base_url}/products?q=coffee&sort=price' | python3 -m json.tool
  nameko shell   .venv/bin/nameko shell --config config/dev.yml   then  n.rpc.products.get_product(1)
  mail (dev)     var/mail/    invoices: var/invoices/    logs: var/log/
  inventory gRPC {settings.get('INVENTORY_GRPC_ADDRESS')}   (grpcurl -plaintext ... list; README "Inventory over gRPC")
  Kafka          {settings.get('KAFKA_BOOTSTRAP_SERVERS')} topics {settings.get('KAFKA_TOPIC_PREFIX')}orders, ...
  stop           Ctrl-C
""", flush=True)


if __name__ == "__main__":
    sys.exit(main())
