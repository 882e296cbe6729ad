"""Operations: liveness, readiness of every dependency and of this process, build info and Prometheus metrics."""

from nameko import config
from nameko.constants import AMQP_URI_CONFIG_KEY, DEFAULT_AMQP_URI
from werkzeug.wrappers import Response

from common import health, replicas
from common.logging import LogContext
from common.metrics import latest
from gateway.http import api
from schemas.gateway import HealthSchema
from schemas.operations import InfoSchema, ReadinessSchema

OPERATIONS = ["Operations"]


class OperationsRoutes:
    log_context = LogContext()
    service_ping = health.ServicePing()
    # shared by every replica, and the API answers their outages itself: required only until first ready
    readiness = health.Readiness(optional=(), required_once=("broker", "cache"))

    @api("GET", "/health", responses={200: HealthSchema}, summary="Liveness", tags=OPERATIONS)
    def health(self, request):
        return {"status": "UP"}

    @api("GET", "/health/ready", responses={200: ReadinessSchema, 503: ReadinessSchema},
         summary="Readiness of every dependency", tags=OPERATIONS,
         description="Broker, databases, cache, every service (RPC ping), Kafka and the payment provider, "
                     "each with its state and latency. 503 names what is down. Read replicas are listed "
                     "(`replica:<service>:<n>`, with `lag_seconds`) as optional: one that is down or lagging "
                     "does not make the system unready, the services read from the primary meanwhile.")
    def ready(self, request):
        checks = self.readiness_checks()
        ready, checks = health.run_checks(checks, readiness_timeout(),
                                          optional=[name for name in checks if name.startswith("replica:")])
        return (200 if ready else 503), {"status": health.UP if ready else health.DOWN, "checks": checks}

    @api("GET", "/health/process", responses={200: ReadinessSchema, 503: ReadinessSchema},
         summary="Readiness of this gateway process (its probe)", tags=OPERATIONS,
         description="What this replica needs to serve: its AMQP consumers (RPC replies, account events) and its "
                     "Redis, each required until the process has been ready once; after that they are reported "
                     "but do not make it unready, since every replica shares them and the API answers their "
                     "outages itself (503 with `Retry-After`; rate limits and caches fail open). The Kubernetes "
                     "readiness probe; `/health/ready` is the whole system's state.")
    def process_ready(self, request):
        report = self.readiness.report()
        return (200 if report["status"] == health.UP else 503), report

    @api("GET", "/info", responses={200: InfoSchema}, summary="Build and environment", tags=OPERATIONS)
    def info(self, request):
        return health.info(str(config.get("ENVIRONMENT") or "unknown"))

    @api("GET", "/metrics", responses={200: "text/plain"}, summary="Prometheus metrics (text exposition format)",
         tags=OPERATIONS)
    def metrics_text(self, request):
        body, content_type = latest()
        return Response(body, status=200, content_type=content_type)

    def readiness_checks(self):
        timeout = readiness_timeout()
        checks = {"broker": lambda: health.check_broker(config.get(AMQP_URI_CONFIG_KEY, DEFAULT_AMQP_URI), timeout),
                  "cache": lambda: health.check_cache(config.get("REDIS_URI"), timeout)}
        for key, uri in sorted((config.get("DB_URIS") or {}).items()):
            if uri:
                checks[f"database:{key.split(':')[0]}"] = lambda uri=uri: health.check_database(uri, timeout)
        checks.update(replica_checks(timeout))
        for service in health.services_to_check(config.get("HEALTH_SERVICES")):
            checks[f"service:{service}"] = lambda service=service: health.check_service(self.service_ping, service)
        checks["kafka"] = lambda: health.check_kafka(config.get("KAFKA_BOOTSTRAP_SERVERS"), timeout)
        checks["payment_provider"] = lambda: health.check_grpc(config.get("PAYMENT_PROVIDER_ADDRESS"), timeout)
        return checks


def replica_checks(timeout):
    max_lag = replicas.settings()[0]
    primaries = config.get("DB_URIS") or {}
    checks = {}
    for key in sorted(config.get("DB_REPLICA_URIS") or {}):
        for number, uri in enumerate(replicas.replica_uris(key)):
            if primaries.get(key):
                checks[f"replica:{key.split(':')[0]}:{number}"] = (
                    lambda primary=primaries[key], uri=uri: health.check_replica(primary, uri, max_lag, timeout))
    return checks


def readiness_timeout():
    return float(config.get("HEALTH_CHECK_TIMEOUT") or health.DEFAULT_TIMEOUT)
